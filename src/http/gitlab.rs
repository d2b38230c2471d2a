//! `POST /gitlab/webhook`: authenticate the raw bytes, then what [`crate::intake`] does
//! (parse, decide, render, persist), then 200.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::de::IgnoredAny;
use tracing::Instrument;

use crate::{
    gitlab::auth::{self, AuthHeaders},
    intake::{self, IntakeError, Via},
    metrics::Metrics,
    state::AppState,
};

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn auth_headers(h: &HeaderMap) -> AuthHeaders<'_> {
    AuthHeaders {
        token: header(h, "x-gitlab-token"),
        webhook_id: header(h, "webhook-id"),
        webhook_timestamp: header(h, "webhook-timestamp"),
        webhook_signature: header(h, "webhook-signature"),
    }
}

/// The part of authentication that needs no body, so a stranger's body is refused (401)
/// before any of it is read or takes any of the memory budget.
pub fn precheck(app: &AppState, headers: &HeaderMap) -> Result<(), super::budget::Refusal> {
    match auth::verify_headers(&app.settings.gitlab, &auth_headers(headers), (app.clock)()) {
        Ok(()) => Ok(()),
        Err(e) => {
            // The handler never sees it, so it is counted here.
            app.metrics.webhooks_received.inc();
            tracing::warn!(reason = %e, "webhook refused on its headers, unread");
            Metrics::reason(&app.metrics.webhooks_rejected, "unauthorized");
            Err((StatusCode::UNAUTHORIZED, ""))
        }
    }
}

pub async fn webhook(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let m = &app.metrics;
    m.webhooks_received.inc();
    let auth_headers = auth_headers(&headers);
    if let Err(e) = auth::verify(&app.settings.gitlab, &auth_headers, &body, (app.clock)()) {
        tracing::warn!(reason = %e, "webhook refused");
        Metrics::reason(&m.webhooks_rejected, "unauthorized");
        return StatusCode::UNAUTHORIZED;
    }
    if let Some(event) = header(&headers, "x-gitlab-event")
        && event != "Pipeline Hook"
    {
        Metrics::reason(&m.webhooks_ignored, "not a pipeline event");
        return StatusCode::OK;
    }
    let idempotency_key = header(&headers, "idempotency-key")
        .or(auth_headers.webhook_id)
        .map(str::to_string);
    let prepared = match intake::prepare(&app, &body, idempotency_key, Via::Webhook).await {
        Ok(p) => p,
        Err(IntakeError::Parse(e)) => {
            // Valid JSON of another shape is some other event: acknowledge it.
            if serde_json::from_slice::<IgnoredAny>(&body).is_ok() && !looks_like_pipeline(&body) {
                Metrics::reason(&m.webhooks_ignored, "not a pipeline event");
                return StatusCode::OK;
            }
            return malformed(m, &e);
        }
        Err(e @ IntakeError::Render(_)) => {
            tracing::error!(error = %e, "could not render a pipeline event");
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    };
    let event = match prepared.event {
        Ok(event) => event,
        Err(reason) => {
            Metrics::reason(&m.webhooks_ignored, reason);
            return StatusCode::OK;
        }
    };
    // The payload is not needed while waiting for the commit.
    drop(body);
    match intake::apply(&app, event)
        .instrument(prepared.span.clone())
        .await
    {
        Ok(applied) => {
            match applied.label() {
                l @ ("opened" | "still_failing" | "fixed") => {
                    Metrics::reason(&m.webhooks_notified, l)
                }
                l => Metrics::reason(&m.webhooks_ignored, l),
            }
            StatusCode::OK
        }
        Err(e) => {
            // Not persisted, so not accepted: GitLab records a failure we can see.
            let _guard = prepared.span.enter();
            tracing::error!(error = format!("{e:#}"), "could not store a pipeline event");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

fn malformed(m: &Metrics, e: &serde_json::Error) -> StatusCode {
    tracing::warn!(
        line = e.line(),
        column = e.column(),
        "malformed webhook body"
    );
    Metrics::reason(&m.webhooks_rejected, "malformed");
    StatusCode::BAD_REQUEST
}

/// Distinguishes "a pipeline payload with a bad field" (400) from "another
/// kind of event" (200) without a second full parse of a large body.
fn looks_like_pipeline(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        object_kind: Option<String>,
    }
    serde_json::from_slice::<Kind>(body)
        .ok()
        .and_then(|k| k.object_kind)
        .is_none_or(|k| k == "pipeline")
}
