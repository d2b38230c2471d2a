//! Slack mrkdwn: escaping of untrusted text, links and inline code, and cutting text to Slack's
//! limits without breaking what it means.
//!
//! Lengths are counted in UTF-16 code units, as Slack's own clients count them: an emoji or a
//! rare CJK character can be two, so counting `char`s would let a message over the limit.

/// How long a link's URL may be (UTF-16 units, escaped); a longer one is shown as its label
/// alone, so one long URL from a payload cannot use up a block's 3,000 characters.
pub const MAX_URL: usize = 1000;

/// The length of `text` as Slack counts it: UTF-16 code units.
pub fn len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Characters that change how the text around them is shown without showing themselves:
/// bidirectional embeddings, overrides and isolates (`build\u{202e}gnp.exe` displays as
/// `buildexe.png`), zero-width spaces, joiners and marks, the byte-order mark.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2060}'..='\u{2064}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{FEFF}')
}

/// Escapes the three characters Slack treats as control characters, so text from GitLab or a
/// user shows literally and can never ping or link, and drops invisible characters that would
/// make it display as something else.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if is_invisible(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Text as Slack sent it with `&`, `<`, `>` entity-escaped: undoes exactly those three.
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `text` on one line: line breaks, tabs and other control characters become spaces, so a
/// name cannot start a line of its own (a fake list item or quote).
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A name from a payload, as mrkdwn: one line, at most `max` units before escaping, escaped.
pub fn name(text: &str, max: usize) -> String {
    escape(&truncate(&one_line(text), max))
}

/// The URL as it may stand in `<url|label>`, or `None` when it should not be linked: not
/// `http(s)`, or longer than [`MAX_URL`]. A `|` would end it early and a space or control
/// character would break it: they are percent-encoded.
fn link_target(url: &str) -> Option<String> {
    let url = url.trim();
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '|' => out.push_str("%7C"),
            c if c.is_whitespace() || c.is_control() || is_invisible(c) => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    (len(&out) <= MAX_URL).then_some(out)
}

/// `<url|label>` with both parts made safe. A URL that cannot be linked (see [`MAX_URL`]) leaves
/// the label as plain text.
pub fn link(url: &str, label: &str) -> String {
    let label = escape(&one_line(label)).replace('|', "¦");
    match link_target(url) {
        Some(url) if label.is_empty() => format!("<{url}>"),
        Some(url) => format!("<{url}|{label}>"),
        None => label,
    }
}

/// Text for inside inline code: formatting characters (`*`, `_`, `~`) show literally there;
/// a backtick, which would end the code, is shown as a look-alike.
fn code_text(text: &str) -> String {
    one_line(text).replace('`', "ˋ")
}

/// Inline code that shows `text` literally; empty when `text` is blank (two backticks would
/// show as such).
pub fn code(text: &str) -> String {
    let inner = escape(&code_text(text));
    if inner.trim().is_empty() {
        return String::new();
    }
    format!("`{inner}`")
}

/// A name from a payload (a Scaleway server's, say) as inline code: one line, at most `max`
/// UTF-16 units before escaping, shown literally as [`code`] shows it. A blank name is
/// "(unnamed)": empty code would show nothing, or two backticks.
pub fn code_name(text: &str, max: usize) -> String {
    let shown = code(&truncate(&one_line(text), max));
    if shown.is_empty() {
        return "(unnamed)".to_owned();
    }
    shown
}

/// A link whose label is inline code, so a name shows literally (`` `<url|name>` ``, as chat
/// integrations show commit ids).
pub fn code_link(url: &str, label: &str) -> String {
    let inner = link(url, &code_text(label));
    if inner.trim().is_empty() {
        return String::new();
    }
    format!("`{inner}`")
}

/// Cuts plain `text` to at most `max` UTF-16 units, ending with an ellipsis when cut. Never
/// splits a character; use it before escaping.
pub fn truncate(text: &str, max: usize) -> String {
    if len(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = c.len_utf16();
        if used + n > max - 1 {
            break;
        }
        used += n;
        out.push(c);
    }
    out.push('…');
    out
}

/// Cuts mrkdwn to at most `max` UTF-16 units without leaving a link (`<…>`) or an entity
/// (`&amp;`) open: the cut falls before one that does not fit whole. The last resort of every
/// block; lists are better cut by whole lines (see [`super::blocks::fit_lines`]).
pub fn clip(text: &str, max: usize) -> String {
    if len(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let (mut used, mut safe) = (0, 0);
    let (mut in_link, mut in_entity) = (false, false);
    for (i, c) in text.char_indices() {
        let n = c.len_utf16();
        if used + n > max - 1 {
            break;
        }
        used += n;
        match c {
            '<' => in_link = true,
            '>' => in_link = false,
            '&' => in_entity = true,
            ';' => in_entity = false,
            _ => {}
        }
        if !in_link && !in_entity {
            safe = i + c.len_utf8();
        }
    }
    let mut out = text[..safe].trim_end().to_string();
    out.push('…');
    out
}

/// What is wrong with mrkdwn as the bot must send it, if anything: an unescaped `&`, a link
/// left open or nested, a line break inside a link, a control sequence that is neither a link
/// nor one the bot writes, or an invisible character.
pub fn problem(text: &str) -> Option<String> {
    let mut open: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match c {
            '&' => {
                let rest = &text[i..];
                if !["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| rest.starts_with(e))
                {
                    return Some(format!("a bare or cut entity at byte {i}"));
                }
            }
            '<' if open.is_some() => return Some(format!("a link inside a link at byte {i}")),
            '<' => open = Some(i),
            '>' => {
                let Some(start) = open.take() else {
                    return Some(format!("a `>` that closes nothing at byte {i}"));
                };
                let inner = &text[start + 1..i];
                let known = [
                    "http://",
                    "https://",
                    "@U",
                    "@W",
                    "!date^",
                    "#C",
                    "!subteam^",
                ];
                if !known.iter().any(|k| inner.starts_with(k)) {
                    return Some(format!("an unexpected control sequence at byte {start}"));
                }
                if inner.matches('|').count() > 1 {
                    return Some(format!("a link with two labels at byte {start}"));
                }
            }
            '\n' if open.is_some() => {
                return Some(format!("a line break inside a link at byte {i}"));
            }
            c if is_invisible(c) => {
                return Some(format!("an invisible character U+{:04X}", c as u32));
            }
            _ => {}
        }
    }
    open.map(|i| format!("a link left open at byte {i}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(
            escape("<!channel> see <https://evil.example|this> & more"),
            "&lt;!channel&gt; see &lt;https://evil.example|this&gt; &amp; more"
        );
        assert_eq!(escape("plain *bold*"), "plain *bold*");
    }

    #[test]
    fn bidi_controls_and_zero_width_characters_are_dropped() {
        assert_eq!(escape("build\u{202e}gnp.exe"), "buildgnp.exe");
        let all = "a\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}\u{200b}\u{200c}\u{200d}\u{200e}\u{200f}\u{2060}\u{feff}b";
        assert_eq!(escape(all), "ab");
        assert_eq!(name("two\nlines\tand\u{202e}", 100), "two lines and");
        assert_eq!(
            link("https://x.example/a\u{202e}b", "l\u{2066}"),
            "<https://x.example/a%E2%80%AEb|l>"
        );
    }

    #[test]
    fn links_cannot_be_broken_out_of() {
        assert_eq!(
            link("https://x.example/a?b=1&c=2", "a|b>c"),
            "<https://x.example/a?b=1&amp;c=2|a¦b&gt;c>"
        );
        assert_eq!(
            link("https://x/|<!here>", "l"),
            "<https://x/%7C%3C!here%3E|l>"
        );
        assert_eq!(
            link("https://x/a b", "two\nlines"),
            "<https://x/a%20b|two lines>"
        );
    }

    #[test]
    fn unlinkable_urls_leave_the_label() {
        assert_eq!(link("javascript:alert(1)", "x"), "x");
        assert_eq!(link("", "g/p"), "g/p");
        assert_eq!(link("/-/jobs/1", "a&b"), "a&amp;b");
        let long = format!("https://x.example/{}", "a".repeat(MAX_URL));
        assert_eq!(link(&long, "pipeline"), "pipeline");
        let fits = format!("https://x.example/{}", "a".repeat(MAX_URL - 18));
        assert!(link(&fits, "p").starts_with("<https://"));
    }

    #[test]
    fn code_shows_names_literally() {
        assert_eq!(code("a`b *c* _d_"), "`aˋb *c* _d_`");
        assert_eq!(code("  "), "");
        assert_eq!(
            code_link("https://x/-/jobs/1", "rspec `1` <2>"),
            "`<https://x/-/jobs/1|rspec ˋ1ˋ &lt;2&gt;>`"
        );
        assert_eq!(code_link("not a url", "a|b"), "`a¦b`");
    }

    #[test]
    fn a_code_name_stays_on_its_line_and_in_its_span() {
        // A name that would close the code span and fake a list line of its own.
        let forged = "runner`\n• *all 40 builders removed* <!here>";
        let shown = code_name(forged, 80);
        assert_eq!(shown, "`runnerˋ • *all 40 builders removed* &lt;!here&gt;`");
        assert_eq!(shown.matches('`').count(), 2);
        assert!(!shown.contains('\n'));
        assert_eq!(problem(&shown), None);
        assert_eq!(code_name("runner-arm-12345", 8), "`runner-…`");
        assert_eq!(code_name("😀😀😀", 3), "`😀…`");
        assert_eq!(code_name("", 80), "(unnamed)");
        assert_eq!(code_name(" \t\n", 80), "(unnamed)");
    }

    #[test]
    fn truncation_counts_utf16_units() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        // An emoji is two units: it does not fit in one, and is never split.
        assert_eq!(truncate("a😀b", 3), "a…");
        assert_eq!(len("a😀漢"), 4);
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn clipping_never_leaves_a_link_or_entity_open() {
        let text = "ab &amp; <https://x/1|one> <https://x/2|two>";
        for max in 0..=len(text) + 1 {
            let c = clip(text, max);
            assert!(len(&c) <= max, "{max}: {c}");
            assert_eq!(problem(&c), None, "{max}: {c}");
        }
        assert_eq!(clip(text, 12), "ab &amp;…");
        assert_eq!(clip(text, 7), "ab…");
    }

    #[test]
    fn problems_are_found() {
        assert_eq!(
            problem("ok <https://x|y> &amp; <@U1> <!date^1^{date}|d>"),
            None
        );
        assert!(problem("a & b").is_some());
        assert!(problem("&am").is_some());
        assert!(problem("<https://x|y").is_some());
        assert!(problem("<https://x|<https://y>>").is_some());
        assert!(problem("<!channel>").is_some());
        assert!(problem("<https://x|a\nb>").is_some());
        assert!(problem("x\u{202e}").is_some());
    }
}
