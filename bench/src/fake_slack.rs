//! A fake Slack Web API on loopback, faithful to what armbot relies on:
//! `chat.postMessage` (with message metadata), `chat.update`,
//! `conversations.history` / `conversations.replies` with
//! `include_all_metadata`, `auth.test`, and `response_url` posts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::post,
};
use serde_json::{Value, json};

/// One message the fake accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub metadata: Value,
    /// The whole request body (blocks, buttons, `replace_original`…).
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct FakeSlack {
    inner: Arc<Mutex<Vec<Received>>>,
    notify: Arc<tokio::sync::Notify>,
}

impl FakeSlack {
    /// Serves on 127.0.0.1 on a free port; returns the base URL.
    pub async fn start(self) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
        let app = Router::new()
            .route("/api/{method}", post(api).get(read))
            .route("/response/{*rest}", post(response_url))
            .with_state(self);
        crate::serve_loopback(app).await
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when a message arrives.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// The first message that satisfies `pred`, waiting up to `timeout` for it.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a message pushed in between still wakes us.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.received().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    fn push(&self, r: Received) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        self.notify.notify_waiters();
    }
}

async fn api(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match method.as_str() {
        "auth.test" => (
            StatusCode::OK,
            Json(json!({"ok": true, "user_id": "UBOT", "bot_id": "BBOT"})),
        ),
        "chat.postMessage" | "chat.update" => {
            let channel = v["channel"].as_str().unwrap_or_default().to_string();
            let ts = if method == "chat.update" {
                v["ts"].as_str().unwrap_or_default().to_string()
            } else {
                format!("1700000000.{:06}", fake.len() + 1)
            };
            fake.push(Received {
                method,
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts: v["thread_ts"].as_str().map(str::to_string),
                text: v["text"].as_str().unwrap_or_default().to_string(),
                metadata: v["metadata"].clone(),
                body: v.clone(),
                at: Instant::now(),
            });
            (
                StatusCode::OK,
                Json(json!({"ok": true, "channel": channel, "ts": ts})),
            )
        }
        _ => (
            StatusCode::OK,
            Json(json!({"ok": false, "error": "unknown_method"})),
        ),
    }
}

async fn read(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let channel = q.get("channel").cloned().unwrap_or_default();
    let thread = if method == "conversations.replies" {
        q.get("ts").cloned()
    } else {
        None
    };
    let messages: Vec<Value> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "chat.postMessage" && r.channel == channel)
        .filter(|r| thread.is_none() || r.thread_ts == thread)
        .map(|r| json!({"ts": r.ts, "text": r.text, "metadata": r.metadata}))
        .collect();
    Json(json!({"ok": true, "messages": messages}))
}

async fn response_url(
    State(fake): State<FakeSlack>,
    Path(rest): Path<String>,
    body: Bytes,
) -> &'static str {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.push(Received {
        method: "response_url".into(),
        channel: rest,
        ts: String::new(),
        thread_ts: None,
        text: v["text"].as_str().unwrap_or_default().to_string(),
        metadata: Value::Null,
        body: v.clone(),
        at: Instant::now(),
    });
    "ok"
}
