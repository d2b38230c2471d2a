//! Applying accepted pipeline events: de-duplication, the ref's incident and
//! the messages it calls for, all in one transaction per batch.

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::{
    Store,
    outbox::{self, NewMessage, OutboxKind},
};
use crate::{
    config::NotifySettings,
    gitlab::PipelineHook,
    notify::{
        incident::{self, RefHead, Step},
        policy::Outcome,
        render::{self, FixedNotice, Message, RootStatus},
    },
};

/// An authenticated, relevant pipeline event waiting to be applied: the
/// payload's few fields the store needs and its messages, already rendered,
/// so the single writer spends its time on SQL alone.
#[derive(Debug, Clone)]
pub struct PipelineEvent {
    pub project_id: u64,
    pub project_path: String,
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
        /// The root's body, should this failure open an incident.
        body: Message,
        /// `body` as stored with the incident.
        body_json: String,
        /// The thread reply, should the ref already be broken.
        reply_json: String,
    },
    Succeeded(FixedNotice),
}

impl PipelineEvent {
    /// Renders what the event may say; runs in the request, off the writer.
    pub fn new(
        hook: &PipelineHook,
        outcome: Outcome,
        channel: String,
        idempotency_key: Option<String>,
        settings: &NotifySettings,
    ) -> anyhow::Result<Self> {
        let a = &hook.object_attributes;
        let notice = match outcome {
            Outcome::Failed => {
                let body = render::failure_message(hook, settings);
                Notice::Failed {
                    body_json: serde_json::to_string(&body)?,
                    reply_json: serde_json::to_string(&render::still_failing(&body))?,
                    body,
                }
            }
            Outcome::Succeeded => Notice::Succeeded(FixedNotice::new(hook)),
        };
        Ok(Self {
            project_id: hook.project.id,
            project_path: hook.project.path_with_namespace.clone(),
            git_ref: a.git_ref.clone(),
            pipeline_id: a.id,
            group_pipeline: hook.parent_pipeline_id().unwrap_or(a.id),
            status: a.status.clone(),
            finished_at: a.finished_at,
            pipeline_url: a
                .url
                .clone()
                .unwrap_or_else(|| format!("{}/-/pipelines/{}", hook.project.web_url, a.id)),
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

struct OpenIncident {
    id: i64,
    channel: String,
    opened_at: i64,
    failures: i64,
    root_body: Message,
}

impl Store {
    /// Applies events in order in one transaction (group commit): either all
    /// of them are durable when this returns `Ok`, or none is.
    pub async fn apply_pipeline_events(
        &self,
        events: &[PipelineEvent],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Applied>> {
        let mut tx = self.pool().begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for ev in events {
            out.push(apply_one(&mut tx, ev, now).await?);
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// Few statements per event: each one is a round trip to SQLite's thread,
/// and the batch holds the write lock until it commits.
async fn apply_one(
    conn: &mut SqliteConnection,
    ev: &PipelineEvent,
    now: DateTime<Utc>,
) -> anyhow::Result<Applied> {
    let now_ms = now.timestamp_millis();
    let natural = ev.natural_key();
    let idem = ev.idempotency_key.as_ref().map(|k| format!("idem:{k}"));
    let keys: Vec<&str> = std::iter::once(natural.as_str())
        .chain(idem.as_deref())
        .collect();
    if !super::record_keys(&mut *conn, &keys, now_ms).await? {
        return Ok(Applied::Duplicate);
    }

    let project_id = ev.project_id as i64;
    let git_ref = ev.git_ref.as_str();
    let row = sqlx::query(
        "SELECT h.last_pipeline, h.open_incident, i.id, i.channel, i.opened_at, i.failures, i.root_body
           FROM ref_heads h LEFT JOIN incidents i ON i.id = h.open_incident
          WHERE h.project_id = ? AND h.git_ref = ?",
    )
    .bind(project_id)
    .bind(git_ref)
    .fetch_optional(&mut *conn)
    .await?;
    let (last_pipeline, open_id): (Option<i64>, Option<i64>) = match &row {
        Some(r) => (r.try_get("last_pipeline")?, r.try_get("open_incident")?),
        None => (None, None),
    };
    let head = RefHead {
        last_pipeline: last_pipeline.map(|p| p as u64),
        broken: open_id.is_some(),
    };
    let group = ev.group_pipeline;
    let step = incident::step(&head, group, ev.outcome());
    if let Step::Stale { newest } = step {
        return Ok(Applied::Stale { newest });
    }
    let next = incident::advance(&head, group, step);
    let pipeline_url = ev.pipeline_url.as_str();
    let event_time = ev.finished_at.unwrap_or(now);

    let (applied, open_after) = match (step, &ev.notice) {
        (Step::Stale { .. } | Step::StillHealthy, _) => (Applied::StillHealthy, None),
        (
            Step::Open,
            Notice::Failed {
                body, body_json, ..
            },
        ) => {
            let id: i64 = sqlx::query(
                "INSERT INTO incidents (project_id, project_path, git_ref, channel, root_body, first_pipeline,
                                        latest_pipeline, latest_url, failures, opened_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
            )
            .bind(project_id)
            .bind(&ev.project_path)
            .bind(git_ref)
            .bind(&ev.channel)
            .bind(body_json)
            .bind(ev.pipeline_id as i64)
            .bind(ev.pipeline_id as i64)
            .bind(pipeline_url)
            .bind(event_time.timestamp())
            .fetch_one(&mut *conn)
            .await?
            .try_get("id")?;
            let status = RootStatus::Broken {
                since: event_time,
                failures: 1,
                latest_pipeline: ev.pipeline_id,
                latest_url: pipeline_url.to_string(),
            };
            let root = NewMessage {
                channel: ev.channel.clone(),
                kind: OutboxKind::Post,
                incident_id: Some(id),
                target_ts: None,
                message: render::root_message(body, &status),
            };
            outbox::insert(conn, &root, now_ms).await?;
            (Applied::Opened { incident: id }, Some(id))
        }
        (Step::StillFailing, Notice::Failed { reply_json, .. }) => {
            let inc = open_incident(row.as_ref())?;
            let failures = inc.failures + 1;
            sqlx::query("UPDATE incidents SET failures = ?, latest_pipeline = ?, latest_url = ? WHERE id = ?")
                .bind(failures)
                .bind(ev.pipeline_id as i64)
                .bind(pipeline_url)
                .bind(inc.id)
                .execute(&mut *conn)
                .await?;
            let status = RootStatus::Broken {
                since: DateTime::from_timestamp(inc.opened_at, 0).unwrap_or(now),
                failures: failures as u32,
                latest_pipeline: ev.pipeline_id,
                latest_url: pipeline_url.to_string(),
            };
            queue_thread_pair(conn, &inc, reply_json, &status, now_ms).await?;
            (Applied::StillFailing { incident: inc.id }, Some(inc.id))
        }
        (Step::Fixed, Notice::Succeeded(fixed)) => {
            let inc = open_incident(row.as_ref())?;
            let broken_for = event_time.timestamp() - inc.opened_at;
            sqlx::query("UPDATE incidents SET fixed_at = ?, fixed_by = ? WHERE id = ?")
                .bind(event_time.timestamp())
                .bind(ev.pipeline_id as i64)
                .bind(inc.id)
                .execute(&mut *conn)
                .await?;
            let status = RootStatus::Fixed {
                by_pipeline: ev.pipeline_id,
                by_url: pipeline_url.to_string(),
                broken_for_secs: broken_for,
            };
            let reply = serde_json::to_string(&fixed.message(broken_for))?;
            queue_thread_pair(conn, &inc, &reply, &status, now_ms).await?;
            (Applied::Fixed { incident: inc.id }, None)
        }
        (step, _) => anyhow::bail!("{step:?} cannot follow a {:?} pipeline", ev.outcome()),
    };
    sqlx::query(
        "INSERT INTO ref_heads (project_id, git_ref, last_pipeline, open_incident) VALUES (?, ?, ?, ?)
         ON CONFLICT (project_id, git_ref) DO UPDATE SET last_pipeline = excluded.last_pipeline,
                                                         open_incident = excluded.open_incident",
    )
    .bind(project_id)
    .bind(git_ref)
    .bind(next.last_pipeline.map(|p| p as i64))
    .bind(open_after)
    .execute(&mut *conn)
    .await?;
    Ok(applied)
}

/// A reply in the incident's thread, then the root brought up to date. Both
/// go to the incident's channel so per-channel order keeps them behind the root.
async fn queue_thread_pair(
    conn: &mut SqliteConnection,
    inc: &OpenIncident,
    reply_json: &str,
    status: &RootStatus,
    now_ms: i64,
) -> anyhow::Result<()> {
    let update = serde_json::to_string(&render::root_message(&inc.root_body, status))?;
    outbox::insert_for_incident(
        conn,
        &inc.channel,
        inc.id,
        &[
            (OutboxKind::Reply, reply_json),
            (OutboxKind::Update, &update),
        ],
        now_ms,
    )
    .await
}

/// The ref's open incident, read along with its head.
fn open_incident(row: Option<&sqlx::sqlite::SqliteRow>) -> anyhow::Result<OpenIncident> {
    let r = row.ok_or_else(|| anyhow::anyhow!("ref is broken but has no head"))?;
    let id: Option<i64> = r.try_get("id")?;
    let id = id.ok_or_else(|| anyhow::anyhow!("ref is broken but has no open incident"))?;
    let body: String = r.try_get("root_body")?;
    Ok(OpenIncident {
        id,
        channel: r.try_get("channel")?,
        opened_at: r.try_get("opened_at")?,
        failures: r.try_get("failures")?,
        root_body: serde_json::from_str(&body)?,
    })
}
