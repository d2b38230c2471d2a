//! `POST /gitlab/webhook`: authenticate the raw bytes, parse, decide, persist, 200.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::de::IgnoredAny;

use crate::{
    gitlab::{
        PipelineHook,
        auth::{self, AuthHeaders},
        payload::{self, PipelineHead},
    },
    metrics::Metrics,
    notify::event::PipelineEvent,
    notify::policy::{Decision, classify},
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
    if let Some(event) = header(&headers, "x-gitlab-event") {
        if event != "Pipeline Hook" {
            Metrics::reason(&m.webhooks_ignored, "not a pipeline event");
            return StatusCode::OK;
        }
    }
    let notify = &app.settings.notify;
    let tracked = |head: &PipelineHead| matches!(classify(head, notify), Decision::Track { .. });
    let parsed = match payload::parse_pipeline(&body, tracked) {
        Ok(p) => p,
        Err(e) => {
            // Valid JSON of another shape is some other event: acknowledge it.
            if serde_json::from_slice::<IgnoredAny>(&body).is_ok() && !looks_like_pipeline(&body) {
                Metrics::reason(&m.webhooks_ignored, "not a pipeline event");
                return StatusCode::OK;
            }
            return malformed(m, &e);
        }
    };
    let head = parsed.hook.head();
    let span = tracing::info_span!("pipeline", project = head.project_id, pipeline = head.pipeline_id, status = %head.status);
    let _guard = span.enter();
    let (outcome, channel) = match classify(&head, notify) {
        Decision::Ignore(reason) => {
            tracing::debug!(reason, "pipeline ignored");
            Metrics::reason(&m.webhooks_ignored, reason);
            return StatusCode::OK;
        }
        Decision::Track { outcome, channel } => (outcome, channel),
    };
    let hook = if parsed.jobs_read {
        parsed.hook
    } else {
        // Fields after the jobs only ever make the policy ignore an event;
        // should that change, the jobs are read rather than silently missing.
        match serde_json::from_slice::<PipelineHook>(&body) {
            Ok(h) => h,
            Err(e) => return malformed(m, &e),
        }
    };
    let idempotency_key = header(&headers, "idempotency-key")
        .or(auth_headers.webhook_id)
        .map(str::to_string);
    let event = match PipelineEvent::new(&hook, outcome, channel, idempotency_key, notify) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "could not render a pipeline event"
            );
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    };
    // Neither the payload nor the request's span is needed while waiting for the commit.
    drop(hook);
    drop(body);
    drop(_guard);
    match app.ingest.submit(event).await {
        Ok(applied) => {
            tracing::info!(result = applied.label(), "pipeline event applied");
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
