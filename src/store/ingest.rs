//! The statements of one ingest batch, a fixed number per batch rather than per event:
//! de-duplication keys in one statement, the heads of all the batch's refs in one read
//! (locked on PostgreSQL, so replicas ingesting the same ref at once take turns), then one
//! statement each for new incidents, changed incidents, outbox rows and ref heads. Deciding
//! what to write is the writer's (`delivery::ingest`); this only runs SQL, on a sqlx
//! transaction or on the SQLite writer's own connection ([`super::lite`]).

use std::collections::{HashMap, HashSet};

use super::{
    Engine, OutboxKind, Store, Tx,
    catch_up::{SeenProject, upsert_projects_stmt},
    lite::{LiteConn, LiteTx},
    stmt::{self, Exec, Get, Stmt, values_sql},
};

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
    pub first_pipeline: u64,
    /// The newest failed pipeline.
    pub latest_pipeline: u64,
    /// What the incident keeps of its latest failure (its failed jobs' names), as JSON the
    /// writer reads; an incident opened by an older version holds its first failure's message.
    pub root_body: String,
    /// Its root message could not be posted and never will be.
    pub root_failed: bool,
}

/// An incident in a batch: one the store has, or the batch's n-th new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentRef {
    Stored(i64),
    New(usize),
}

impl IncidentRef {
    /// The incident's id, given the ids of the batch's new incidents in order.
    pub fn resolve(self, new_ids: &[i64]) -> anyhow::Result<i64> {
        match self {
            Self::Stored(id) => Ok(id),
            Self::New(i) => new_ids
                .get(i)
                .copied()
                .ok_or_else(|| anyhow::anyhow!("no new incident {i} in the batch")),
        }
    }
}

/// A new incident's row, as the batch leaves it.
#[derive(Debug, Clone)]
pub struct NewIncident<'a> {
    pub project_id: u64,
    pub project_path: &'a str,
    pub git_ref: &'a str,
    pub channel: &'a str,
    pub root_body_json: &'a str,
    pub first_pipeline: u64,
    pub latest_pipeline: u64,
    pub latest_url: &'a str,
    pub failures: i64,
    /// Unix seconds.
    pub opened_at: i64,
    pub fixed_at: Option<i64>,
    pub fixed_by: Option<u64>,
}

/// What a batch changes in a stored incident; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentUpdate {
    pub failures: Option<i64>,
    pub root_body: Option<String>,
    pub latest_pipeline: Option<u64>,
    pub latest_url: Option<String>,
    /// Set only where not set yet (Unix seconds).
    pub fixed_at: Option<i64>,
    pub fixed_by: Option<u64>,
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
    pub open_incident: Option<IncidentRef>,
}

/// Everything a batch writes once its events are decided.
#[derive(Debug, Default)]
pub struct BatchWrites<'a> {
    pub new_incidents: Vec<NewIncident<'a>>,
    pub updates: HashMap<i64, IncidentUpdate>,
    /// In order (their ids ascend in this order: per-channel FIFO), with the incident each
    /// belongs to.
    pub rows: Vec<(Option<IncidentRef>, QueuedRow)>,
    pub heads: Vec<HeadRow>,
}

/// One ingest transaction: everything written through it is durable after
/// [`IngestTx::commit`], or none of it is.
pub struct IngestTx<'c>(On<'c>);

enum On<'c> {
    Sqlx { tx: Tx, engine: Engine },
    Lite(LiteTx<'c>),
}

impl Store {
    pub async fn begin_ingest(&self) -> anyhow::Result<IngestTx<'static>> {
        Ok(IngestTx(On::Sqlx {
            tx: self.begin().await?,
            engine: self.engine(),
        }))
    }
}

impl LiteConn {
    pub fn begin_ingest(&mut self) -> anyhow::Result<IngestTx<'_>> {
        Ok(IngestTx(On::Lite(self.begin()?)))
    }
}

/// Rows per multi-row statement: at 12 columns, 6,000 parameters, well under both engines'
/// limits (32,766 and 65,535).
pub(crate) const MAX_ROWS: usize = 500;

/// Inserts `keys` (sorted and unique, so concurrent batches take the same locks in the same
/// order), returning the new ones.
fn keys_stmt<'a>(keys: &[&'a str], now_ms: i64) -> Stmt<'a> {
    let mut st = Stmt::new("INSERT INTO dedup_keys (key, seen_at) VALUES ");
    st.bind(now_ms);
    for (i, k) in keys.iter().enumerate() {
        st.sql.push_str(&format!(
            "{}(${}, $1)",
            if i == 0 { "" } else { ", " },
            i + 2
        ));
        st.bind(*k);
    }
    st.sql
        .push_str(" ON CONFLICT (key) DO NOTHING RETURNING key");
    st
}

/// Records de-duplication keys; returns those not seen before.
pub(crate) async fn insert_keys(
    db: &mut impl Exec,
    keys: &[&str],
    now_ms: i64,
) -> anyhow::Result<HashSet<String>> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut fresh = HashSet::with_capacity(sorted.len());
    for chunk in sorted.chunks(MAX_ROWS) {
        fresh.extend(
            db.fetch(&keys_stmt(chunk, now_ms), |r| r.req_text(0))
                .await?,
        );
    }
    Ok(fresh)
}

fn bind_refs<'a>(st: &mut Stmt<'a>, refs: &'a [RefKey]) {
    for (p, r) in refs {
        st.bind(*p as i64).bind(r.as_str());
    }
}

/// The heads of `refs` with their open incidents, in the column order [`ref_state`] reads.
fn read_refs_stmt(refs: &[RefKey]) -> Stmt<'_> {
    let mut st = Stmt::new(format!(
        "SELECT h.project_id, h.git_ref, h.last_pipeline, i.id, i.channel, i.opened_at,
                i.failures, i.root_body, i.first_pipeline, i.latest_pipeline,
                CAST(CASE WHEN i.root_ts IS NULL AND EXISTS (
                    SELECT 1 FROM outbox o
                     WHERE o.incident_id = i.id AND o.kind = 'post' AND o.state = 'failed')
                THEN 1 ELSE 0 END AS BIGINT)
           FROM ref_heads h LEFT JOIN incidents i ON i.id = h.open_incident
          WHERE (h.project_id, h.git_ref) IN (VALUES {})",
        values_sql(refs.len(), 2, 1)
    ));
    bind_refs(&mut st, refs);
    st
}

fn ref_state(r: &dyn Get) -> anyhow::Result<(RefKey, RefState)> {
    let open = match r.int(3)? {
        Some(id) => Some(OpenIncident {
            id,
            channel: r.req_text(4)?,
            opened_at: r.req_int(5)?,
            failures: r.req_int(6)?,
            root_body: r.req_text(7)?,
            first_pipeline: r.req_int(8)? as u64,
            latest_pipeline: r.req_int(9)? as u64,
            root_failed: r.req_int(10)? != 0,
        }),
        None => None,
    };
    Ok((
        (r.req_int(0)? as u64, r.req_text(1)?),
        RefState {
            last_pipeline: r.int(2)?.map(|p| p as u64),
            open,
        },
    ))
}

/// Inserts new incidents with their state as the batch left it; returns each one's
/// (project, ref, first pipeline) and id, since the order of returned rows is not promised.
fn incidents_stmt<'a>(incs: &[NewIncident<'a>]) -> Stmt<'a> {
    let mut st = Stmt::new(format!(
        "INSERT INTO incidents (project_id, project_path, git_ref, channel, root_body,
                                first_pipeline, latest_pipeline, latest_url, failures,
                                opened_at, fixed_at, fixed_by)
         VALUES {} RETURNING project_id, git_ref, first_pipeline, id",
        values_sql(incs.len(), 12, 1)
    ));
    for inc in incs {
        st.bind(inc.project_id as i64)
            .bind(inc.project_path)
            .bind(inc.git_ref)
            .bind(inc.channel)
            .bind(inc.root_body_json)
            .bind(inc.first_pipeline as i64)
            .bind(inc.latest_pipeline as i64)
            .bind(inc.latest_url)
            .bind(inc.failures)
            .bind(inc.opened_at)
            .bind(inc.fixed_at)
            .bind(inc.fixed_by.map(|p| p as i64));
    }
    st
}

/// Applies the batch's changes to stored incidents in one statement (both engines read a
/// CTE with named columns and `UPDATE … FROM`).
fn updates_stmt(updates: &[(i64, IncidentUpdate)]) -> Stmt<'_> {
    let mut st = Stmt::new(format!(
        "WITH v (id, failures, root_body, latest_pipeline, latest_url, fixed_at, fixed_by)
           AS (VALUES {})
         UPDATE incidents
            SET failures = COALESCE(v.failures, incidents.failures),
                root_body = COALESCE(v.root_body, incidents.root_body),
                latest_pipeline = COALESCE(v.latest_pipeline, incidents.latest_pipeline),
                latest_url = COALESCE(v.latest_url, incidents.latest_url),
                fixed_at = COALESCE(incidents.fixed_at, v.fixed_at),
                fixed_by = CASE WHEN incidents.fixed_at IS NULL THEN v.fixed_by
                                ELSE incidents.fixed_by END
           FROM v WHERE incidents.id = v.id",
        values_sql(updates.len(), 7, 1)
    ));
    for (id, u) in updates {
        st.bind(*id)
            .bind(u.failures)
            .bind(u.root_body.as_deref())
            .bind(u.latest_pipeline.map(|p| p as i64))
            .bind(u.latest_url.as_deref())
            .bind(u.fixed_at)
            .bind(u.fixed_by.map(|p| p as i64));
    }
    st
}

/// Inserts outbox rows in order, returning their ids.
fn outbox_stmt(rows: &[QueuedRow], now_ms: i64) -> Stmt<'_> {
    let mut st = Stmt::new(format!(
        "INSERT INTO outbox (channel, kind, incident_id, target_ts, target_id, payload,
                             next_attempt_at, created_at)
         VALUES {} RETURNING id",
        values_sql(rows.len(), 8, 1)
    ));
    for r in rows {
        st.bind(r.channel.as_str())
            .bind(r.kind.as_str())
            .bind(r.incident_id)
            .bind(r.target_ts.as_deref())
            .bind(r.target_id)
            .bind(r.payload.as_str())
            .bind(now_ms)
            .bind(now_ms);
    }
    st
}

/// Writes the heads of the batch's refs, each once.
fn heads_stmt<'a>(heads: &'a [HeadRow], open: &[Option<i64>]) -> Stmt<'a> {
    let mut st = Stmt::new(format!(
        "INSERT INTO ref_heads (project_id, git_ref, last_pipeline, open_incident)
         VALUES {}
         ON CONFLICT (project_id, git_ref) DO UPDATE
            SET last_pipeline = excluded.last_pipeline, open_incident = excluded.open_incident",
        values_sql(heads.len(), 4, 1)
    ));
    for (h, open) in heads.iter().zip(open) {
        st.bind(h.project_id as i64)
            .bind(h.git_ref.as_str())
            .bind(h.last_pipeline.map(|p| p as i64))
            .bind(*open);
    }
    st
}

impl Exec for IngestTx<'_> {
    async fn fetch<T>(
        &mut self,
        st: &Stmt<'_>,
        decode: impl Fn(&dyn Get) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        match &mut self.0 {
            On::Sqlx { tx, .. } => stmt::fetch(tx, st, decode).await,
            On::Lite(tx) => tx.fetch(st, decode),
        }
    }
}

impl IngestTx<'_> {
    fn engine(&self) -> Engine {
        match &self.0 {
            On::Sqlx { engine, .. } => *engine,
            On::Lite(_) => Engine::Sqlite,
        }
    }

    async fn execute(&mut self, st: &Stmt<'_>) -> anyhow::Result<()> {
        match &mut self.0 {
            On::Sqlx { tx, .. } => stmt::execute(tx, st).await,
            On::Lite(tx) => tx.execute(st),
        }
    }

    /// Records the projects a batch named (see [`Store::watched_projects`]).
    pub async fn record_projects(
        &mut self,
        projects: &[SeenProject],
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut sorted: Vec<&SeenProject> = projects.iter().collect();
        // One lock order for every writer.
        sorted.sort_by_key(|p| p.project_id);
        sorted.dedup_by_key(|p| p.project_id);
        for chunk in sorted.chunks(MAX_ROWS) {
            self.execute(&upsert_projects_stmt(chunk, now_ms)).await?;
        }
        Ok(())
    }

    /// Records de-duplication keys; returns those not seen before.
    pub async fn insert_keys(
        &mut self,
        keys: &[&str],
        now_ms: i64,
    ) -> anyhow::Result<HashSet<String>> {
        insert_keys(self, keys, now_ms).await
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
            if self.engine() == Engine::Postgres {
                let list = values_sql(chunk.len(), 2, 1);
                // Row locks need rows: an absent head is created empty, which means the same.
                let mut create = Stmt::new(format!(
                    "INSERT INTO ref_heads (project_id, git_ref) VALUES {list} ON CONFLICT DO NOTHING"
                ));
                bind_refs(&mut create, chunk);
                self.execute(&create).await?;
                // Locking and reading are two statements: a read that waited for a lock would
                // see the locked head's new version but the incident joined to it as it was
                // before the wait (PostgreSQL re-checks only the locked rows).
                let mut lock = Stmt::new(format!(
                    "SELECT project_id FROM ref_heads WHERE (project_id, git_ref) IN (VALUES {list})
                      ORDER BY project_id, git_ref FOR UPDATE"
                ));
                bind_refs(&mut lock, chunk);
                self.execute(&lock).await?;
            }
            out.extend(self.fetch(&read_refs_stmt(chunk), ref_state).await?);
        }
        Ok(out)
    }

    /// Writes what a batch decided: new incidents, changes to stored ones, outbox rows and
    /// ref heads, one statement each (per [`MAX_ROWS`] rows). Returns the new incidents' ids
    /// in the order of `w.new_incidents`.
    pub async fn write(&mut self, w: BatchWrites<'_>, now_ms: i64) -> anyhow::Result<Vec<i64>> {
        let mut new_ids = Vec::with_capacity(w.new_incidents.len());
        for chunk in w.new_incidents.chunks(MAX_ROWS) {
            let got: HashMap<(u64, String, u64), i64> = self
                .fetch(&incidents_stmt(chunk), |r| {
                    Ok((
                        (r.req_int(0)? as u64, r.req_text(1)?, r.req_int(2)? as u64),
                        r.req_int(3)?,
                    ))
                })
                .await?
                .into_iter()
                .collect();
            anyhow::ensure!(
                got.len() == chunk.len(),
                "two new incidents of a batch share a ref and first pipeline"
            );
            for inc in chunk {
                let key = (inc.project_id, inc.git_ref.to_string(), inc.first_pipeline);
                new_ids.push(
                    *got.get(&key)
                        .ok_or_else(|| anyhow::anyhow!("a new incident returned no id"))?,
                );
            }
        }
        let resolve = |r: Option<IncidentRef>| r.map(|r| r.resolve(&new_ids)).transpose();

        let mut updates: Vec<(i64, IncidentUpdate)> = w.updates.into_iter().collect();
        // One lock order for every writer.
        updates.sort_unstable_by_key(|(id, _)| *id);
        for chunk in updates.chunks(MAX_ROWS) {
            self.execute(&updates_stmt(chunk)).await?;
        }

        let rows = w
            .rows
            .into_iter()
            .map(|(incident, mut row)| {
                row.incident_id = resolve(incident)?;
                Ok(row)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        queue_rows(self, &rows, now_ms).await?;

        let open = w
            .heads
            .iter()
            .map(|h| resolve(h.open_incident))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (heads, open) in w.heads.chunks(MAX_ROWS).zip(open.chunks(MAX_ROWS)) {
            self.execute(&heads_stmt(heads, open)).await?;
        }
        Ok(new_ids)
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        match self.0 {
            On::Sqlx { tx, .. } => tx.commit().await,
            On::Lite(tx) => tx.commit(),
        }
    }
}

/// Inserts outbox rows in order (their ids ascend in this order: per-channel FIFO); returns
/// their ids.
pub(crate) async fn queue_rows(
    db: &mut impl Exec,
    rows: &[QueuedRow],
    now_ms: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_ROWS) {
        ids.extend(
            db.fetch(&outbox_stmt(chunk, now_ms), |r| r.req_int(0))
                .await?,
        );
    }
    Ok(ids)
}
