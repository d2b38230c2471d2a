//! `POST /gitlab/webhook`: authenticate the raw bytes, parse, decide, persist, 200.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::de::IgnoredAny;
use tracing::Instrument;

use crate::{
    gitlab::{
        PipelineHook,
        auth::{self, AuthHeaders},
        payload::{self, PipelineHead},
    },
    metrics::Metrics,
    notify::{
        event::PipelineEvent,
        mention::{self, Who},
        policy::{Decision, Outcome, classify, decide},
    },
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
    let span = tracing::info_span!("pipeline", project = head.project_key, pipeline = head.pipeline_id, status = %head.status);
    let guard = span.enter();
    if let Decision::Ignore(reason) = classify(&head, notify) {
        tracing::debug!(reason, "pipeline ignored");
        Metrics::reason(&m.webhooks_ignored, reason);
        return StatusCode::OK;
    }
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
    // With the jobs read: a failure none of whose jobs failed may be a cancellation.
    let (outcome, channel) = match decide(&hook, notify) {
        Decision::Ignore(reason) => {
            tracing::info!(reason, "pipeline ignored");
            Metrics::reason(&m.webhooks_ignored, reason);
            return StatusCode::OK;
        }
        Decision::Track { outcome, channel } => (outcome, channel),
    };
    // Who broke it: only a failure that opens an incident says so, and only an unmapped user
    // with a public email needs Slack, asked for a bounded time (see `SlackUsers::find`).
    let slack_user = match (outcome, mention::who(&hook, notify)) {
        (Outcome::Failed, Who::Mapped(id)) => SlackUser::Known(Some(id.to_string())),
        (Outcome::Failed, Who::Email(email))
            if !app.broken_refs.known_broken(
                hook.project.key().unwrap_or_default(),
                &hook.object_attributes.git_ref,
            ) =>
        {
            SlackUser::AskByEmail(email.to_string())
        }
        _ => SlackUser::Known(None),
    };
    drop(guard);
    let slack_user = match slack_user {
        SlackUser::AskByEmail(email) => app.slack_users.find(&email).instrument(span.clone()).await,
        SlackUser::Known(id) => id,
    };
    let guard = span.enter();
    let idempotency_key = header(&headers, "idempotency-key")
        .or(auth_headers.webhook_id)
        .map(str::to_string);
    let event = match PipelineEvent::new(
        &hook,
        outcome,
        channel,
        idempotency_key,
        notify,
        slack_user.as_deref(),
    ) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "could not render a pipeline event"
            );
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    };
    let (project, git_ref) = (event.project_id, event.git_ref.clone());
    // Neither the payload nor the request's span is needed while waiting for the commit.
    drop(hook);
    drop(body);
    drop(guard);
    match app.ingest.submit(event).await {
        Ok(applied) => {
            app.broken_refs.record(project, &git_ref, applied);
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

/// The pipeline user's Slack account, or the email to ask Slack about.
enum SlackUser {
    Known(Option<String>),
    AskByEmail(String),
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
