//! Liveness, readiness and metrics.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

use crate::{metrics::Channel, state::AppState, store::now_ms};

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    match app.store.ready().await {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "store not ready".to_string(),
            )
        }
    }
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    // The backlog lives in the store, so read it at scrape time.
    app.metrics.outbox_pending.clear();
    app.metrics.outbox_oldest_age.clear();
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
