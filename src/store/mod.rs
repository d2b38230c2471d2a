//! The store: one interface over two engines. SQLite (WAL, `synchronous=FULL`) is the
//! embedded default for one machine; PostgreSQL lets several replicas share one database.
//!
//! SQL stays in this module; callers see typed rows. Every statement is written once, with
//! `$N` placeholders both engines accept, and compiled for each engine by [`on_db!`]; the
//! few engine-only statements (PostgreSQL's advisory locks and row locks) are spelled out per
//! engine. Migrations are kept per engine under `migrations/sqlite` and `migrations/postgres`.

pub mod catch_up;
pub mod ingest;
pub mod lite;
pub mod migrate;
pub mod outbox;
pub mod reap;
mod stmt;
pub mod watch;

use std::{str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::{
    Connection, PgConnection, PgPool, SqlitePool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use outbox::{NewMessage, OutboxKind, OutboxRow};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory-lock keys (PostgreSQL): the replica that delivers and runs periodic jobs, and the
/// one reap running fleet-wide. Arbitrary constants, spelled so they are easy to find in
/// `pg_locks`.
const LEADER_KEY: i64 = 0x4152_4d42_4f54_0001;
const REAP_KEY: i64 = 0x4152_4d42_4f54_0002;

/// How long a request may wait for a pooled connection: a database outage answers 503 well
/// inside GitLab's 10 s rather than hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `$body` with `$pool` bound to the engine's pool (or connection, or transaction): the
/// same code compiled once per engine.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either engine; see [`on_tx!`].
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection, once per engine.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    pub(crate) async fn commit(self) -> anyhow::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// SQLite: the file the store opened, to notice it was deleted or replaced underneath
    /// (the open connections would go on writing to the unlinked file).
    file: Option<Arc<StoreFile>>,
    /// PostgreSQL: where dedicated lock connections connect.
    pg_options: Option<PgConnectOptions>,
    /// SQLite: one process owns the file, so reaps are serialised in memory.
    local_reap: Arc<Mutex<()>>,
}

#[derive(Debug)]
struct StoreFile {
    path: std::path::PathBuf,
    /// (device, inode) when opened.
    id: (u64, u64),
}

impl StoreFile {
    fn identify(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok((m.dev(), m.ino()))
    }

    fn check(&self) -> anyhow::Result<()> {
        match Self::identify(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            Ok(_) => anyhow::bail!("the store file {} was replaced", self.path.display()),
            Err(_) => anyhow::bail!("the store file {} is gone", self.path.display()),
        }
    }
}

/// Milliseconds since the epoch, the store's clock unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `ARMBOT_DATABASE_URL`: a PostgreSQL URL may carry a password, so `Debug` and `Display`
/// show it as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        is_postgres_url(&self.0)
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match reqwest::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                write!(f, "{u}")
            }
            Ok(_) => f.write_str(&self.0),
            Err(_) => f.write_str("(not a URL)"),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Store {
    /// Opens the store named by `url` (`sqlite://…`, created if missing, or `postgres://…`)
    /// and applies migrations.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let url = url.expose();
        if is_postgres_url(url) {
            Self::connect_postgres(url).await
        } else if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else {
            anyhow::bail!(
                "ARMBOT_DATABASE_URL must be a sqlite:// or postgres:// URL, not `{}`",
                url.split("://").next().unwrap_or_default()
            )
        }
    }

    async fn connect_sqlite(url: &str) -> anyhow::Result<Self> {
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
            .connect_with(opts.clone())
            .await
            .with_context(|| format!("cannot open the store at {url}"))?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .context("cannot apply store migrations")?;
        let file = if url.contains(":memory:") {
            None
        } else {
            let path = opts.get_filename().to_path_buf();
            let id = StoreFile::identify(&path)
                .with_context(|| format!("cannot read the store file {}", path.display()))?;
            Some(Arc::new(StoreFile { path, id }))
        };
        Ok(Self {
            db: Db::Sqlite(pool),
            file,
            pg_options: None,
            local_reap: Arc::default(),
        })
    }

    async fn connect_postgres(url: &str) -> anyhow::Result<Self> {
        // The URL may carry a password: errors name the database, never the URL.
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| anyhow::anyhow!("ARMBOT_DATABASE_URL is not a valid postgres URL"))?
            .application_name("armbot");
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot connect to PostgreSQL database `{}` on {}",
                    opts.get_database().unwrap_or("postgres"),
                    opts.get_host()
                )
            })?;
        // Replicas starting together: the migrator takes its own advisory lock.
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .context("cannot apply store migrations")?;
        Ok(Self {
            db: Db::Postgres(pool),
            file: None,
            pg_options: Some(opts),
            local_reap: Arc::default(),
        })
    }

    pub fn engine(&self) -> Engine {
        match self.db {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// A transaction; refused when the store's file was deleted or replaced, so nothing is
    /// acknowledged into a file that will vanish.
    pub(crate) async fn begin(&self) -> anyhow::Result<Tx> {
        if let Some(file) = &self.file {
            file.check()?;
        }
        Ok(match &self.db {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Readiness: the store answers and every migration is applied.
    pub async fn ready(&self) -> anyhow::Result<()> {
        if let Some(file) = &self.file {
            file.check()?;
        }
        let known = self.migrator().iter().count() as i64;
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = true";
        let tables = "SELECT COUNT(*) FROM ref_heads WHERE project_id = -1";
        let applied: i64 = on_db!(&self.db, pool => {
            // The tables answer, not only the connection.
            let _: i64 = sqlx::query_scalar(tables).fetch_one(pool).await?;
            sqlx::query_scalar(sql).fetch_one(pool).await?
        });
        anyhow::ensure!(applied >= known, "{applied} of {known} migrations applied");
        Ok(())
    }

    /// Drops de-duplication keys and finished outbox rows older than `retention`.
    /// Open incidents and undelivered messages are never pruned.
    pub async fn prune(&self, now_ms: i64, retention: Duration) -> anyhow::Result<u64> {
        let cutoff = now_ms - retention.as_millis() as i64;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let keys = sqlx::query("DELETE FROM dedup_keys WHERE seen_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // A message is kept while a queued row still answers it, while it is the root of
            // an open watch incident (an incident may outlast the retention), and while an
            // open alert still needs its thread.
            let rows = sqlx::query(
                "DELETE FROM outbox WHERE state IN ('delivered', 'failed') AND finished_at < $1
                   AND id NOT IN (SELECT target_id FROM outbox
                                   WHERE target_id IS NOT NULL AND state IN ('pending', 'attempting'))
                   AND id NOT IN (SELECT root_outbox_id FROM watch_incidents WHERE closed_at IS NULL)
                   AND id NOT IN (SELECT warning_outbox_id FROM watch_state
                                   WHERE warning_outbox_id IS NOT NULL)
                   AND id NOT IN (SELECT outbox_id FROM gitlab_alerts WHERE outbox_id IS NOT NULL)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let incidents = sqlx::query(
                "DELETE FROM incidents WHERE fixed_at IS NOT NULL AND fixed_at < $1
                   AND id NOT IN (SELECT incident_id FROM outbox WHERE incident_id IS NOT NULL)
                   AND id NOT IN (SELECT open_incident FROM ref_heads WHERE open_incident IS NOT NULL)",
            )
            .bind(cutoff / 1000)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let watch_incidents = sqlx::query(
                "DELETE FROM watch_incidents WHERE closed_at IS NOT NULL AND closed_at < $1",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(keys + rows + incidents + watch_incidents)
        })
    }

    /// Records de-duplication keys unless one of them was seen before; true when all are new.
    /// A button click, an event: anything that must act once.
    pub async fn first_sighting(&self, keys: &[String], now_ms: i64) -> anyhow::Result<bool> {
        let mut tx = self.begin().await?;
        let fresh = record_keys(&mut tx, keys, now_ms).await?;
        // A key seen before leaves nothing behind: its siblings are not recorded either.
        if fresh {
            tx.commit().await?;
        }
        Ok(fresh)
    }

    /// Tries to become the replica that delivers the outbox and runs periodic jobs. SQLite:
    /// always granted (one process owns the file). PostgreSQL: a session-level advisory lock
    /// on a connection of its own, released when the lease is dropped or the connection dies.
    pub async fn try_lead(&self) -> anyhow::Result<Option<Lease>> {
        let Some(opts) = &self.pg_options else {
            return Ok(Some(Lease { conn: None }));
        };
        let mut conn = lock_connection(opts).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_KEY)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then_some(Lease { conn: Some(conn) }))
    }

    /// The reap lock if no reap runs anywhere now; `None` otherwise. A plan left `running`
    /// while this is held belongs to a run that was cut short.
    pub async fn try_lock_reaps(&self) -> anyhow::Result<Option<ReapLock>> {
        match &self.pg_options {
            None => Ok(self
                .local_reap
                .clone()
                .try_lock_owned()
                .ok()
                .map(ReapLock::Local)),
            Some(opts) => {
                let mut conn = lock_connection(opts).await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(REAP_KEY)
                    .fetch_one(&mut conn)
                    .await?;
                Ok(got.then_some(ReapLock::Postgres(conn)))
            }
        }
    }

    /// Waits until no other reap runs, fleet-wide, and holds that until dropped.
    pub async fn lock_reaps(&self) -> anyhow::Result<ReapLock> {
        match &self.pg_options {
            None => Ok(ReapLock::Local(self.local_reap.clone().lock_owned().await)),
            Some(opts) => {
                let mut conn = lock_connection(opts).await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(REAP_KEY)
                    .execute(&mut conn)
                    .await?;
                Ok(ReapLock::Postgres(conn))
            }
        }
    }
}

/// Records `keys` in one statement; true when none of them was there before.
pub(crate) async fn record_keys(tx: &mut Tx, keys: &[String], now_ms: i64) -> anyhow::Result<bool> {
    let mut unique: Vec<&str> = keys.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    Ok(ingest::insert_keys(tx, &unique, now_ms).await?.len() == unique.len())
}

/// A connection outside the pool: a session lock on it lives exactly as long as it does.
async fn lock_connection(opts: &PgConnectOptions) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::connect_with(opts)
        .await
        .context("cannot open a lock connection to PostgreSQL")?;
    // Let the server notice a vanished replica within seconds, so its locks are released.
    sqlx::query(
        "SELECT set_config('tcp_keepalives_idle', '5', false),
                set_config('tcp_keepalives_interval', '2', false),
                set_config('tcp_keepalives_count', '3', false)",
    )
    .execute(&mut conn)
    .await?;
    Ok(conn)
}

/// Held by the replica that delivers; see [`Store::try_lead`].
pub struct Lease {
    conn: Option<PgConnection>,
}

impl Lease {
    /// Whether the lease still holds: on PostgreSQL, the lock's connection still answers.
    pub async fn check(&mut self) -> anyhow::Result<()> {
        if let Some(conn) = &mut self.conn {
            tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping())
                .await
                .context("the lock connection did not answer")??;
        }
        Ok(())
    }
}

/// Held while a reap runs; see [`Store::lock_reaps`].
pub enum ReapLock {
    Local(OwnedMutexGuard<()>),
    Postgres(PgConnection),
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_database_password_is_never_shown() {
        let url = DatabaseUrl::new("postgres://armbot:s3cret@db.example:5432/armbot");
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        assert_eq!(
            DatabaseUrl::new("sqlite://armbot.db").to_string(),
            "sqlite://armbot.db"
        );
    }
}
