//! A relevant pipeline event as the ingest writer applies it: the few fields the store
//! needs, its messages already rendered (so the single writer spends its time on SQL), and
//! what applying it did.

use chrono::{DateTime, Utc};

use super::{
    mention,
    policy::Outcome,
    render::{self, FailedJobs, Failure, FixedNotice},
    settings::NotifySettings,
};
use crate::gitlab::PipelineHook;

/// An authenticated, relevant pipeline event waiting to be applied: the
/// payload's few fields the store needs and its messages, already rendered,
/// so the single writer spends its time on SQL alone.
#[derive(Debug, Clone)]
pub struct PipelineEvent {
    pub project_id: u64,
    pub project_path: String,
    /// The project's page; with [`PipelineEvent::project_has_id`], the store records the
    /// project as one catch-up watches.
    pub project_web_url: String,
    /// The payload named the project by its GitLab id (not only by path, as before 2017).
    pub project_has_id: bool,
    pub git_ref: String,
    pub pipeline_id: u64,
    /// Children count as part of the pipeline that started them.
    pub group_pipeline: u64,
    pub status: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub pipeline_url: String,
    pub channel: String,
    /// GitLab's `Idempotency-Key` / `webhook-id`, when sent.
    pub idempotency_key: Option<String>,
    pub notice: Notice,
}

/// The messages an event may queue, whichever way its incident goes.
#[derive(Debug, Clone)]
pub enum Notice {
    Failed {
        /// The failure, as the thread shows it.
        failure: Box<Failure>,
        /// What the incident keeps of it, should it be the incident's latest failure.
        kept: FailedJobs,
        /// `kept` as stored with the incident.
        kept_json: String,
        /// The root, should this failure open an incident.
        root_json: String,
        /// The first reply in the thread, should this failure open an incident: who started
        /// the pipeline, mentioned when their Slack account is known (see [`mention`]).
        first_reply_json: Option<String>,
    },
    Succeeded(FixedNotice),
}

impl PipelineEvent {
    /// Renders what the event may say; runs in the request, off the writer. `slack_user` is
    /// the pipeline user's Slack id, when it is known, for the first reply of a new incident.
    pub fn new(
        hook: &PipelineHook,
        outcome: Outcome,
        channel: String,
        idempotency_key: Option<String>,
        settings: &NotifySettings,
        slack_user: Option<&str>,
    ) -> anyhow::Result<Self> {
        let a = &hook.object_attributes;
        let notice = match outcome {
            Outcome::Failed => {
                let failure = Box::new(Failure::new(hook, settings));
                let kept = failure.kept();
                Notice::Failed {
                    kept_json: serde_json::to_string(&kept)?,
                    kept,
                    root_json: serde_json::to_string(&render::root_opened(&failure))?,
                    first_reply_json: mention::first_reply(hook, slack_user)
                        .map(|m| serde_json::to_string(&m))
                        .transpose()?,
                    failure,
                }
            }
            Outcome::Succeeded => Notice::Succeeded(FixedNotice::new(hook)),
        };
        let project_id = hook
            .project
            .key()
            .ok_or_else(|| anyhow::anyhow!("the payload names no project"))?;
        Ok(Self {
            project_id,
            project_path: hook.project.path().to_string(),
            project_web_url: hook.project.web_url.clone(),
            project_has_id: hook.project.id.is_some(),
            git_ref: a.git_ref.clone(),
            pipeline_id: a.id,
            group_pipeline: hook.parent_pipeline_id().unwrap_or(a.id),
            status: a.status.clone(),
            finished_at: a.finished_at,
            pipeline_url: render::pipeline_url(hook),
            channel,
            idempotency_key,
            notice,
        })
    }

    pub fn outcome(&self) -> Outcome {
        match self.notice {
            Notice::Failed { .. } => Outcome::Failed,
            Notice::Succeeded(_) => Outcome::Succeeded,
        }
    }

    /// The keys that make a repeat of this event a duplicate: the natural key, and GitLab's
    /// idempotency key when it sent one.
    pub fn dedup_keys(&self) -> Vec<String> {
        let mut keys = vec![self.natural_key()];
        if let Some(k) = &self.idempotency_key {
            keys.push(format!("idem:{k}"));
        }
        keys
    }

    /// Same project, pipeline, status and finish time: the same event even
    /// when GitLab sent it twice under different idempotency keys.
    fn natural_key(&self) -> String {
        format!(
            "pipeline:{}:{}:{}:{}",
            self.project_id,
            self.pipeline_id,
            self.status,
            self.finished_at
                .map_or_else(|| "-".into(), |t| t.timestamp().to_string())
        )
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Duplicate,
    Stale { newest: u64 },
    Opened { incident: i64 },
    StillFailing { incident: i64 },
    Fixed { incident: i64 },
    StillHealthy,
}

impl Applied {
    /// For logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Stale { .. } => "stale",
            Self::Opened { .. } => "opened",
            Self::StillFailing { .. } => "still_failing",
            Self::Fixed { .. } => "fixed",
            Self::StillHealthy => "healthy",
        }
    }
}
