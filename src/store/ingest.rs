//! The statements the ingest writer runs inside one transaction: de-duplication keys, the
//! ref's head and open incident, incident rows, queued messages. Deciding what to write is
//! the writer's (`delivery::ingest`); this only runs SQL.

use sqlx::{Row, Sqlite, Transaction};

use super::{
    Store,
    outbox::{self, NewMessage, OutboxKind},
};
use crate::slack::blocks::Message;

/// What the store knows about a ref before an event is applied.
#[derive(Debug, Clone, Default)]
pub struct RefState {
    /// The newest finished pipeline seen on the ref (parent id for children).
    pub last_pipeline: Option<u64>,
    pub open: Option<OpenIncident>,
}

/// The ref's open incident.
#[derive(Debug, Clone)]
pub struct OpenIncident {
    pub id: i64,
    pub channel: String,
    /// Unix seconds.
    pub opened_at: i64,
    pub failures: i64,
    /// The first failure's message, under the status line.
    pub root_body: Message,
}

/// A new incident's row.
#[derive(Debug, Clone, Copy)]
pub struct NewIncident<'a> {
    pub project_id: u64,
    pub project_path: &'a str,
    pub git_ref: &'a str,
    pub channel: &'a str,
    pub root_body_json: &'a str,
    pub pipeline_id: u64,
    pub pipeline_url: &'a str,
    /// Unix seconds.
    pub opened_at: i64,
}

/// One ingest transaction: either everything written through it is durable after
/// [`IngestTx::commit`], or none of it is.
pub struct IngestTx {
    tx: Transaction<'static, Sqlite>,
}

impl Store {
    pub async fn begin_ingest(&self) -> anyhow::Result<IngestTx> {
        Ok(IngestTx {
            tx: self.pool().begin().await?,
        })
    }
}

impl IngestTx {
    /// Records de-duplication keys; false when any of them was seen before.
    pub async fn record_keys(&mut self, keys: &[&str], now_ms: i64) -> anyhow::Result<bool> {
        super::record_keys(&mut self.tx, keys, now_ms).await
    }

    pub async fn ref_state(&mut self, project_id: u64, git_ref: &str) -> anyhow::Result<RefState> {
        let row = sqlx::query(
            "SELECT h.last_pipeline, i.id, i.channel, i.opened_at, i.failures, i.root_body
               FROM ref_heads h LEFT JOIN incidents i ON i.id = h.open_incident
              WHERE h.project_id = ? AND h.git_ref = ?",
        )
        .bind(project_id as i64)
        .bind(git_ref)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(r) = row else {
            return Ok(RefState::default());
        };
        let last: Option<i64> = r.try_get("last_pipeline")?;
        let id: Option<i64> = r.try_get("id")?;
        let open = match id {
            Some(id) => {
                let body: String = r.try_get("root_body")?;
                Some(OpenIncident {
                    id,
                    channel: r.try_get("channel")?,
                    opened_at: r.try_get("opened_at")?,
                    failures: r.try_get("failures")?,
                    root_body: serde_json::from_str(&body)?,
                })
            }
            None => None,
        };
        Ok(RefState {
            last_pipeline: last.map(|p| p as u64),
            open,
        })
    }

    pub async fn open_incident(&mut self, inc: &NewIncident<'_>) -> anyhow::Result<i64> {
        let id = sqlx::query(
            "INSERT INTO incidents (project_id, project_path, git_ref, channel, root_body, first_pipeline,
                                    latest_pipeline, latest_url, failures, opened_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
        )
        .bind(inc.project_id as i64)
        .bind(inc.project_path)
        .bind(inc.git_ref)
        .bind(inc.channel)
        .bind(inc.root_body_json)
        .bind(inc.pipeline_id as i64)
        .bind(inc.pipeline_id as i64)
        .bind(inc.pipeline_url)
        .bind(inc.opened_at)
        .fetch_one(&mut *self.tx)
        .await?
        .try_get("id")?;
        Ok(id)
    }

    /// Another failure of an open incident.
    pub async fn record_failure(
        &mut self,
        incident: i64,
        failures: i64,
        pipeline_id: u64,
        pipeline_url: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE incidents SET failures = ?, latest_pipeline = ?, latest_url = ? WHERE id = ?",
        )
        .bind(failures)
        .bind(pipeline_id as i64)
        .bind(pipeline_url)
        .bind(incident)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// `fixed_at` in Unix seconds.
    pub async fn close_incident(
        &mut self,
        incident: i64,
        fixed_at: i64,
        fixed_by: u64,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE incidents SET fixed_at = ?, fixed_by = ? WHERE id = ?")
            .bind(fixed_at)
            .bind(fixed_by as i64)
            .bind(incident)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn queue(&mut self, m: &NewMessage, now_ms: i64) -> anyhow::Result<i64> {
        outbox::insert(&mut self.tx, m, now_ms).await
    }

    /// Queues already serialised messages to an incident's channel, in order.
    pub async fn queue_for_incident(
        &mut self,
        channel: &str,
        incident: i64,
        messages: &[(OutboxKind, &str)],
        now_ms: i64,
    ) -> anyhow::Result<()> {
        outbox::insert_for_incident(&mut self.tx, channel, incident, messages, now_ms).await
    }

    pub async fn set_ref_head(
        &mut self,
        project_id: u64,
        git_ref: &str,
        last_pipeline: Option<u64>,
        open_incident: Option<i64>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO ref_heads (project_id, git_ref, last_pipeline, open_incident) VALUES (?, ?, ?, ?)
             ON CONFLICT (project_id, git_ref) DO UPDATE SET last_pipeline = excluded.last_pipeline,
                                                             open_incident = excluded.open_incident",
        )
        .bind(project_id as i64)
        .bind(git_ref)
        .bind(last_pipeline.map(|p| p as i64))
        .bind(open_incident)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
