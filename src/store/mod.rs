//! The store: SQLite (WAL) behind one interface, with migrations.
//!
//! SQL stays in this module; callers see typed rows. Nothing here relies on
//! SQLite-only syntax beyond `INSERT OR IGNORE`-style conflict handling, which
//! has a direct PostgreSQL equivalent (`ON CONFLICT DO NOTHING`).

pub mod ingest;
pub mod outbox;
pub mod reap;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use outbox::{NewMessage, OutboxKind, OutboxRow};

/// Records de-duplication keys in one statement; false when any of them
/// was already there (all are recorded either way).
pub(crate) async fn record_keys(
    conn: &mut sqlx::SqliteConnection,
    keys: &[&str],
    now_ms: i64,
) -> anyhow::Result<bool> {
    if keys.is_empty() {
        return Ok(true);
    }
    let mut sql = String::from("INSERT INTO dedup_keys (key, seen_at) VALUES (?, ?)");
    for _ in 1..keys.len() {
        sql.push_str(", (?, ?)");
    }
    sql.push_str(" ON CONFLICT (key) DO NOTHING");
    let mut q = sqlx::query(&sql);
    for k in keys {
        q = q.bind(*k).bind(now_ms);
    }
    let r = q.execute(conn).await?;
    Ok(r.rows_affected() == keys.len() as u64)
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Milliseconds since the epoch, the store's clock unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Opens (creating if missing) the database and applies migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("ARMBOT_DATABASE_URL `{url}` is not a valid sqlite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a 2xx means the event survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // In-memory databases exist per connection: keep exactly one.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await
            .with_context(|| format!("cannot open the store at {url}"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("cannot apply store migrations")?;
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Readiness: the store answers and every migration is applied.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await?;
        let known = sqlx::migrate!("./migrations").iter().count() as i64;
        anyhow::ensure!(applied >= known, "{applied} of {known} migrations applied");
        Ok(())
    }

    /// Drops de-duplication keys and finished outbox rows older than `retention`.
    /// Open incidents and undelivered messages are never pruned.
    pub async fn prune(&self, now_ms: i64, retention: Duration) -> anyhow::Result<u64> {
        let cutoff = now_ms - retention.as_millis() as i64;
        let mut tx = self.pool.begin().await?;
        let keys = sqlx::query("DELETE FROM dedup_keys WHERE seen_at < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let rows = sqlx::query(
            "DELETE FROM outbox WHERE state IN ('delivered', 'failed') AND finished_at < ?",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let incidents = sqlx::query(
            "DELETE FROM incidents WHERE fixed_at IS NOT NULL AND fixed_at < ?
               AND id NOT IN (SELECT incident_id FROM outbox WHERE incident_id IS NOT NULL)
               AND id NOT IN (SELECT open_incident FROM ref_heads WHERE open_incident IS NOT NULL)",
        )
        .bind(cutoff / 1000)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(keys + rows + incidents)
    }
}

impl Store {
    /// Records one de-duplication key; false when it was already there (a replay).
    pub async fn record_once(&self, key: &str, now_ms: i64) -> anyhow::Result<bool> {
        let mut conn = self.pool.acquire().await?;
        record_keys(&mut conn, &[key], now_ms).await
    }
}
