//! Applying accepted pipeline events: de-duplication, the ref's incident and
//! the messages it calls for, all in one transaction per batch.

use std::sync::Arc;

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
        render::{self, Message, RootStatus},
    },
};

/// An authenticated, relevant pipeline event waiting to be applied.
#[derive(Debug, Clone)]
pub struct PipelineEvent {
    pub hook: Arc<PipelineHook>,
    pub outcome: Outcome,
    pub channel: String,
    /// GitLab's `Idempotency-Key` / `webhook-id`, when sent.
    pub idempotency_key: Option<String>,
}

impl PipelineEvent {
    /// Same project, pipeline, status and finish time: the same event even
    /// when GitLab sent it twice under different idempotency keys.
    fn natural_key(&self) -> String {
        let a = &self.hook.object_attributes;
        format!(
            "pipeline:{}:{}:{}:{}",
            self.hook.project.id,
            a.id,
            a.status,
            a.finished_at
                .map_or_else(|| "-".into(), |t| t.timestamp().to_string())
        )
    }

    /// Children count as part of the pipeline that started them.
    fn group_pipeline(&self) -> u64 {
        self.hook
            .parent_pipeline_id()
            .unwrap_or(self.hook.object_attributes.id)
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
        settings: &NotifySettings,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Applied>> {
        let mut tx = self.pool().begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for ev in events {
            out.push(apply_one(&mut tx, ev, settings, now).await?);
        }
        tx.commit().await?;
        Ok(out)
    }
}

async fn apply_one(
    conn: &mut SqliteConnection,
    ev: &PipelineEvent,
    settings: &NotifySettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Applied> {
    let now_ms = now.timestamp_millis();
    let mut keys = vec![ev.natural_key()];
    if let Some(k) = &ev.idempotency_key {
        keys.push(format!("idem:{k}"));
    }
    let mut fresh = true;
    for k in &keys {
        fresh &= super::record_key(&mut *conn, k, now_ms).await?;
    }
    if !fresh {
        return Ok(Applied::Duplicate);
    }

    let hook = &ev.hook;
    let project_id = hook.project.id as i64;
    let git_ref = hook.object_attributes.git_ref.as_str();
    let row = sqlx::query(
        "SELECT last_pipeline, open_incident FROM ref_heads WHERE project_id = ? AND git_ref = ?",
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
    let group = ev.group_pipeline();
    let step = incident::step(&head, group, ev.outcome);
    if let Step::Stale { newest } = step {
        return Ok(Applied::Stale { newest });
    }
    let next = incident::advance(&head, group, step);
    let a = &hook.object_attributes;
    let pipeline_url = a
        .url
        .clone()
        .unwrap_or_else(|| format!("{}/-/pipelines/{}", hook.project.web_url, a.id));
    let event_time = a.finished_at.unwrap_or(now);

    let (applied, open_after) = match step {
        Step::Stale { .. } | Step::StillHealthy => (Applied::StillHealthy, None),
        Step::Open => {
            let body = render::failure_message(hook, settings);
            let id: i64 = sqlx::query(
                "INSERT INTO incidents (project_id, project_path, git_ref, channel, root_body, first_pipeline,
                                        latest_pipeline, latest_url, failures, opened_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
            )
            .bind(project_id)
            .bind(&hook.project.path_with_namespace)
            .bind(git_ref)
            .bind(&ev.channel)
            .bind(serde_json::to_string(&body)?)
            .bind(a.id as i64)
            .bind(a.id as i64)
            .bind(&pipeline_url)
            .bind(event_time.timestamp())
            .fetch_one(&mut *conn)
            .await?
            .try_get("id")?;
            let status = RootStatus::Broken {
                since: event_time,
                failures: 1,
                latest_pipeline: a.id,
                latest_url: pipeline_url.clone(),
            };
            let root = NewMessage {
                channel: ev.channel.clone(),
                kind: OutboxKind::Post,
                incident_id: Some(id),
                target_ts: None,
                message: render::root_message(&body, &status),
            };
            outbox::insert(conn, &root, now_ms).await?;
            (Applied::Opened { incident: id }, Some(id))
        }
        Step::StillFailing => {
            let inc = load_incident(conn, open_id).await?;
            let failures = inc.failures + 1;
            sqlx::query("UPDATE incidents SET failures = ?, latest_pipeline = ?, latest_url = ? WHERE id = ?")
                .bind(failures)
                .bind(a.id as i64)
                .bind(&pipeline_url)
                .bind(inc.id)
                .execute(&mut *conn)
                .await?;
            let since = DateTime::from_timestamp(inc.opened_at, 0).unwrap_or(now);
            let status = RootStatus::Broken {
                since,
                failures: failures as u32,
                latest_pipeline: a.id,
                latest_url: pipeline_url.clone(),
            };
            queue_thread_pair(
                conn,
                inc.id,
                render::still_failing(hook, settings),
                &inc.root_body,
                &status,
                now_ms,
            )
            .await?;
            (Applied::StillFailing { incident: inc.id }, Some(inc.id))
        }
        Step::Fixed => {
            let inc = load_incident(conn, open_id).await?;
            let broken_for = event_time.timestamp() - inc.opened_at;
            sqlx::query("UPDATE incidents SET fixed_at = ?, fixed_by = ? WHERE id = ?")
                .bind(event_time.timestamp())
                .bind(a.id as i64)
                .bind(inc.id)
                .execute(&mut *conn)
                .await?;
            let status = RootStatus::Fixed {
                by_pipeline: a.id,
                by_url: pipeline_url.clone(),
                broken_for_secs: broken_for,
            };
            queue_thread_pair(
                conn,
                inc.id,
                render::fixed(hook, broken_for),
                &inc.root_body,
                &status,
                now_ms,
            )
            .await?;
            (Applied::Fixed { incident: inc.id }, None)
        }
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
    incident: i64,
    reply: Message,
    root_body: &Message,
    status: &RootStatus,
    now_ms: i64,
) -> anyhow::Result<()> {
    let channel: String = sqlx::query_scalar("SELECT channel FROM incidents WHERE id = ?")
        .bind(incident)
        .fetch_one(&mut *conn)
        .await?;
    for (kind, message) in [
        (OutboxKind::Reply, reply),
        (OutboxKind::Update, render::root_message(root_body, status)),
    ] {
        let m = NewMessage {
            channel: channel.clone(),
            kind,
            incident_id: Some(incident),
            target_ts: None,
            message,
        };
        outbox::insert(conn, &m, now_ms).await?;
    }
    Ok(())
}

async fn load_incident(
    conn: &mut SqliteConnection,
    id: Option<i64>,
) -> anyhow::Result<OpenIncident> {
    let id = id.ok_or_else(|| anyhow::anyhow!("ref is broken but has no open incident"))?;
    let r = sqlx::query("SELECT id, opened_at, failures, root_body FROM incidents WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let body: String = r.try_get("root_body")?;
    Ok(OpenIncident {
        id: r.try_get("id")?,
        opened_at: r.try_get("opened_at")?,
        failures: r.try_get("failures")?,
        root_body: serde_json::from_str(&body)?,
    })
}
