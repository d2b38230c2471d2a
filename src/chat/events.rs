//! Slack Events API: `url_verification`, `app_mention` and `message.im`, answered from the FAQ
//! through the outbox.

use super::faq;
use crate::{
    metrics::Metrics,
    slack::{
        Reply,
        payload::{Callback, Envelope, Event, MessageEvent},
    },
    state::AppState,
    store::{NewMessage, OutboxKind},
};

pub async fn handle(app: &AppState, envelope: Envelope, retry: Option<&str>) -> Reply {
    match envelope {
        Envelope::UrlVerification { challenge } => Reply::Challenge(challenge),
        Envelope::EventCallback(cb) => {
            let outcome = callback(app, cb, retry).await;
            Metrics::reason(&app.metrics.slack_events, outcome);
            if outcome == "store_error" {
                // Slack retries non-2xx answers, which is what we want here.
                return Reply::RetryLater;
            }
            Reply::Nothing
        }
        // Anything else is acknowledged so Slack does not disable the subscription.
        Envelope::Other => Reply::Nothing,
    }
}

/// What was done with the event, as a metric label.
async fn callback(app: &AppState, cb: Callback, retry: Option<&str>) -> &'static str {
    let (ev, is_dm) = match cb.event {
        Event::AppMention(ev) => (ev, false),
        Event::Message(ev) if ev.channel_type.as_deref() == Some("im") => (ev, true),
        Event::Message(_) | Event::Other => return "ignored_type",
    };
    if ev.subtype.is_some() {
        return "ignored_subtype";
    }
    let MessageEvent {
        user,
        bot_id,
        channel,
        ts,
        thread_ts,
        text,
        ..
    } = ev;
    let user = user.unwrap_or_default();
    let own = app.identity.get().is_some_and(|me| me.user_id == user);
    if bot_id.is_some() || own || user.is_empty() {
        return "ignored_bot";
    }
    let (Some(channel), Some(ts)) = (channel, ts) else {
        return "ignored_malformed";
    };
    let question = strip_mentions(text.as_deref().unwrap_or_default());
    // Public, like the question: in the thread under a mention, or in the DM. A "don't know"
    // offers topic buttons, and those answer whoever clicks privately.
    let message = faq::answer(&app.faq, &question, &user);
    let (kind, target_ts) = match (is_dm, thread_ts) {
        (true, None) => (OutboxKind::Post, None),
        (_, Some(thread)) => (OutboxKind::Reply, Some(thread)),
        (false, None) => (OutboxKind::Reply, Some(ts.clone())),
    };
    // Both keys: Slack's event id, and the message itself (a mention in a DM
    // can arrive as two events with different ids).
    let mut keys = vec![format!("slack-msg:{channel}:{ts}")];
    if let Some(id) = cb.event_id {
        keys.push(format!("slack-event:{id}"));
    }
    let m = NewMessage {
        channel,
        kind,
        incident_id: None,
        target_ts,
        target_id: None,
        message,
    };
    match app.outbox.enqueue_once(&keys, &m).await {
        Ok(true) => "answered",
        Ok(false) => {
            tracing::info!(
                retry = retry.unwrap_or("-"),
                "duplicate Slack event ignored"
            );
            "duplicate"
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not queue an FAQ answer");
            "store_error"
        }
    }
}

/// Removes `<@U…>` mentions so only the question is matched.
fn strip_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::strip_mentions;

    #[test]
    fn mentions_are_removed() {
        assert_eq!(
            strip_mentions("<@U123> why   no cross compile?"),
            "why no cross compile?"
        );
        assert_eq!(strip_mentions("hey <@U1|bot> rpi?"), "hey rpi?");
        assert_eq!(strip_mentions("<@U1"), "");
    }
}
