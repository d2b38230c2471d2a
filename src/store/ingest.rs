//! The statements of one ingest batch, a fixed number per batch rather than per event:
//! de-duplication keys in one statement, the heads of all the batch's refs in one read
//! (locked on PostgreSQL, so replicas ingesting the same ref at once take turns), then the
//! writes. Deciding what to write is the writer's (`delivery::ingest`); this only runs SQL.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{Engine, OutboxKind, Store, Tx, on_tx};
use crate::slack::blocks::Message;

/// A ref: (project id, ref name).
pub type RefKey = (u64, String);

/// What the store knows about a ref before the batch.
#[derive(Debug, Clone, Default)]
pub struct RefState {
    /// The newest finished pipeline seen on the ref (parent id for children).
    pub last_pipeline: Option<u64>,
    pub open: Option<OpenIncident>,
}

/// A ref's open incident.
#[derive(Debug, Clone)]
pub struct OpenIncident {
    pub id: i64,
    pub channel: String,
    /// Unix seconds.
    pub opened_at: i64,
    pub failures: i64,
    /// The first failure's message, under the status line.
    pub root_body: Message,
    /// Its root message could not be posted and never will be.
    pub root_failed: bool,
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

/// A change to an existing incident.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentChange {
    /// Another failure.
    Failed {
        id: i64,
        failures: i64,
        pipeline_id: u64,
        pipeline_url: String,
    },
    /// Green again; `fixed_at` in Unix seconds.
    Fixed {
        id: i64,
        fixed_at: i64,
        fixed_by: u64,
    },
    /// Its root could never be posted: closed so the ref's next failure starts a new thread.
    Abandoned { id: i64, at: i64 },
}

/// An outbox row, its message already serialised.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRow {
    pub channel: String,
    pub kind: OutboxKind,
    pub incident_id: Option<i64>,
    pub target_ts: Option<String>,
    /// See [`super::NewMessage::target_id`].
    pub target_id: Option<i64>,
    pub payload: String,
}

/// A ref's head after the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadRow {
    pub project_id: u64,
    pub git_ref: String,
    pub last_pipeline: Option<u64>,
    pub open_incident: Option<i64>,
}

/// One ingest transaction: everything written through it is durable after
/// [`IngestTx::commit`], or none of it is.
pub struct IngestTx {
    tx: Tx,
    engine: Engine,
}

impl Store {
    pub async fn begin_ingest(&self) -> anyhow::Result<IngestTx> {
        Ok(IngestTx {
            tx: self.begin().await?,
            engine: self.engine(),
        })
    }
}

/// Bind parameters per multi-row statement, well under both engines' limits.
pub(crate) const MAX_ROWS: usize = 500;

/// `($a, $b, …), (…)` for `rows` rows of `width` parameters numbered from `first`.
pub(crate) fn values_sql(rows: usize, width: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", first + r * width + c));
        }
        sql.push(')');
    }
    sql
}

/// Inserts `keys` (sorted and unique: concurrent batches then take the same locks in the
/// same order) and returns the ones that were new.
pub(crate) async fn insert_keys(
    tx: &mut Tx,
    keys: &[&str],
    now_ms: i64,
) -> anyhow::Result<HashSet<String>> {
    let mut fresh = HashSet::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_ROWS) {
        let mut sql = String::from("INSERT INTO dedup_keys (key, seen_at) VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(&format!(
                "{}(${}, $1)",
                if i == 0 { "" } else { ", " },
                i + 2
            ));
        }
        sql.push_str(" ON CONFLICT (key) DO NOTHING RETURNING key");
        let new: Vec<String> = on_tx!(tx, conn => {
            let mut q = sqlx::query_scalar(&sql).bind(now_ms);
            for k in chunk {
                q = q.bind(*k);
            }
            q.fetch_all(conn).await?
        });
        fresh.extend(new);
    }
    Ok(fresh)
}

impl IngestTx {
    pub(super) fn tx_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Records de-duplication keys; returns those not seen before.
    pub async fn insert_keys(
        &mut self,
        keys: &[&str],
        now_ms: i64,
    ) -> anyhow::Result<HashSet<String>> {
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        insert_keys(&mut self.tx, &sorted, now_ms).await
    }

    /// Reads the heads of `refs` with their open incidents. On PostgreSQL the heads are
    /// created if absent and locked, in one order, until the transaction ends.
    pub async fn lock_refs(
        &mut self,
        refs: &[RefKey],
    ) -> anyhow::Result<HashMap<RefKey, RefState>> {
        let mut refs = refs.to_vec();
        refs.sort_unstable();
        refs.dedup();
        let mut out = HashMap::with_capacity(refs.len());
        for chunk in refs.chunks(MAX_ROWS) {
            let list = values_sql(chunk.len(), 2, 1);
            // Row locks need rows: an absent head is created empty, which means the same.
            let create = format!(
                "INSERT INTO ref_heads (project_id, git_ref) VALUES {list} ON CONFLICT DO NOTHING"
            );
            // Locking and reading are two statements: a read that waited for a lock would
            // see the locked head's new version but the incident joined to it as it was
            // before the wait (PostgreSQL re-checks only the locked rows).
            let lock = format!(
                "SELECT project_id FROM ref_heads WHERE (project_id, git_ref) IN (VALUES {list})
                  ORDER BY project_id, git_ref FOR UPDATE"
            );
            let read = format!(
                "SELECT h.project_id, h.git_ref, h.last_pipeline, i.id, i.channel, i.opened_at,
                        i.failures, i.root_body,
                        CASE WHEN i.root_ts IS NULL AND EXISTS (
                            SELECT 1 FROM outbox o
                             WHERE o.incident_id = i.id AND o.kind = 'post' AND o.state = 'failed')
                        THEN 1 ELSE 0 END AS root_failed
                   FROM ref_heads h LEFT JOIN incidents i ON i.id = h.open_incident
                  WHERE (h.project_id, h.git_ref) IN (VALUES {list})"
            );
            let engine = self.engine;
            let rows: Vec<(RefKey, RefState)> = on_tx!(&mut self.tx, conn => {
                if engine == Engine::Postgres {
                    for sql in [&create, &lock] {
                        let mut q = sqlx::query(sql);
                        for (p, r) in chunk {
                            q = q.bind(*p as i64).bind(r.as_str());
                        }
                        q.execute(&mut *conn).await?;
                    }
                }
                let mut q = sqlx::query(&read);
                for (p, r) in chunk {
                    q = q.bind(*p as i64).bind(r.as_str());
                }
                let mut states = Vec::new();
                for r in q.fetch_all(&mut *conn).await? {
                    let project: i64 = r.try_get("project_id")?;
                    let git_ref: String = r.try_get("git_ref")?;
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
                                root_failed: r.try_get::<i32, _>("root_failed")? != 0,
                            })
                        }
                        None => None,
                    };
                    states.push((
                        (project as u64, git_ref),
                        RefState {
                            last_pipeline: last.map(|p| p as u64),
                            open,
                        },
                    ));
                }
                states
            });
            out.extend(rows);
        }
        Ok(out)
    }

    pub async fn open_incident(&mut self, inc: &NewIncident<'_>) -> anyhow::Result<i64> {
        let sql = "INSERT INTO incidents (project_id, project_path, git_ref, channel, root_body,
                                          first_pipeline, latest_pipeline, latest_url, failures,
                                          opened_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $6, $7, 1, $8) RETURNING id";
        Ok(on_tx!(&mut self.tx, conn => sqlx::query_scalar(sql)
            .bind(inc.project_id as i64)
            .bind(inc.project_path)
            .bind(inc.git_ref)
            .bind(inc.channel)
            .bind(inc.root_body_json)
            .bind(inc.pipeline_id as i64)
            .bind(inc.pipeline_url)
            .bind(inc.opened_at)
            .fetch_one(conn)
            .await?))
    }

    pub async fn change_incident(&mut self, change: &IncidentChange) -> anyhow::Result<()> {
        match change {
            IncidentChange::Failed {
                id,
                failures,
                pipeline_id,
                pipeline_url,
            } => {
                let sql =
                    "UPDATE incidents SET failures = $1, latest_pipeline = $2, latest_url = $3
                           WHERE id = $4";
                on_tx!(&mut self.tx, conn => {
                    sqlx::query(sql)
                            .bind(*failures)
                            .bind(*pipeline_id as i64)
                            .bind(pipeline_url.as_str())
                            .bind(*id)
                            .execute(conn)
                            .await?;
                });
            }
            IncidentChange::Abandoned { id, at } => {
                let sql = "UPDATE incidents SET fixed_at = $1 WHERE id = $2 AND fixed_at IS NULL";
                on_tx!(&mut self.tx, conn => {
                    sqlx::query(sql).bind(*at).bind(*id).execute(conn).await?;
                });
            }
            IncidentChange::Fixed {
                id,
                fixed_at,
                fixed_by,
            } => {
                let sql = "UPDATE incidents SET fixed_at = $1, fixed_by = $2 WHERE id = $3";
                on_tx!(&mut self.tx, conn => {
                    sqlx::query(sql)
                            .bind(*fixed_at)
                            .bind(*fixed_by as i64)
                            .bind(*id)
                            .execute(conn)
                            .await?;
                });
            }
        }
        Ok(())
    }

    /// Queues rows in order (their ids ascend in this order: per-channel FIFO).
    pub async fn queue(&mut self, rows: &[QueuedRow], now_ms: i64) -> anyhow::Result<()> {
        queue_rows(&mut self.tx, rows, now_ms).await.map(|_| ())
    }

    /// Writes the heads of the batch's refs, each once.
    pub async fn set_heads(&mut self, heads: &[HeadRow]) -> anyhow::Result<()> {
        for chunk in heads.chunks(MAX_ROWS) {
            let sql = format!(
                "INSERT INTO ref_heads (project_id, git_ref, last_pipeline, open_incident)
                 VALUES {}
                 ON CONFLICT (project_id, git_ref) DO UPDATE
                    SET last_pipeline = excluded.last_pipeline, open_incident = excluded.open_incident",
                values_sql(chunk.len(), 4, 1)
            );
            on_tx!(&mut self.tx, conn => {
                let mut q = sqlx::query(&sql);
                for h in chunk {
                    q = q
                        .bind(h.project_id as i64)
                        .bind(h.git_ref.as_str())
                        .bind(h.last_pipeline.map(|p| p as i64))
                        .bind(h.open_incident);
                }
                q.execute(conn).await?;
            });
        }
        Ok(())
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        self.tx.commit().await
    }
}

/// Inserts outbox rows in order; returns their ids.
pub(crate) async fn queue_rows(
    tx: &mut Tx,
    rows: &[QueuedRow],
    now_ms: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_ROWS) {
        let mut sql = String::from(
            "INSERT INTO outbox (channel, kind, incident_id, target_ts, target_id, payload, next_attempt_at, created_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = 2 + i * 6;
            sql.push_str(&format!(
                "{}(${b}, ${}, ${}, ${}, ${}, ${}, $1, $1)",
                if i == 0 { "" } else { ", " },
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        sql.push_str(" RETURNING id");
        let new: Vec<i64> = on_tx!(tx, conn => {
            let mut q = sqlx::query_scalar(&sql).bind(now_ms);
            for r in chunk {
                q = q
                    .bind(r.channel.as_str())
                    .bind(r.kind.as_str())
                    .bind(r.incident_id)
                    .bind(r.target_ts.as_deref())
                    .bind(r.target_id)
                    .bind(r.payload.as_str());
            }
            q.fetch_all(conn).await?
        });
        ids.extend(new);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::values_sql;

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(values_sql(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(values_sql(1, 3, 5), "($5, $6, $7)");
    }
}
