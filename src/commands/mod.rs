//! `/arm` handlers: answer at once, do slow work in the background and send
//! the result through `response_url`.

pub mod faq;
pub mod grammar;
pub mod reap;
pub mod status;

use std::{
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

use axum::response::Response;
use serde_json::{Value, json};

use crate::{
    app::AppState,
    http::slack::ephemeral,
    notify::render::Message,
    slack::{
        api::{SlackError, post_response_url},
        mrkdwn::{escape, truncate},
    },
    store::{NewMessage, OutboxKind, now_ms},
};
use grammar::{ArmCommand, HELP};

/// A verified slash command.
#[derive(Debug, Clone)]
pub struct SlashRequest {
    pub text: String,
    pub user_id: String,
    pub channel_id: String,
    pub response_url: String,
}

pub async fn handle(app: AppState, req: SlashRequest) -> Response {
    let started = Instant::now();
    let cmd = grammar::parse(&req.text);
    let span = tracing::info_span!("command", command = cmd.name(), user = %req.user_id);
    let _enter = span.enter();
    let name = cmd.name();
    let immediate = match cmd {
        ArmCommand::Help => ephemeral(HELP, None),
        ArmCommand::Unknown(text) => ephemeral(
            format!("I don't know `{}`. {HELP}", escape(&truncate(&text, 100))),
            None,
        ),
        ArmCommand::Faq { question } => faq::slash(&app, question.as_deref()),
        // These answer later and record their own outcome and duration.
        ArmCommand::Status { zones } => return status::start(&app, &req, zones),
        ArmCommand::Reap => return reap::start(&app, &req),
    };
    app.metrics
        .command(name, "ok", started.elapsed().as_secs_f64());
    immediate
}

/// Sends a command's late result: `response_url` while it is usable (5 posts
/// within 30 minutes), else a direct message to the user through the outbox.
pub struct Responder {
    app: AppState,
    response_url: String,
    user_id: String,
    sent: AtomicU8,
    started: Instant,
}

const RESPONSE_URL_POSTS: u8 = 5;
const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(29 * 60);

impl Responder {
    pub fn new(app: AppState, req: &SlashRequest) -> Self {
        Self::for_url(app, &req.response_url, &req.user_id)
    }

    pub fn for_url(app: AppState, response_url: &str, user_id: &str) -> Self {
        Self {
            app,
            response_url: response_url.to_string(),
            user_id: user_id.to_string(),
            sent: AtomicU8::new(0),
            started: Instant::now(),
        }
    }

    /// `body` is a response_url message (`text`, `blocks`, `response_type`,
    /// `replace_original`, …).
    pub async fn send(&self, body: Value) {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        if n < RESPONSE_URL_POSTS && self.started.elapsed() < RESPONSE_URL_LIFETIME {
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
        self.fallback(&body).await;
    }

    async fn fallback(&self, body: &Value) {
        // Deleting or replacing a message has no meaning outside response_url.
        let Some(text) = body["text"].as_str() else {
            tracing::warn!("response_url unusable; nothing to send instead");
            return;
        };
        let message = Message {
            text: text.to_string(),
            blocks: body["blocks"].as_array().cloned().unwrap_or_default(),
        };
        let m = NewMessage {
            channel: self.user_id.clone(),
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            message,
        };
        match self.app.store.enqueue(&m, now_ms()).await {
            Ok(_) => self.app.wake.notify_one(),
            Err(e) => tracing::error!(error = format!("{e:#}"), "could not queue a command result"),
        }
    }
}

/// A response_url body shown only to the user.
pub fn ephemeral_body(text: &str, blocks: Vec<Value>) -> Value {
    let mut v = json!({"response_type": "ephemeral", "text": text});
    if !blocks.is_empty() {
        v["blocks"] = Value::Array(blocks);
    }
    v
}
