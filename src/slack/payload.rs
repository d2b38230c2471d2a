//! Slack's request payloads, typed: slash commands, interactions (`block_actions`) and the
//! Events API. Fields the bot does not use are not parsed, so a payload of another shape than
//! expected fails only where the bot depends on it.

use serde::Deserialize;

/// A slash command's form body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlashCommand {
    /// Slack's certificate check: answer 200, do nothing.
    #[serde(default)]
    pub ssl_check: Option<String>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub response_url: String,
    /// The workspace the command was typed in.
    #[serde(default)]
    pub team_id: String,
}

/// The `payload` field of an interactivity request.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per request and consumed at once, never stored"
)]
pub enum Interaction {
    #[serde(rename = "block_actions")]
    BlockActions(BlockActions),
    /// Views, shortcuts…: acknowledged and ignored.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlockActions {
    pub user: User,
    /// The workspace of the click (`null` for an organisation-wide app; then the user's).
    #[serde(default)]
    pub team: Option<Team>,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub container: Option<Container>,
    #[serde(default)]
    pub response_url: Option<String>,
    /// The message the button is on (absent for buttons in views).
    #[serde(default)]
    pub message: Option<MessageRef>,
}

impl BlockActions {
    /// The `ts` of the message the button is on: a click's identity with `action_ts` and the
    /// user.
    pub fn message_ts(&self) -> Option<&str> {
        self.container
            .as_ref()
            .and_then(|c| c.message_ts.as_deref())
            .or_else(|| self.message.as_ref()?.ts.as_deref())
            .filter(|t| !t.is_empty())
    }

    /// The workspace the click came from.
    pub fn team_id(&self) -> Option<&str> {
        self.team
            .as_ref()
            .map(|t| t.id.as_str())
            .or(self.user.team_id.as_deref())
            .filter(|t| !t.is_empty())
    }

    /// Whether the button is on a message only the clicker sees.
    pub fn is_ephemeral(&self) -> bool {
        self.container.as_ref().is_some_and(|c| c.is_ephemeral)
    }

    /// The channel the button was clicked in.
    pub fn channel_id(&self) -> Option<&str> {
        self.channel
            .as_ref()
            .map(|c| c.id.as_str())
            .or_else(|| self.container.as_ref()?.channel_id.as_deref())
            .filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Team {
    #[serde(default)]
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub message_ts: Option<String>,
    /// The message is an ephemeral one: only the clicker ever saw it.
    #[serde(default)]
    pub is_ephemeral: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageRef {
    #[serde(default)]
    pub ts: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub action_id: String,
    #[serde(default)]
    pub value: String,
    /// When the button was clicked, as Slack stamps it: the same in a replayed request.
    #[serde(default)]
    pub action_ts: Option<String>,
}

/// An Events API request.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per request and consumed at once, never stored"
)]
pub enum Envelope {
    #[serde(rename = "url_verification")]
    UrlVerification { challenge: String },
    #[serde(rename = "event_callback")]
    EventCallback(Callback),
    /// `app_rate_limited` and anything newer: acknowledged.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Callback {
    #[serde(default)]
    pub event_id: Option<String>,
    /// The workspace the event was delivered for.
    #[serde(default)]
    pub team_id: Option<String>,
    pub event: Event,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "app_mention")]
    AppMention(MessageEvent),
    #[serde(rename = "message")]
    Message(MessageEvent),
    #[serde(other)]
    Other,
}

/// The fields of `app_mention` and `message` events the bot reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageEvent {
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub bot_id: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub thread_ts: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_other_and_known_ones_typed() {
        let v: Interaction =
            serde_json::from_str(r#"{"type":"view_submission","view":{}}"#).expect("parses");
        assert!(matches!(v, Interaction::Other));
        let e: Envelope = serde_json::from_str(
            r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"reaction_added","user":{"id":"U1"}}}"#,
        )
        .expect("parses");
        assert!(matches!(
            e,
            Envelope::EventCallback(Callback {
                event: Event::Other,
                ..
            })
        ));
        let ba: Interaction = serde_json::from_str(
            r#"{"type":"block_actions","user":{"id":"U1"},"container":{"channel_id":"C1"},"actions":[{"action_id":"a","value":"v","type":"button"}]}"#,
        )
        .expect("parses");
        let Interaction::BlockActions(ba) = ba else {
            panic!("block_actions")
        };
        assert_eq!(ba.channel_id(), Some("C1"));
        assert_eq!(ba.message_ts(), None);
        let ba: Interaction = serde_json::from_str(
            r#"{"type":"block_actions","user":{"id":"U1"},"container":{"type":"message","message_ts":"1.2","channel_id":"C1"},"message":{"ts":"1.2"},"actions":[{"action_id":"a","value":"v","action_ts":"1700000000.123456"}]}"#,
        )
        .expect("parses");
        let Interaction::BlockActions(ba) = ba else {
            panic!("block_actions")
        };
        assert_eq!(ba.message_ts(), Some("1.2"));
        assert!(!ba.is_ephemeral());
        let eph: Interaction = serde_json::from_str(
            r#"{"type":"block_actions","user":{"id":"U1"},"container":{"type":"message","message_ts":"1.3","channel_id":"C1","is_ephemeral":true},"actions":[]}"#,
        )
        .expect("parses");
        assert!(matches!(eph, Interaction::BlockActions(b) if b.is_ephemeral()));
        assert_eq!(
            ba.actions[0].action_ts.as_deref(),
            Some("1700000000.123456")
        );
        assert!(serde_json::from_str::<Interaction>(r#"{"type":"block_actions"}"#).is_err());
    }
}
