//! The fleet watch's memory between polls and its incidents. A poll reads the memory with its
//! version and saves the next one together with the messages it decided on, in one
//! transaction that only succeeds if nobody saved since: one alert per incident, whichever
//! replica polls and however often the bot restarts.

use sqlx::Row;

use super::{
    OutboxKind, Store,
    ingest::{QueuedRow, queue_rows},
    on_tx,
};
use crate::slack::blocks::Message;

/// What the store holds for one watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRecord {
    /// Saved by the watch; the next save must name it.
    pub version: i64,
    /// The watch's own memory (JSON), `{}` at first.
    pub memory: String,
    pub incident: Option<WatchIncident>,
    /// The Scaleway-trouble warning still waiting for its recovery reply.
    pub warning: Option<Posted>,
}

/// The open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchIncident {
    pub id: i64,
    /// Milliseconds since the epoch.
    pub opened_at: i64,
    /// The root message: the outbox row that posts it, and where.
    pub root: Posted,
}

/// A message the watch queued, which later messages answer or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub outbox_id: i64,
    pub channel: String,
}

/// What one poll decided, saved at once.
#[derive(Debug, Clone, Copy)]
pub struct WatchWrite<'a> {
    /// Where new top-level messages go (an open incident keeps its own channel).
    pub channel: &'a str,
    /// The next memory (JSON).
    pub memory: &'a str,
    /// Opens an incident with this root message.
    pub open: Option<&'a Message>,
    /// Replies in the incident's thread (the one opened by `open`, else the open one).
    pub replies: &'a [Message],
    /// The incident's root as it should now read.
    pub update_root: Option<&'a Message>,
    /// Closes the incident (after the replies and the update).
    pub close: bool,
    /// A Scaleway-trouble warning, posted in the channel.
    pub warn: Option<&'a Message>,
    /// The reply to the warning when Scaleway answers again.
    pub recovered: Option<&'a Message>,
}

/// How a save went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchSaved {
    /// Saved; `opened` is the incident it opened, if it did.
    Saved { opened: Option<i64>, queued: usize },
    /// Another poll saved first: nothing was written.
    Conflict,
}

impl Store {
    /// The watch's record, created empty the first time.
    pub async fn watch_load(&self, watch: &str, now_ms: i64) -> anyhow::Result<WatchRecord> {
        let create = "INSERT INTO watch_state (watch, version, memory, updated_at)
                      VALUES ($1, 0, '{}', $2) ON CONFLICT (watch) DO NOTHING";
        let read = "SELECT s.version, s.memory, s.incident_id, i.opened_at, i.root_outbox_id,
                           i.channel AS incident_channel, s.warning_outbox_id,
                           w.channel AS warning_channel
                      FROM watch_state s
                      LEFT JOIN watch_incidents i ON i.id = s.incident_id
                      LEFT JOIN outbox w ON w.id = s.warning_outbox_id
                     WHERE s.watch = $1";
        let mut tx = self.begin().await?;
        let record = on_tx!(&mut tx, conn => {
            sqlx::query(create).bind(watch).bind(now_ms).execute(&mut *conn).await?;
            let r = sqlx::query(read).bind(watch).fetch_one(&mut *conn).await?;
            let incident = match (
                r.try_get::<Option<i64>, _>("incident_id")?,
                r.try_get::<Option<i64>, _>("opened_at")?,
                r.try_get::<Option<i64>, _>("root_outbox_id")?,
                r.try_get::<Option<String>, _>("incident_channel")?,
            ) {
                (Some(id), Some(opened_at), Some(outbox_id), Some(channel)) => Some(WatchIncident {
                    id,
                    opened_at,
                    root: Posted { outbox_id, channel },
                }),
                _ => None,
            };
            let warning = match (
                r.try_get::<Option<i64>, _>("warning_outbox_id")?,
                r.try_get::<Option<String>, _>("warning_channel")?,
            ) {
                (Some(outbox_id), Some(channel)) => Some(Posted { outbox_id, channel }),
                _ => None,
            };
            WatchRecord {
                version: r.try_get("version")?,
                memory: r.try_get("memory")?,
                incident,
                warning,
            }
        });
        tx.commit().await?;
        Ok(record)
    }

    /// Saves the next memory and queues what the poll decided, unless another poll saved
    /// since `version` was read. Everything or nothing.
    pub async fn watch_save(
        &self,
        watch: &str,
        version: i64,
        w: &WatchWrite<'_>,
        now_ms: i64,
    ) -> anyhow::Result<WatchSaved> {
        let bump = "UPDATE watch_state SET version = version + 1, memory = $1, updated_at = $2
                    WHERE watch = $3 AND version = $4";
        let mut tx = self.begin().await?;
        let bumped = on_tx!(&mut tx, conn => {
            sqlx::query(bump)
                .bind(w.memory)
                .bind(now_ms)
                .bind(watch)
                .bind(version)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if bumped != 1 {
            // Dropped unfinished: rolled back.
            return Ok(WatchSaved::Conflict);
        }
        // Read inside the transaction, which now holds the row.
        let current = "SELECT s.incident_id, i.root_outbox_id, i.channel, s.warning_outbox_id,
                              o.channel AS warning_channel
                         FROM watch_state s
                         LEFT JOIN watch_incidents i ON i.id = s.incident_id
                         LEFT JOIN outbox o ON o.id = s.warning_outbox_id
                        WHERE s.watch = $1";
        let (mut incident, mut root, warning) = on_tx!(&mut tx, conn => {
            let r = sqlx::query(current).bind(watch).fetch_one(&mut *conn).await?;
            let incident: Option<i64> = r.try_get("incident_id")?;
            let root = match (
                r.try_get::<Option<i64>, _>("root_outbox_id")?,
                r.try_get::<Option<String>, _>("channel")?,
            ) {
                (Some(outbox_id), Some(channel)) => Some(Posted { outbox_id, channel }),
                _ => None,
            };
            let warning = match (
                r.try_get::<Option<i64>, _>("warning_outbox_id")?,
                r.try_get::<Option<String>, _>("warning_channel")?,
            ) {
                (Some(outbox_id), Some(channel)) => Some(Posted { outbox_id, channel }),
                _ => None,
            };
            (incident, root, warning)
        });
        let mut queued = 0;
        let mut opened = None;

        if let Some(message) = w.open {
            anyhow::ensure!(incident.is_none(), "an incident is already open");
            let outbox_id =
                queue_one(&mut tx, w.channel, OutboxKind::Post, None, message, now_ms).await?;
            let open = "INSERT INTO watch_incidents (watch, channel, root_outbox_id, opened_at)
                        VALUES ($1, $2, $3, $4) RETURNING id";
            let link = "UPDATE watch_state SET incident_id = $1 WHERE watch = $2";
            let id: i64 = on_tx!(&mut tx, conn => {
                let id: i64 = sqlx::query_scalar(open)
                    .bind(watch)
                    .bind(w.channel)
                    .bind(outbox_id)
                    .bind(now_ms)
                    .fetch_one(&mut *conn)
                    .await?;
                sqlx::query(link).bind(id).bind(watch).execute(&mut *conn).await?;
                id
            });
            queued += 1;
            opened = Some(id);
            incident = Some(id);
            root = Some(Posted {
                outbox_id,
                channel: w.channel.to_owned(),
            });
        }
        if !w.replies.is_empty() || w.update_root.is_some() || w.close {
            let (Some(id), Some(root)) = (incident, &root) else {
                anyhow::bail!("no open incident to reply to, update or close");
            };
            for reply in w.replies {
                queue_one(
                    &mut tx,
                    &root.channel,
                    OutboxKind::Reply,
                    Some(root.outbox_id),
                    reply,
                    now_ms,
                )
                .await?;
                queued += 1;
            }
            if let Some(message) = w.update_root {
                queue_one(
                    &mut tx,
                    &root.channel,
                    OutboxKind::Update,
                    Some(root.outbox_id),
                    message,
                    now_ms,
                )
                .await?;
                queued += 1;
            }
            if w.close {
                let close = "UPDATE watch_incidents SET closed_at = $1 WHERE id = $2";
                let unlink = "UPDATE watch_state SET incident_id = NULL WHERE watch = $1";
                on_tx!(&mut tx, conn => {
                    sqlx::query(close).bind(now_ms).bind(id).execute(&mut *conn).await?;
                    sqlx::query(unlink).bind(watch).execute(&mut *conn).await?;
                });
            }
        }
        if let Some(message) = w.recovered {
            let Some(warning) = &warning else {
                anyhow::bail!("no warning to answer");
            };
            queue_one(
                &mut tx,
                &warning.channel,
                OutboxKind::Reply,
                Some(warning.outbox_id),
                message,
                now_ms,
            )
            .await?;
            queued += 1;
            let clear = "UPDATE watch_state SET warning_outbox_id = NULL WHERE watch = $1";
            on_tx!(&mut tx, conn => {
                sqlx::query(clear).bind(watch).execute(&mut *conn).await?;
            });
        }
        if let Some(message) = w.warn {
            let outbox_id =
                queue_one(&mut tx, w.channel, OutboxKind::Post, None, message, now_ms).await?;
            queued += 1;
            let set = "UPDATE watch_state SET warning_outbox_id = $1 WHERE watch = $2";
            on_tx!(&mut tx, conn => {
                sqlx::query(set).bind(outbox_id).bind(watch).execute(&mut *conn).await?;
            });
        }
        tx.commit().await?;
        Ok(WatchSaved::Saved { opened, queued })
    }

    /// Incidents a watch opened, oldest first: (id, opened_at, closed_at), for tests and
    /// operators.
    pub async fn watch_incidents(
        &self,
        watch: &str,
    ) -> anyhow::Result<Vec<(i64, i64, Option<i64>)>> {
        let sql = "SELECT id, opened_at, closed_at FROM watch_incidents WHERE watch = $1
                   ORDER BY id";
        super::on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).bind(watch).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("opened_at")?, r.try_get("closed_at")?)))
                .collect()
        })
    }
}

async fn queue_one(
    tx: &mut super::Tx,
    channel: &str,
    kind: OutboxKind,
    target_id: Option<i64>,
    message: &Message,
    now_ms: i64,
) -> anyhow::Result<i64> {
    let row = QueuedRow {
        channel: channel.to_owned(),
        kind,
        incident_id: None,
        target_ts: None,
        target_id,
        payload: serde_json::to_string(message)?,
    };
    let ids = queue_rows(tx, std::slice::from_ref(&row), now_ms).await?;
    ids.first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the outbox insert returned no id"))
}
