//! What the bot answers to a slash command, a button click or an event, without any HTTP type:
//! the HTTP edge turns a [`Reply`] into a response, and a late answer posts the same body to
//! the request's `response_url`.

use serde_json::{Value, json};

use super::blocks::Message;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 200 with an empty body: nothing to show now (or the answer follows later).
    Nothing,
    /// Shown only to the person who typed the command.
    Ephemeral(Message),
    /// Shown only to the person who clicked, leaving the message with the button as it is.
    Aside(Message),
    /// Posted in the channel for everyone.
    InChannel(Message),
    /// Replaces the message that carried the button.
    ReplaceOriginal(Message),
    /// Removes the message that carried the button.
    DeleteOriginal,
    /// The Events API's `url_verification` answer.
    Challenge(String),
    /// The request could not be taken now (the store is down): 503, so Slack retries it.
    RetryLater,
}

impl Reply {
    pub fn ephemeral(text: impl Into<String>) -> Self {
        Self::Ephemeral(Message::plain(text))
    }

    pub fn aside(text: impl Into<String>) -> Self {
        Self::Aside(Message::plain(text))
    }

    /// The JSON body, for an HTTP response or a `response_url` post; `None` for
    /// an empty 200 or a 503.
    pub fn body(&self) -> Option<Value> {
        let (mut v, m) = match self {
            Self::Nothing | Self::RetryLater => return None,
            Self::Challenge(c) => return Some(json!({"challenge": c})),
            Self::DeleteOriginal => return Some(json!({"delete_original": true})),
            Self::Ephemeral(m) => (json!({"response_type": "ephemeral"}), m),
            Self::Aside(m) => (
                json!({"response_type": "ephemeral", "replace_original": false}),
                m,
            ),
            Self::InChannel(m) => (json!({"response_type": "in_channel"}), m),
            Self::ReplaceOriginal(m) => (json!({"replace_original": true}), m),
        };
        v["text"] = json!(m.text);
        if !m.blocks.is_empty() {
            v["blocks"] = Value::Array(m.blocks.clone());
        }
        Some(v)
    }

    /// The message, for a reply that must be sent some other way (a direct message when the
    /// `response_url` can no longer be used).
    pub fn message(&self) -> Option<&Message> {
        match self {
            Self::Ephemeral(m) | Self::Aside(m) | Self::InChannel(m) | Self::ReplaceOriginal(m) => {
                Some(m)
            }
            Self::Nothing | Self::DeleteOriginal | Self::Challenge(_) | Self::RetryLater => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_slacks_shapes() {
        assert_eq!(
            Reply::ephemeral("hi").body(),
            Some(json!({"response_type": "ephemeral", "text": "hi"}))
        );
        assert_eq!(
            Reply::aside("no").body(),
            Some(json!({"response_type": "ephemeral", "replace_original": false, "text": "no"}))
        );
        let m = Message::new("t", vec![json!({"type": "divider"})]);
        assert_eq!(
            Reply::ReplaceOriginal(m).body(),
            Some(json!({"replace_original": true, "text": "t", "blocks": [{"type": "divider"}]}))
        );
        assert_eq!(Reply::Nothing.body(), None);
        assert_eq!(Reply::RetryLater.message(), None);
    }
}
