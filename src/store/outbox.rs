//! The durable outbox: every Slack call the bot decides to make is a row here
//! first, and the delivery worker is the only thing that sends them.

use anyhow::Context;
use sqlx::Row;

use super::{
    Store,
    ingest::{QueuedRow, queue_rows},
    on_db,
};
use crate::slack::blocks::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// `chat.postMessage` at the top of the channel.
    Post,
    /// `chat.postMessage` in a thread.
    Reply,
    /// `chat.update` of an earlier message.
    Update,
}

impl OutboxKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Reply => "reply",
            Self::Update => "update",
        }
    }
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "post" => Self::Post,
            "reply" => Self::Reply,
            "update" => Self::Update,
            other => anyhow::bail!("unknown outbox kind {other}"),
        })
    }
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub channel: String,
    pub kind: OutboxKind,
    /// The incident whose root this posts, replies to or updates.
    pub incident_id: Option<i64>,
    /// For replies and updates outside incidents: the parent or target ts.
    pub target_ts: Option<String>,
    /// For replies and updates outside incidents: the message that outbox row posted (its
    /// thread, or itself). Delivery waits while that row is pending.
    pub target_id: Option<i64>,
    pub message: Message,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    pub kind: OutboxKind,
    pub incident_id: Option<i64>,
    pub target_ts: Option<String>,
    pub target_id: Option<i64>,
    pub message: Message,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub attempt_started_at: Option<i64>,
}

/// Reads an outbox row from either engine's row type.
macro_rules! outbox_row {
    ($r:expr) => {{
        let r = $r;
        let payload: String = r.try_get("payload")?;
        OutboxRow {
            id: r.try_get("id")?,
            channel: r.try_get("channel")?,
            kind: OutboxKind::parse(&r.try_get::<String, _>("kind")?)?,
            incident_id: r.try_get("incident_id")?,
            target_ts: r.try_get("target_ts")?,
            target_id: r.try_get("target_id")?,
            message: serde_json::from_str(&payload).context("outbox payload is not a message")?,
            state: r.try_get("state")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            created_at: r.try_get("created_at")?,
            attempt_started_at: r.try_get("attempt_started_at")?,
        }
    }};
}

/// Where an incident's root message lives once posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootRef {
    Posted {
        channel: String,
        ts: String,
    },
    /// Not posted yet (still queued or being retried).
    Pending,
    /// The root could not be posted and never will be.
    Failed,
}

/// Backlog of one channel, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub channel: String,
    pub depth: i64,
    pub oldest_created_at: i64,
}

impl NewMessage {
    pub(crate) fn row(&self) -> anyhow::Result<QueuedRow> {
        Ok(QueuedRow {
            channel: self.channel.clone(),
            kind: self.kind,
            incident_id: self.incident_id,
            target_ts: self.target_ts.clone(),
            target_id: self.target_id,
            payload: serde_json::to_string(&self.message)?,
        })
    }
}

impl Store {
    /// Queues one message on its own (FAQ answers, reap reports).
    pub async fn enqueue(&self, m: &NewMessage, now_ms: i64) -> anyhow::Result<i64> {
        let mut tx = self.begin().await?;
        let id = queue_rows(&mut tx, &[m.row()?], now_ms).await?;
        tx.commit().await?;
        id.first()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("the outbox insert returned no id"))
    }

    /// Queues `m` unless any of `keys` was seen before; both in one
    /// transaction, so an acknowledged event always has its answer queued.
    pub async fn enqueue_once(
        &self,
        keys: &[String],
        m: &NewMessage,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let mut tx = self.begin().await?;
        let fresh = super::record_keys(&mut tx, keys, now_ms).await?;
        if fresh {
            queue_rows(&mut tx, &[m.row()?], now_ms).await?;
            tx.commit().await?;
        }
        Ok(fresh)
    }

    /// The oldest undelivered row of every channel: per-channel FIFO keeps
    /// roots before replies and posts before the updates that refer to them.
    pub async fn outbox_heads(&self) -> anyhow::Result<Vec<OutboxRow>> {
        // The worker asks after every ingest batch, and a backlog (Slack slow, or paced) can
        // be long: the pending channels are found by a loose index scan of `outbox_open`
        // (one index probe per channel, not a pass over every pending row), then each
        // channel's oldest pending row. A row being attempted is its channel's head.
        let sql = "WITH RECURSIVE ch(channel) AS (
                       SELECT MIN(channel) FROM outbox WHERE state = 'pending'
                       UNION ALL
                       SELECT (SELECT MIN(o.channel) FROM outbox o
                                WHERE o.state = 'pending' AND o.channel > ch.channel)
                         FROM ch WHERE ch.channel IS NOT NULL)
                   SELECT * FROM outbox WHERE id IN (
                       SELECT (SELECT MIN(o.id) FROM outbox o
                                WHERE o.state = 'pending' AND o.channel = ch.channel)
                         FROM ch WHERE ch.channel IS NOT NULL
                       UNION ALL
                       SELECT id FROM outbox WHERE state = 'attempting')
                   ORDER BY next_attempt_at, id";
        let rows: Vec<OutboxRow> = on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(outbox_row!(r));
            }
            out
        });
        // A channel with a row being attempted also has a pending head behind it.
        let mut first: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for r in &rows {
            let id = first.entry(r.channel.as_str()).or_insert(r.id);
            *id = (*id).min(r.id);
        }
        let keep: std::collections::HashSet<i64> = first.into_values().collect();
        Ok(rows.into_iter().filter(|r| keep.contains(&r.id)).collect())
    }

    /// Recorded (and committed) before the Slack call, so a crash during the
    /// call leaves evidence that the message may have gone out. The first
    /// attempt's time is kept: it bounds where a lost post can be.
    pub async fn outbox_attempting(&self, id: i64, now_ms: i64) -> anyhow::Result<()> {
        let sql = "UPDATE outbox SET state = 'attempting', attempts = attempts + 1,
                          attempt_started_at = COALESCE(attempt_started_at, $1) WHERE id = $2";
        on_db!(self.db(), pool => {
            sqlx::query(sql).bind(now_ms).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// Slack accepted the message. For an incident root, remember where it is.
    pub async fn outbox_delivered(
        &self,
        row: &OutboxRow,
        channel: &str,
        ts: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let done =
            "UPDATE outbox SET state = 'delivered', ts = $1, finished_at = $2, last_error = NULL
                    WHERE id = $3";
        let root = "UPDATE incidents SET root_channel = $1, root_ts = $2 WHERE id = $3";
        let incident = row.incident_id.filter(|_| row.kind == OutboxKind::Post);
        on_db!(self.db(), pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(done)
                .bind(ts)
                .bind(now_ms)
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            if let Some(incident) = incident {
                sqlx::query(root)
                    .bind(channel)
                    .bind(ts)
                    .bind(incident)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Try again later. `in_doubt`: the call may have reached Slack (timeout,
    /// 5xx), so the row stays "attempting" and the next try looks before posting.
    pub async fn outbox_retry(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
        in_doubt: bool,
        count_attempt: bool,
    ) -> anyhow::Result<()> {
        let sql = "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3,
                          attempts = attempts + $4 WHERE id = $5";
        on_db!(self.db(), pool => {
            sqlx::query(sql)
            .bind(if in_doubt { "attempting" } else { "pending" })
            .bind(next_attempt_at)
            .bind(error)
            .bind(i64::from(count_attempt))
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Permanent failure: stop retrying and keep the reason.
    pub async fn outbox_failed(&self, id: i64, error: &str, now_ms: i64) -> anyhow::Result<()> {
        let sql =
            "UPDATE outbox SET state = 'failed', finished_at = $1, last_error = $2 WHERE id = $3";
        on_db!(self.db(), pool => {
            sqlx::query(sql)
            .bind(now_ms)
            .bind(error)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Where the root of `incident` stands.
    pub async fn incident_root(&self, incident: i64) -> anyhow::Result<RootRef> {
        let root = "SELECT root_channel, root_ts FROM incidents WHERE id = $1";
        let failed = "SELECT COUNT(*) FROM outbox
                      WHERE incident_id = $1 AND kind = 'post' AND state = 'failed'";
        // (root channel, root ts) of the incident, if it exists; its failed root posts.
        type Found = Option<(Option<String>, Option<String>)>;
        let (found, failed): (Found, i64) = on_db!(self.db(), pool => {
            let row = sqlx::query(root).bind(incident).fetch_optional(pool).await?;
            let found = match row {
                Some(r) => Some((r.try_get("root_channel")?, r.try_get("root_ts")?)),
                None => None,
            };
            let failed = sqlx::query_scalar(failed).bind(incident).fetch_one(pool).await?;
            (found, failed)
        });
        Ok(match found {
            None => RootRef::Failed,
            Some((Some(channel), Some(ts))) => RootRef::Posted { channel, ts },
            Some(_) if failed > 0 => RootRef::Failed,
            Some(_) => RootRef::Pending,
        })
    }

    /// Where the message posted by outbox row `id` stands, for a row that replies to it or
    /// updates it (`target_id`). The channel is the one the row was queued for, so it should
    /// be a channel id (C…): Slack's `chat.update` takes no channel name.
    pub async fn posted_by(&self, id: i64) -> anyhow::Result<RootRef> {
        let sql = "SELECT channel, state, ts FROM outbox WHERE id = $1";
        type Found = Option<(String, String, Option<String>)>;
        let found: Found = on_db!(self.db(), pool => {
            match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some((r.try_get("channel")?, r.try_get("state")?, r.try_get("ts")?)),
                None => None,
            }
        });
        Ok(match found {
            Some((channel, state, Some(ts))) if state == "delivered" => {
                RootRef::Posted { channel, ts }
            }
            Some((_, state, _)) if state == "pending" || state == "attempting" => RootRef::Pending,
            // Given up on, or pruned long ago.
            _ => RootRef::Failed,
        })
    }

    /// Undelivered messages per channel with the age of the oldest.
    pub async fn outbox_backlog(&self) -> anyhow::Result<Vec<Backlog>> {
        let sql = "SELECT channel, COUNT(*) AS depth, MIN(created_at) AS oldest FROM outbox
                   WHERE state IN ('pending', 'attempting') GROUP BY channel ORDER BY channel";
        on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(Backlog {
                        channel: r.try_get("channel")?,
                        depth: r.try_get("depth")?,
                        oldest_created_at: r.try_get("oldest")?,
                    })
                })
                .collect()
        })
    }

    /// Channels whose oldest message waits for an operator (see the worker's blocked
    /// channels), with the reason: (channel, error).
    pub async fn outbox_blocked(&self, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
        let sql = "SELECT channel, last_error FROM outbox WHERE id IN (
                       SELECT MIN(id) FROM outbox WHERE state IN ('pending', 'attempting') GROUP BY channel)
                     AND last_error LIKE $1 ORDER BY channel";
        let pattern = format!("{prefix}%");
        on_db!(self.db(), pool => {
            let rows = sqlx::query(sql).bind(pattern.as_str()).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.try_get("channel")?, r.try_get("last_error")?)))
                .collect()
        })
    }

    /// Counts rows by state, for tests and metrics.
    pub async fn outbox_count(&self, state: &str) -> anyhow::Result<i64> {
        let sql = "SELECT COUNT(*) FROM outbox WHERE state = $1";
        Ok(on_db!(self.db(), pool => sqlx::query_scalar(sql).bind(state).fetch_one(pool).await?))
    }
}
