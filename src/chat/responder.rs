//! Late answers to a command or a click: through its `response_url` while Slack still takes
//! it (5 posts within 30 minutes), else as a direct message through the outbox.

use std::{
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

use crate::{
    slack::{
        Reply,
        api::{SlackError, post_response_url},
    },
    state::AppState,
    store::{NewMessage, OutboxKind},
};

const RESPONSE_URL_POSTS: u8 = 5;
const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(29 * 60);

pub struct Responder {
    app: AppState,
    response_url: String,
    user_id: String,
    sent: AtomicU8,
    started: Instant,
}

impl Responder {
    pub fn new(app: AppState, response_url: &str, user_id: &str) -> Self {
        Self {
            app,
            response_url: response_url.to_string(),
            user_id: user_id.to_string(),
            sent: AtomicU8::new(0),
            started: Instant::now(),
        }
    }

    pub async fn send(&self, reply: Reply) {
        let Some(body) = reply.body() else {
            return;
        };
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        if n < RESPONSE_URL_POSTS
            && self.started.elapsed() < RESPONSE_URL_LIFETIME
            && !self.response_url.is_empty()
        {
            for attempt in 0..3u32 {
                match post_response_url(&self.app.http, &self.response_url, &body).await {
                    Ok(()) => {
                        self.app.metrics.slack_call("response_url", "ok");
                        return;
                    }
                    Err(e) => {
                        self.app.metrics.slack_call("response_url", e.outcome());
                        let wait = match e {
                            SlackError::RateLimited(d) => d,
                            SlackError::Transient(_) => Duration::from_millis(200 << attempt),
                            SlackError::Permanent(_) => break,
                        };
                        tracing::warn!(error = %e, "response_url failed");
                        tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                    }
                }
            }
        }
        self.fallback(&reply).await;
    }

    async fn fallback(&self, reply: &Reply) {
        // Deleting or replacing a message has no meaning outside response_url.
        let Some(message) = reply.message() else {
            tracing::warn!("response_url unusable; nothing to send instead");
            return;
        };
        let m = NewMessage {
            channel: self.user_id.clone(),
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            target_id: None,
            message: message.clone(),
        };
        if let Err(e) = self.app.outbox.enqueue(&m).await {
            tracing::error!(error = format!("{e:#}"), "could not queue a command result");
        }
    }
}
