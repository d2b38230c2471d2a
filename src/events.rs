//! Slack Events API: `url_verification`, `app_mention` and `message.im`,
//! answered from the FAQ through the outbox.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{
    app::AppState,
    commands::faq,
    metrics::Metrics,
    store::{NewMessage, OutboxKind, now_ms},
};

pub async fn handle(app: AppState, envelope: Value, retry: Option<String>) -> Response {
    match envelope["type"].as_str() {
        Some("url_verification") => match envelope["challenge"].as_str() {
            Some(c) => Json(json!({"challenge": c})).into_response(),
            None => (
                StatusCode::BAD_REQUEST,
                "url_verification without a challenge",
            )
                .into_response(),
        },
        Some("event_callback") => {
            let outcome = callback(&app, &envelope, retry.as_deref()).await;
            Metrics::reason(&app.metrics.slack_events, outcome);
            if outcome == "store_error" {
                // Slack retries non-2xx answers, which is what we want here.
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            StatusCode::OK.into_response()
        }
        // Anything else is acknowledged so Slack does not disable the subscription.
        _ => StatusCode::OK.into_response(),
    }
}

/// What was done with the event, as a metric label.
async fn callback(app: &AppState, envelope: &Value, retry: Option<&str>) -> &'static str {
    let ev = &envelope["event"];
    let kind = ev["type"].as_str().unwrap_or_default();
    let is_dm = kind == "message" && ev["channel_type"] == "im";
    if kind != "app_mention" && !is_dm {
        return "ignored_type";
    }
    if ev.get("subtype").is_some_and(|s| !s.is_null()) {
        return "ignored_subtype";
    }
    let user = ev["user"].as_str().unwrap_or_default();
    let own = app.identity.get().is_some_and(|me| me.user_id == user);
    if ev.get("bot_id").is_some_and(|b| !b.is_null()) || own || user.is_empty() {
        return "ignored_bot";
    }
    let (Some(channel), Some(ts)) = (ev["channel"].as_str(), ev["ts"].as_str()) else {
        return "ignored_malformed";
    };
    let question = strip_mentions(ev["text"].as_str().unwrap_or_default());
    let message = faq::answer(&app.faq, &question);
    let (kind, target_ts) = match (is_dm, ev["thread_ts"].as_str()) {
        (true, None) => (OutboxKind::Post, None),
        (_, Some(thread)) => (OutboxKind::Reply, Some(thread.to_string())),
        (false, None) => (OutboxKind::Reply, Some(ts.to_string())),
    };
    let m = NewMessage {
        channel: channel.to_string(),
        kind,
        incident_id: None,
        target_ts,
        message,
    };
    // Both keys: Slack's event id, and the message itself (a mention in a DM
    // can arrive as two events with different ids).
    let mut keys = vec![format!("slack-msg:{channel}:{ts}")];
    if let Some(id) = envelope["event_id"].as_str() {
        keys.push(format!("slack-event:{id}"));
    }
    match app.store.enqueue_once(&keys, &m, now_ms()).await {
        Ok(true) => {
            app.wake.notify_one();
            "answered"
        }
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
