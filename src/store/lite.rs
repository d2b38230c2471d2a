//! The ingest writer's own connection to the SQLite store: synchronous, used only from the
//! writer's thread, with its statements prepared once and cached. sqlx's SQLite driver
//! hands every statement to a worker thread and back; on the ingest path those hand-offs
//! were a third of the CPU. Checkpoints of the write-ahead log are the writer's to run
//! between batches, so no commit pays for one.

use std::sync::Arc;

use anyhow::Context;

use super::{
    Store, StoreFile,
    stmt::{Get, Param, Stmt},
};

/// Prepared statements kept: one per distinct batch shape (rows per multi-row statement).
const STATEMENT_CACHE: usize = 256;

pub struct LiteConn {
    conn: rusqlite::Connection,
    file: Arc<StoreFile>,
}

impl std::fmt::Debug for LiteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiteConn")
            .field("path", &self.file.path)
            .finish()
    }
}

impl Store {
    /// A dedicated connection for the ingest writer: `None` on PostgreSQL and for an
    /// in-memory SQLite store (which exists only inside the pool's one connection).
    pub fn ingest_connection(&self) -> anyhow::Result<Option<LiteConn>> {
        let Some(file) = self.file.clone() else {
            return Ok(None);
        };
        let conn = rusqlite::Connection::open(&file.path)
            .with_context(|| format!("cannot open the store file {}", file.path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The file is already in WAL mode (the pool set it); these are per connection.
        // FULL: a 2xx means the event survives a power cut, not only a crash.
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Some(LiteConn { conn, file }))
    }
}

impl LiteConn {
    /// Starts a write transaction, refused when the store's file was deleted or replaced.
    pub(crate) fn begin(&mut self) -> anyhow::Result<LiteTx<'_>> {
        self.file.check()?;
        // IMMEDIATE: take the write lock now, so a write after a read cannot fail with
        // SQLITE_BUSY on a snapshot another connection moved past.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(LiteTx {
            conn: &mut self.conn,
            open: true,
        })
    }

    /// Copies the write-ahead log into the database where no reader needs it, so the log
    /// starts over instead of growing; never waits for readers. Returns the frames in the
    /// log and how many of them are now in the database.
    pub fn checkpoint(&mut self) -> anyhow::Result<(i64, i64)> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?)
    }
}

/// A transaction on a [`LiteConn`], rolled back unless committed.
pub(crate) struct LiteTx<'c> {
    /// `&mut` rather than `&`: the connection is `Send` but not `Sync`, and the writer's
    /// future holds this across awaits.
    conn: &'c mut rusqlite::Connection,
    open: bool,
}

impl LiteTx<'_> {
    fn prepare(&self, st: &Stmt<'_>) -> anyhow::Result<rusqlite::CachedStatement<'_>> {
        // `$n` would be a named parameter to SQLite, numbered by first appearance; `?n` is
        // the n-th, as sqlx reads `$n`.
        let mut stmt = self.conn.prepare_cached(&st.sql.replace('$', "?"))?;
        for (i, p) in st.params.iter().enumerate() {
            match *p {
                Param::Int(v) => stmt.raw_bind_parameter(i + 1, v)?,
                Param::Text(v) => stmt.raw_bind_parameter(i + 1, v)?,
            }
        }
        Ok(stmt)
    }

    pub fn fetch<T>(
        &self,
        st: &Stmt<'_>,
        decode: impl Fn(&dyn Get) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut stmt = self.prepare(st)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode(row)?);
        }
        Ok(out)
    }

    pub fn execute(&self, st: &Stmt<'_>) -> anyhow::Result<()> {
        self.prepare(st)?.raw_execute()?;
        Ok(())
    }

    pub fn commit(mut self) -> anyhow::Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for LiteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing else can be done about a failed rollback: the next BEGIN reports it.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
