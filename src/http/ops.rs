//! Liveness, readiness and metrics.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

use crate::{
    delivery::worker::BLOCKED,
    metrics::{Channel, ChannelReason},
    state::AppState,
    store::now_ms,
};

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready: the ingest writer and the worker are alive and moving, the store answers, is the
/// one the service opened, and has every migration. The
/// body adds what an operator should know while ready: channels waiting for them.
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    if let Some(why) = app.health.trouble() {
        tracing::warn!(why = %why, "not ready");
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}"));
    }
    if let Err(e) = app.store.ready().await {
        tracing::warn!(error = format!("{e:#}"), "not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not ready: {e}"),
        );
    }
    let mut body = "ready".to_string();
    for (channel, why) in app.store.outbox_blocked(BLOCKED).await.unwrap_or_default() {
        body.push_str(&format!(
            "\nchannel {channel} waits for an operator: {}",
            why.trim_start_matches(BLOCKED)
        ));
    }
    (StatusCode::OK, body)
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    // The backlog lives in the store, so read it at scrape time.
    app.metrics.outbox_pending.clear();
    app.metrics.outbox_oldest_age.clear();
    app.metrics.outbox_blocked.clear();
    for (channel, why) in app.store.outbox_blocked(BLOCKED).await.unwrap_or_default() {
        let reason = why.rsplit(": ").next().unwrap_or_default().to_string();
        app.metrics
            .outbox_blocked
            .get_or_create(&ChannelReason { channel, reason })
            .set(1);
    }
    if let Ok(backlog) = app.store.outbox_backlog().await {
        let now = now_ms();
        for b in backlog {
            let label = Channel { channel: b.channel };
            app.metrics
                .outbox_pending
                .get_or_create(&label)
                .set(b.depth);
            app.metrics
                .outbox_oldest_age
                .get_or_create(&label)
                .set((now - b.oldest_created_at).max(0) / 1000);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
