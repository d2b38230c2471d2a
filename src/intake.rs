//! A Pipeline Hook document in, a pipeline event applied: what the webhook path does once a
//! request is authenticated, shared with catch-up (which builds the same document from the
//! GitLab API), so both decide, render, de-duplicate and thread alike.
//!
//! Two steps, so a caller can let go of a large body between them: [`prepare`] parses in one
//! pass (skipping the jobs of events the policy ignores), decides, asks Slack who the
//! pipeline's user is when a new incident needs it, and renders; [`apply`] hands the event to
//! the ingest writer and waits for its commit.

use tracing::Instrument;

use crate::{
    gitlab::{
        PipelineHook,
        payload::{self, PipelineHead},
    },
    notify::{
        event::{Applied, PipelineEvent},
        mention::{self, Who},
        policy::{Decision, Outcome, classify, decide},
    },
    state::AppState,
};

/// How a pipeline document reached the bot; logged with every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Webhook,
    /// Read from the GitLab API by catch-up.
    CatchUp,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::CatchUp => "catch_up",
        }
    }
}

/// A document decided on: an event to apply, or why there is none.
#[derive(Debug)]
pub struct Prepared {
    /// The event's span (project, pipeline, status, via), for the caller's own logging.
    pub span: tracing::Span,
    pub event: Result<PipelineEvent, &'static str>,
}

/// Why a document could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Not a pipeline payload the parser accepts.
    #[error("malformed pipeline payload: {0}")]
    Parse(#[from] serde_json::Error),
    /// Rendering the notice failed (a bug, not the payload's fault).
    #[error("could not render a pipeline event: {0:#}")]
    Render(anyhow::Error),
}

/// The pipeline user's Slack account, or the email to ask Slack about.
enum SlackUser {
    Known(Option<String>),
    AskByEmail(String),
}

/// Parses `body`, decides with the `[notify]` policy and renders the event's messages.
pub async fn prepare(
    app: &AppState,
    body: &[u8],
    idempotency_key: Option<String>,
    via: Via,
) -> Result<Prepared, IntakeError> {
    let notify = &app.settings.notify;
    let tracked = |head: &PipelineHead| matches!(classify(head, notify), Decision::Track { .. });
    let parsed = payload::parse_pipeline(body, tracked)?;
    let head = parsed.hook.head();
    let span = tracing::info_span!(
        "pipeline",
        project = head.project_key,
        pipeline = head.pipeline_id,
        status = %head.status,
        via = via.label()
    );
    let guard = span.enter();
    if let Decision::Ignore(reason) = classify(&head, notify) {
        tracing::debug!(reason, "pipeline ignored");
        drop(guard);
        return Ok(Prepared {
            span,
            event: Err(reason),
        });
    }
    let hook = if parsed.jobs_read {
        parsed.hook
    } else {
        // Fields after the jobs only ever make the policy ignore an event;
        // should that change, the jobs are read rather than silently missing.
        serde_json::from_slice::<PipelineHook>(body)?
    };
    // With the jobs read: a failure none of whose jobs failed may be a cancellation.
    let (outcome, channel) = match decide(&hook, notify) {
        Decision::Ignore(reason) => {
            tracing::info!(reason, "pipeline ignored");
            drop(guard);
            return Ok(Prepared {
                span,
                event: Err(reason),
            });
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
    let event = span
        .in_scope(|| {
            PipelineEvent::new(
                &hook,
                outcome,
                channel,
                idempotency_key,
                notify,
                slack_user.as_deref(),
            )
        })
        .map_err(IntakeError::Render)?;
    Ok(Prepared {
        span,
        event: Ok(event),
    })
}

/// Applies `event` (group commit) and remembers what it did to its ref.
pub async fn apply(app: &AppState, event: PipelineEvent) -> anyhow::Result<Applied> {
    let (project, git_ref) = (event.project_id, event.git_ref.clone());
    let applied = app.ingest.submit(event).await?;
    app.broken_refs.record(project, &git_ref, applied);
    tracing::info!(result = applied.label(), "pipeline event applied");
    Ok(applied)
}
