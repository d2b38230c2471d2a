//! Block Kit: the message type every Slack post carries, and the few block shapes the bot uses.
//! Text passed in is already mrkdwn (escaped where it quotes untrusted values).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mrkdwn::{clip, len, problem};

/// A message as the outbox stores it and Slack receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Fallback for notifications and screen readers.
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Value>,
}

impl Message {
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            blocks: Vec::new(),
        }
    }

    pub fn new(text: impl Into<String>, blocks: Vec<Value>) -> Self {
        Self {
            text: text.into(),
            blocks,
        }
    }

    /// The same message as text alone, for when Slack refuses its blocks (`invalid_blocks`):
    /// the blocks' texts one after another, within Slack's limit for `text`.
    pub fn text_only(&self) -> Self {
        let mut parts = Vec::new();
        for b in &self.blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                parts.push(t.to_string());
            }
            for key in ["fields", "elements"] {
                if let Some(items) = b[key].as_array() {
                    let texts: Vec<&str> =
                        items.iter().filter_map(|f| f["text"].as_str()).collect();
                    if !texts.is_empty() {
                        parts.push(texts.join(if key == "fields" { "\n" } else { " " }));
                    }
                }
            }
        }
        let text = if parts.is_empty() {
            self.text.clone()
        } else {
            parts.join("\n")
        };
        Self::plain(clip(&text, MAX_MESSAGE_TEXT))
    }

    /// Why Slack would refuse or garble this message, if it would: Block Kit's limits (counted
    /// in UTF-16 units) and mrkdwn that is not well formed (see [`problem`]).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: String, text: &str, max: usize| {
            let n = len(text);
            if n == 0 || n > max {
                out.push(format!("{what} is {n} long (1 to {max})"));
            }
            if let Some(p) = problem(text) {
                out.push(format!("{what}: {p}"));
            }
        };
        check("text".into(), &self.text, MAX_MESSAGE_TEXT);
        for (i, b) in self.blocks.iter().enumerate() {
            if let Some(t) = b["text"]["text"].as_str() {
                check(format!("block {i} text"), t, MAX_TEXT_CHARS);
            }
            let most_elements = if b["type"] == "actions" {
                MAX_ACTIONS
            } else {
                MAX_FIELDS
            };
            for (key, max, most) in [
                ("fields", MAX_FIELD_CHARS, MAX_FIELDS),
                ("elements", MAX_TEXT_CHARS, most_elements),
            ] {
                let Some(items) = b[key].as_array() else {
                    continue;
                };
                if items.len() > most {
                    check(format!("block {i} has {} {key}", items.len()), "", 0);
                }
                for (j, item) in items.iter().enumerate() {
                    if let Some(t) = item["text"].as_str() {
                        check(format!("block {i} {key} {j}"), t, max);
                    }
                }
            }
        }
        for (i, b) in self.blocks.iter().enumerate() {
            let buttons = b["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(Some(&b["accessory"]))
                .filter(|e| e["type"] == "button");
            for (j, button) in buttons.enumerate() {
                out.extend(
                    button_problems(button)
                        .into_iter()
                        .map(|p| format!("block {i} button {j} {p}")),
                );
            }
            if let Some(id) = b["block_id"].as_str()
                && (id.is_empty() || len(id) > MAX_ID_CHARS)
            {
                out.push(format!(
                    "block {i} block_id is {} long (1 to {MAX_ID_CHARS})",
                    len(id)
                ));
            }
        }
        if self.blocks.len() > MAX_BLOCKS {
            out.push(format!(
                "{} blocks (at most {MAX_BLOCKS})",
                self.blocks.len()
            ));
        }
        out
    }
}

/// What Slack would refuse in a button: its label, `value` (when it has one) and `action_id`
/// out of their lengths. An empty value is refused like an empty label.
fn button_problems(button: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut within = |what: &str, text: Option<&str>, max: usize| {
        let n = text.map_or(0, len);
        if n == 0 || n > max {
            out.push(format!("{what} is {n} long (1 to {max})"));
        }
    };
    within("label", button["text"]["text"].as_str(), MAX_BUTTON_LABEL);
    if !button["value"].is_null() {
        within("value", button["value"].as_str(), MAX_BUTTON_VALUE);
    }
    if !button["action_id"].is_null() {
        within("action_id", button["action_id"].as_str(), MAX_ID_CHARS);
    }
    out
}

/// Block Kit: a section's text, and a context element's, is at most 3,000 characters.
pub const MAX_TEXT_CHARS: usize = 3000;
/// Block Kit: a section field is at most 2,000 characters.
pub const MAX_FIELD_CHARS: usize = 2000;
/// Block Kit: at most 10 fields in a section, 10 elements in a context block.
pub const MAX_FIELDS: usize = 10;
/// Block Kit: at most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Slack: a message's `text` should stay within 4,000 characters.
pub const MAX_MESSAGE_TEXT: usize = 4000;
/// Block Kit: at most 25 elements in an actions block.
pub const MAX_ACTIONS: usize = 25;
/// Block Kit: a button's label is at most 75 characters.
pub const MAX_BUTTON_LABEL: usize = 75;
/// Block Kit: a button's `value` is at most 2,000 characters, and not empty.
pub const MAX_BUTTON_VALUE: usize = 2000;
/// Block Kit: an `action_id` or a `block_id` is at most 255 characters.
pub const MAX_ID_CHARS: usize = 255;

/// A section of mrkdwn text, clipped to Slack's limit without cutting a link or an entity.
pub fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_TEXT_CHARS)}})
}

/// A section of two-column mrkdwn fields (the first ten).
pub fn fields(texts: &[String]) -> Value {
    let fields: Vec<Value> = texts
        .iter()
        .take(MAX_FIELDS)
        .map(|t| json!({"type": "mrkdwn", "text": clip(t, MAX_FIELD_CHARS)}))
        .collect();
    json!({"type": "section", "fields": fields})
}

/// A context block: one line of small grey mrkdwn.
pub fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_TEXT_CHARS)}]})
}

/// `head`, then as many whole `lines` as fit in `max` UTF-16 units, then `tail` if any. When
/// lines are left out (`omitted` already were, before the list was built) a `more(n)` line
/// says how many, and it is always kept: a list is cut between lines, never inside one, so no
/// link or entity is left open and the count of what is missing is never lost.
pub fn fit_lines(
    head: &str,
    lines: &[String],
    omitted: usize,
    more: impl Fn(usize) -> String,
    tail: Option<&str>,
    max: usize,
) -> String {
    let join = |shown: usize, left_out: usize| {
        let mut out = head.to_string();
        for l in &lines[..shown] {
            out.push('\n');
            out.push_str(l);
        }
        if left_out > 0 {
            out.push('\n');
            out.push_str(&more(left_out));
        }
        if let Some(t) = tail {
            out.push('\n');
            out.push_str(t);
        }
        out
    };
    let all = join(lines.len(), omitted);
    if omitted == 0 && len(&all) <= max {
        return all;
    }
    // Room for the closing lines at their longest, then whole lines while they fit.
    let mut used = len(&join(0, omitted + lines.len()));
    let mut shown = 0;
    for l in lines {
        let n = len(l) + 1;
        if used + n > max {
            break;
        }
        used += n;
        shown += 1;
    }
    clip(&join(shown, omitted + lines.len() - shown), max)
}

pub fn divider() -> Value {
    json!({"type": "divider"})
}

/// Plain text with emoji shortcodes shown, as buttons and dialogs take it.
pub fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": true})
}

/// A button; `style` is `primary`, `danger` or none.
pub fn button(action_id: &str, label: &str, value: &str, style: Option<&str>) -> Value {
    let mut b =
        json!({"type": "button", "action_id": action_id, "text": plain(label), "value": value});
    if let Some(style) = style {
        b["style"] = json!(style);
    }
    b
}

/// A row of buttons.
pub fn actions(block_id: Option<&str>, elements: Vec<Value>) -> Value {
    let mut b = json!({"type": "actions", "elements": elements});
    if let Some(id) = block_id {
        b["block_id"] = json!(id);
    }
    b
}

/// How long something lasted or has been so, in the one format every message uses:
/// `45 s`, `3 min 20 s`, `2 h 59 min`, `3 d 4 h`: the two largest units, and a unit that is
/// zero is left out (`2 h`, not `2 h 0 min`).
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let (big, small) = match (d, h, m) {
        (0, 0, 0) => return format!("{s} s"),
        (0, 0, _) => ((m, "min"), (s, "s")),
        (0, _, _) => ((h, "h"), (m, "min")),
        _ => ((d, "d"), (h, "h")),
    };
    if small.0 == 0 {
        format!("{} {}", big.0, big.1)
    } else {
        format!("{} {} {} {}", big.0, big.1, small.0, small.1)
    }
}

/// A moment as Slack shows it to each reader: in their own time zone and clock format
/// ("today at 14:05", "Dec 7 at 9:30 AM"), with UTC for clients that cannot.
pub fn date(at: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} at {{time}}|{}>",
        at.timestamp(),
        at.format("%Y-%m-%d %H:%M UTC")
    )
}

/// A time of day as Slack shows it to each reader, for moments within the day ("14:05").
pub fn time(at: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{time}}|{}>",
        at.timestamp(),
        at.format("%H:%M UTC")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(duration(-5), "0 s");
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(63), "1 min 3 s");
        assert_eq!(duration(180), "3 min");
        assert_eq!(duration(179 * 60), "2 h 59 min");
        assert_eq!(duration(2 * 3600), "2 h");
        assert_eq!(duration(2 * 3600 + 59), "2 h");
        assert_eq!(duration((3 * 1440 + 125) * 60), "3 d 2 h");
        assert_eq!(duration(86_400 + 59 * 60), "1 d");
        assert_eq!(duration(i64::MAX).split(' ').count(), 4);
    }

    #[test]
    fn dates_are_local_to_each_reader_with_a_utc_fallback() {
        let at = DateTime::from_timestamp(1_765_190_700, 0).expect("time");
        assert_eq!(
            date(at),
            "<!date^1765190700^{date_short_pretty} at {time}|2025-12-08 10:45 UTC>"
        );
        assert_eq!(time(at), "<!date^1765190700^{time}|10:45 UTC>");
        assert_eq!(problem(&date(at)), None);
    }

    #[test]
    fn long_text_is_clipped_to_the_block_limit() {
        let long = "x".repeat(5000);
        let s = section(&long);
        assert_eq!(
            s["text"]["text"].as_str().map(|t| t.chars().count()),
            Some(MAX_TEXT_CHARS)
        );
        // Emoji count twice, as Slack counts them.
        let emoji = "😀".repeat(2000);
        let f = fields(std::slice::from_ref(&emoji));
        assert_eq!(
            f["fields"][0]["text"].as_str().map(len),
            Some(MAX_FIELD_CHARS - 1)
        );
        let c = context(&emoji);
        assert!(c["elements"][0]["text"].as_str().map(len) <= Some(MAX_TEXT_CHARS));
        assert!(button("a", "Go", "v", None).get("style").is_none());
        assert_eq!(button("a", "Go", "v", Some("danger"))["style"], "danger");
    }

    fn lines(n: usize, width: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("• <https://x/{i}|{}> &amp;", "n".repeat(width)))
            .collect()
    }

    #[test]
    fn lists_are_cut_by_whole_lines_and_keep_their_count() {
        let more = |n: usize| format!("…and {n} more");
        let short = lines(3, 5);
        let all = fit_lines("*Jobs*", &short, 0, more, None, 3000);
        assert_eq!(all.lines().count(), 4);
        assert!(!all.contains("more"));
        let with_omitted = fit_lines("*Jobs*", &short, 7, more, Some("tail"), 3000);
        assert!(
            with_omitted.ends_with("\n…and 7 more\ntail"),
            "{with_omitted}"
        );
        for max in [60, 100, 200, 500, 3000] {
            let out = fit_lines("*Jobs*", &lines(40, 30), 5, more, Some("_tail_"), max);
            assert!(len(&out) <= max, "{max}: {}", len(&out));
            assert_eq!(problem(&out), None, "{max}: {out}");
            let shown = out.lines().filter(|l| l.starts_with('•')).count();
            if max >= 100 {
                assert!(
                    out.contains(&format!("…and {} more", 45 - shown)),
                    "{max}: {out}"
                );
                assert!(out.ends_with("_tail_"), "{max}: {out}");
            }
        }
    }

    #[test]
    fn a_message_without_its_blocks_keeps_their_text() {
        let m = Message::new(
            "fallback",
            vec![
                context("status"),
                section("head"),
                fields(&["*A*\n1".into(), "*B*\n2".into()]),
            ],
        );
        let t = m.text_only();
        assert!(t.blocks.is_empty());
        assert_eq!(t.text, "status\nhead\n*A*\n1\n*B*\n2");
        assert!(Message::plain("x").text_only().text == "x");
        let huge = Message::new("f", vec![section(&"y".repeat(3000)); 3]);
        assert!(len(&huge.text_only().text) <= MAX_MESSAGE_TEXT);
    }

    #[test]
    fn problems_name_what_slack_would_refuse() {
        assert!(
            Message::new("ok", vec![section("fine")])
                .problems()
                .is_empty()
        );
        let bad = Message::new(
            "ok",
            vec![
                json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}}),
                json!({"type": "section", "fields": [{"type": "mrkdwn", "text": "<https://x|open"}]}),
            ],
        );
        let p = bad.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        let many = Message::new("ok", vec![divider(); 51]);
        assert_eq!(many.problems().len(), 1);
    }

    #[test]
    fn problems_include_buttons_slack_would_refuse() {
        let ok = Message::new(
            "ok",
            vec![actions(
                Some("row"),
                vec![button("a", "Go", "v", None), button("b", "Stop", "w", None)],
            )],
        );
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        // A button may go without a value; one that has it may not leave it empty.
        let mut bare = button("a", "Go", "v", None);
        bare.as_object_mut().map(|b| b.remove("value"));
        assert!(
            Message::new("ok", vec![actions(None, vec![bare])])
                .problems()
                .is_empty()
        );

        let long_label = "L".repeat(MAX_BUTTON_LABEL + 1);
        let long_value = "v".repeat(MAX_BUTTON_VALUE + 1);
        let long_id = "a".repeat(MAX_ID_CHARS + 1);
        let cases = [
            ("empty value", button("a", "Go", "", None)),
            ("long value", button("a", "Go", &long_value, None)),
            ("empty label", button("a", "", "v", None)),
            ("long label", button("a", &long_label, "v", None)),
            ("long action_id", button(&long_id, "Go", "v", None)),
        ];
        for (what, b) in cases {
            let in_row = Message::new("ok", vec![actions(None, vec![b.clone()])]);
            assert_eq!(in_row.problems().len(), 1, "{what} in a row");
            let mut beside = section("text");
            beside["accessory"] = b;
            assert_eq!(
                Message::new("ok", vec![beside]).problems().len(),
                1,
                "{what} beside a section"
            );
        }
        // Limits counted as Slack counts: an emoji is two units.
        let emoji_label = "😀".repeat(MAX_BUTTON_LABEL / 2 + 1);
        let m = Message::new(
            "ok",
            vec![actions(None, vec![button("a", &emoji_label, "v", None)])],
        );
        assert_eq!(m.problems().len(), 1);
        let long_block_id = Message::new(
            "ok",
            vec![actions(Some(&long_id), vec![button("a", "Go", "v", None)])],
        );
        assert_eq!(long_block_id.problems().len(), 1);
        let crowded = Message::new(
            "ok",
            vec![actions(
                None,
                vec![button("a", "Go", "v", None); MAX_ACTIONS + 1],
            )],
        );
        assert_eq!(crowded.problems().len(), 1);
    }
}
