//! The durable outbox: every Slack call the bot decides to make is a row here
//! first, and the delivery worker is the only thing that sends them.

use anyhow::Context;
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

use super::Store;
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
    fn as_str(self) -> &'static str {
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
    pub message: Message,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    pub kind: OutboxKind,
    pub incident_id: Option<i64>,
    pub target_ts: Option<String>,
    pub message: Message,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub attempt_started_at: Option<i64>,
}

impl OutboxRow {
    fn from_row(r: &SqliteRow) -> anyhow::Result<Self> {
        let payload: String = r.try_get("payload")?;
        Ok(Self {
            id: r.try_get("id")?,
            channel: r.try_get("channel")?,
            kind: OutboxKind::parse(&r.try_get::<String, _>("kind")?)?,
            incident_id: r.try_get("incident_id")?,
            target_ts: r.try_get("target_ts")?,
            message: serde_json::from_str(&payload).context("outbox payload is not a message")?,
            state: r.try_get("state")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            created_at: r.try_get("created_at")?,
            attempt_started_at: r.try_get("attempt_started_at")?,
        })
    }
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

pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    m: &NewMessage,
    now_ms: i64,
) -> anyhow::Result<i64> {
    let payload = serde_json::to_string(&m.message)?;
    let id = sqlx::query(
        "INSERT INTO outbox (channel, kind, incident_id, target_ts, payload, next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&m.channel)
    .bind(m.kind.as_str())
    .bind(m.incident_id)
    .bind(&m.target_ts)
    .bind(payload)
    .bind(now_ms)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;
    Ok(id)
}

/// Queues already serialised messages to an incident's channel, in order,
/// in one statement.
pub(crate) async fn insert_for_incident(
    conn: &mut SqliteConnection,
    channel: &str,
    incident_id: i64,
    messages: &[(OutboxKind, &str)],
    now_ms: i64,
) -> anyhow::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO outbox (channel, kind, incident_id, payload, next_attempt_at, created_at) VALUES ",
    );
    for i in 0..messages.len() {
        sql.push_str(if i == 0 {
            "(?, ?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?, ?)"
        });
    }
    let mut q = sqlx::query(&sql);
    for (kind, payload) in messages {
        q = q
            .bind(channel)
            .bind(kind.as_str())
            .bind(incident_id)
            .bind(*payload)
            .bind(now_ms)
            .bind(now_ms);
    }
    q.execute(conn).await?;
    Ok(())
}

impl Store {
    /// Queues one message on its own (FAQ answers, reap reports).
    pub async fn enqueue(&self, m: &NewMessage, now_ms: i64) -> anyhow::Result<i64> {
        let mut conn = self.pool().acquire().await?;
        insert(&mut conn, m, now_ms).await
    }

    /// Queues `m` unless any of `keys` was seen before; both in one
    /// transaction, so an acknowledged event always has its answer queued.
    pub async fn enqueue_once(
        &self,
        keys: &[String],
        m: &NewMessage,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool().begin().await?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let fresh = super::record_keys(&mut tx, &keys, now_ms).await?;
        if fresh {
            insert(&mut tx, m, now_ms).await?;
        }
        tx.commit().await?;
        Ok(fresh)
    }

    /// The oldest undelivered row of every channel: per-channel FIFO keeps
    /// roots before replies and posts before the updates that refer to them.
    pub async fn outbox_heads(&self) -> anyhow::Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE id IN (
                 SELECT MIN(id) FROM outbox WHERE state IN ('pending', 'attempting') GROUP BY channel)
             ORDER BY next_attempt_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(OutboxRow::from_row).collect()
    }

    /// Recorded (and committed) before the Slack call, so a crash during the
    /// call leaves evidence that the message may have gone out. The first
    /// attempt's time is kept: it bounds where a lost post can be.
    pub async fn outbox_attempting(&self, id: i64, now_ms: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET state = 'attempting', attempts = attempts + 1,
                    attempt_started_at = COALESCE(attempt_started_at, ?) WHERE id = ?",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
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
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE outbox SET state = 'delivered', ts = ?, finished_at = ?, last_error = NULL WHERE id = ?")
            .bind(ts)
            .bind(now_ms)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        if row.kind == OutboxKind::Post {
            if let Some(incident) = row.incident_id {
                sqlx::query("UPDATE incidents SET root_channel = ?, root_ts = ? WHERE id = ?")
                    .bind(channel)
                    .bind(ts)
                    .bind(incident)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
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
        sqlx::query(
            "UPDATE outbox SET state = ?, next_attempt_at = ?, last_error = ?, attempts = attempts + ? WHERE id = ?",
        )
        .bind(if in_doubt { "attempting" } else { "pending" })
        .bind(next_attempt_at)
        .bind(error)
        .bind(i64::from(count_attempt))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Permanent failure: stop retrying and keep the reason.
    pub async fn outbox_failed(&self, id: i64, error: &str, now_ms: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET state = 'failed', finished_at = ?, last_error = ? WHERE id = ?",
        )
        .bind(now_ms)
        .bind(error)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Where the root of `incident` stands.
    pub async fn incident_root(&self, incident: i64) -> anyhow::Result<RootRef> {
        let row = sqlx::query("SELECT root_channel, root_ts FROM incidents WHERE id = ?")
            .bind(incident)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(RootRef::Failed);
        };
        let channel: Option<String> = row.try_get("root_channel")?;
        let ts: Option<String> = row.try_get("root_ts")?;
        if let (Some(channel), Some(ts)) = (channel, ts) {
            return Ok(RootRef::Posted { channel, ts });
        }
        let failed: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM outbox WHERE incident_id = ? AND kind = 'post' AND state = 'failed'",
        )
        .bind(incident)
        .fetch_optional(self.pool())
        .await?;
        Ok(if failed.is_some() {
            RootRef::Failed
        } else {
            RootRef::Pending
        })
    }

    /// Undelivered messages per channel with the age of the oldest.
    pub async fn outbox_backlog(&self) -> anyhow::Result<Vec<Backlog>> {
        let rows = sqlx::query(
            "SELECT channel, COUNT(*) AS depth, MIN(created_at) AS oldest FROM outbox
             WHERE state IN ('pending', 'attempting') GROUP BY channel ORDER BY channel",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Backlog {
                    channel: r.try_get("channel")?,
                    depth: r.try_get("depth")?,
                    oldest_created_at: r.try_get("oldest")?,
                })
            })
            .collect()
    }

    /// Counts rows by state, for tests and metrics.
    pub async fn outbox_count(&self, state: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = ?")
                .bind(state)
                .fetch_one(self.pool())
                .await?,
        )
    }
}
