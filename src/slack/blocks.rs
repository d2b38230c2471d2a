//! Block Kit: the message type every Slack post carries, and the few block shapes the bot uses.
//! Text passed in is already mrkdwn (escaped where it quotes untrusted values).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mrkdwn::truncate;

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
}

/// Block Kit: a section's text, and a context element's, is at most 3,000 characters.
pub const MAX_TEXT_CHARS: usize = 3000;
/// Block Kit: at most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;

/// A section of mrkdwn text, clipped to Slack's limit.
pub fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_TEXT_CHARS)}})
}

/// A section of two-column mrkdwn fields.
pub fn fields(texts: &[String]) -> Value {
    let fields: Vec<Value> = texts
        .iter()
        .map(|t| json!({"type": "mrkdwn", "text": truncate(t, MAX_TEXT_CHARS)}))
        .collect();
    json!({"type": "section", "fields": fields})
}

/// A context block: one line of small grey mrkdwn.
pub fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, MAX_TEXT_CHARS)}]})
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
/// `45s`, `3m 20s`, `2h 5m`, `3d 4h`; the second unit is left out when it is zero.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let (big, small) = match (d, h, m) {
        (0, 0, 0) => return format!("{s}s"),
        (0, 0, _) => ((m, 'm'), (s, 's')),
        (0, _, _) => ((h, 'h'), (m, 'm')),
        _ => ((d, 'd'), (h, 'h')),
    };
    if small.0 == 0 {
        format!("{}{}", big.0, big.1)
    } else {
        format!("{}{} {}{}", big.0, big.1, small.0, small.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(duration(-5), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(63), "1m 3s");
        assert_eq!(duration(180), "3m");
        assert_eq!(duration(192 * 60), "3h 12m");
        assert_eq!(duration(2 * 3600), "2h");
        assert_eq!(duration((3 * 1440 + 125) * 60), "3d 2h");
        assert_eq!(duration(i64::MAX).split(' ').count(), 2);
    }

    #[test]
    fn long_text_is_clipped_to_the_block_limit() {
        let long = "x".repeat(5000);
        let s = section(&long);
        assert_eq!(
            s["text"]["text"].as_str().map(|t| t.chars().count()),
            Some(MAX_TEXT_CHARS)
        );
        assert!(button("a", "Go", "v", None).get("style").is_none());
        assert_eq!(button("a", "Go", "v", Some("danger"))["style"], "danger");
    }
}
