//! Slack mrkdwn: escaping of untrusted text and link building.

/// Escapes the three characters Slack treats as control characters, so text
/// from GitLab or a user shows literally and can never ping or link.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `<url|label>` with both parts made safe; a `|` in the URL would end it early.
pub fn link(url: &str, label: &str) -> String {
    let url = escape(url).replace('|', "%7C");
    format!("<{url}|{}>", escape(label).replace('|', "¦"))
}

/// Cuts `text` to at most `max` characters, ending with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
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
    fn links_cannot_be_broken_out_of() {
        assert_eq!(
            link("https://x.example/a?b=1&c=2", "a|b>c"),
            "<https://x.example/a?b=1&amp;c=2|a¦b&gt;c>"
        );
        assert_eq!(
            link("https://x/|<!here>", "l"),
            "<https://x/%7C&lt;!here&gt;|l>"
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
    }
}
