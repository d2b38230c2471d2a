//! Group commit for accepted webhooks: handlers hand events to one writer, which applies
//! whatever has queued up in a single transaction, so a burst costs one fsync per batch
//! instead of one per webhook. A batch reads the stored state of its refs once, runs the
//! incident logic of `notify` over its events in memory, and writes the outcome — incidents,
//! messages, ref heads — with a fixed number of statements.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{liveness::Health, outbox::Outbox};
use crate::{
    metrics::Metrics,
    notify::{
        event::{Applied, Notice, PipelineEvent},
        incident::{self, RefHead, Step},
        render::{self, FailedJobs, Failure, FixedNotice},
    },
    store::{
        OutboxKind, Store,
        ingest::{
            BatchWrites, HeadRow, IncidentRef, IncidentUpdate, IngestTx, NewIncident, QueuedRow,
            RefKey,
        },
        lite::LiteConn,
    },
};
// On a line of its own: `catch_up` is also a top-level module, which this one must not use.
use crate::store::catch_up::SeenProject;

const MAX_BATCH: usize = 256;
/// Projects the writer remembers having recorded; it starts over beyond this.
const MAX_RECORDED: usize = 10_000;

/// The projects this writer recorded (id → path, page): a batch writes only the ones it
/// names that are new or renamed, so recording costs nothing in the steady state.
#[derive(Default)]
struct Recorded(HashMap<u64, (String, String)>);

impl Recorded {
    /// The batch's projects not recorded yet (known by id only: catch-up needs the id).
    fn missing(&self, events: &[PipelineEvent]) -> Vec<SeenProject> {
        let mut out: Vec<SeenProject> = Vec::new();
        for ev in events.iter().filter(|e| e.project_has_id) {
            let same = self
                .0
                .get(&ev.project_id)
                .is_some_and(|(path, url)| *path == ev.project_path && *url == ev.project_web_url);
            if !same && !out.iter().any(|p| p.project_id == ev.project_id) {
                out.push(SeenProject {
                    project_id: ev.project_id,
                    path: ev.project_path.clone(),
                    web_url: ev.project_web_url.clone(),
                });
            }
        }
        out
    }

    fn remember(&mut self, projects: Vec<SeenProject>) {
        if self.0.len() + projects.len() > MAX_RECORDED {
            self.0.clear();
        }
        for p in projects {
            self.0.insert(p.project_id, (p.path, p.web_url));
        }
    }
}

type Reply = oneshot::Sender<anyhow::Result<Applied>>;

#[derive(Debug, Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<(PipelineEvent, Reply)>,
}

/// Where the writer writes: the store's pool (PostgreSQL, or an in-memory SQLite store), or its
/// own connection to the SQLite file.
enum Conn {
    /// Boxed: a store handle is large, and the writer holds one `Conn` for its life.
    Pool(Box<Store>),
    Lite(LiteConn),
}

impl Conn {
    async fn begin(&mut self) -> anyhow::Result<IngestTx<'_>> {
        match self {
            Self::Pool(store) => store.begin_ingest().await,
            Self::Lite(lite) => lite.begin_ingest(),
        }
    }
}

/// Batches between checkpoints of the SQLite log under constant load.
const CHECKPOINT_EVERY: u32 = 256;
/// A quiet spell after which the SQLite log is checkpointed.
const CHECKPOINT_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

impl Ingestor {
    /// Starts the writer; `health.ingest` says whether it is alive and moving. On SQLite it
    /// runs on a thread of its own with its own connection, so no statement crosses threads;
    /// it stops when every `Ingestor` clone is dropped.
    pub fn spawn(
        store: Store,
        outbox: Outbox,
        health: Arc<Health>,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        match store.ingest_connection()? {
            Some(lite) => {
                let run = metrics.caught(
                    "ingest writer",
                    writer(Conn::Lite(lite), outbox, rx, health),
                );
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()?;
                std::thread::Builder::new()
                    .name("armbot-ingest".into())
                    .spawn(move || rt.block_on(run))?;
            }
            None => {
                tokio::spawn(metrics.caught(
                    "ingest writer",
                    writer(Conn::Pool(Box::new(store)), outbox, rx, health),
                ));
            }
        }
        Ok(Self { tx })
    }

    /// Returns once the event is committed (or failed to be).
    pub async fn submit(&self, event: PipelineEvent) -> anyhow::Result<Applied> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store writer dropped the event"))?
    }
}

async fn writer(
    mut conn: Conn,
    outbox: Outbox,
    mut rx: mpsc::Receiver<(PipelineEvent, Reply)>,
    health: Arc<Health>,
) {
    let _alive = health.ingest.alive();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut recorded = Recorded::default();
    let mut since_checkpoint = 0u32;
    loop {
        let received = match &mut conn {
            Conn::Lite(lite) if since_checkpoint > 0 => {
                match tokio::time::timeout(CHECKPOINT_IDLE, rx.recv_many(&mut batch, MAX_BATCH))
                    .await
                {
                    Ok(n) => n,
                    Err(_) => {
                        checkpoint(lite);
                        since_checkpoint = 0;
                        continue;
                    }
                }
            }
            _ => rx.recv_many(&mut batch, MAX_BATCH).await,
        };
        if received == 0 {
            break;
        }
        let busy = health.ingest.busy();
        let (events, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let now = chrono::Utc::now();
        let projects = recorded.missing(&events);
        match apply_on(&mut conn, &events, &projects, now).await {
            Ok(results) => {
                recorded.remember(projects);
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            // One bad event must not fail its neighbours: retry them one by one.
            Err(_) => {
                for (ev, reply) in events.into_iter().zip(replies) {
                    let one = std::slice::from_ref(&ev);
                    let projects = recorded.missing(one);
                    let r = apply_on(&mut conn, one, &projects, now)
                        .await
                        .and_then(|mut v| v.pop().ok_or_else(|| anyhow::anyhow!("no result")));
                    if r.is_ok() {
                        recorded.remember(projects);
                    }
                    let _ = reply.send(r);
                }
            }
        }
        outbox.wake();
        drop(busy);
        if let Conn::Lite(lite) = &mut conn {
            since_checkpoint += 1;
            // After the replies: no event waits for it.
            if since_checkpoint >= CHECKPOINT_EVERY {
                checkpoint(lite);
                since_checkpoint = 0;
            }
        }
    }
}

fn checkpoint(lite: &mut LiteConn) {
    if let Err(e) = lite.checkpoint() {
        tracing::warn!(error = %e, "checkpointing the store's write-ahead log failed");
    }
}

/// What applying an event did, before new incidents have ids.
enum Outcome {
    Done(Applied),
    Opened(IncidentRef),
    StillFailing(IncidentRef),
    Fixed(IncidentRef),
}

/// An incident as the batch sees it.
#[derive(Debug, Clone)]
struct Incident<'e> {
    id: IncidentRef,
    channel: String,
    opened_at: i64,
    failures: i64,
    first_pipeline: u64,
    latest_pipeline: u64,
    /// What it keeps of its latest failure; `None` for one opened by an older version, which
    /// kept a rendered message instead (the next reply then lists the jobs without comparing).
    latest: Option<Cow<'e, FailedJobs>>,
}

/// A ref as the batch sees it.
#[derive(Debug, Clone, Default)]
struct RefNow<'e> {
    last_pipeline: Option<u64>,
    open: Option<Incident<'e>>,
    /// An open incident whose root could never be posted: closed by the ref's next event,
    /// which then starts afresh rather than replying into a thread that does not exist.
    abandoned: Option<i64>,
    touched: bool,
}

async fn apply_on(
    conn: &mut Conn,
    events: &[PipelineEvent],
    projects: &[SeenProject],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Applied>> {
    apply(conn.begin().await?, events, projects, now).await
}

/// Applies events in order in `tx`, committed before this returns `Ok` (all of them are
/// durable, or none is). A fixed number of statements whatever the batch's size: projects
/// to record for catch-up (when `projects` names any), de-duplication keys, the refs' heads
/// (plus their creation and lock on PostgreSQL), then new incidents, changed incidents,
/// outbox rows and heads.
pub async fn apply(
    mut tx: IngestTx<'_>,
    events: &[PipelineEvent],
    projects: &[SeenProject],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Applied>> {
    let now_ms = now.timestamp_millis();
    if !projects.is_empty() {
        tx.record_projects(projects, now_ms).await?;
    }

    let keys: Vec<Vec<String>> = events.iter().map(PipelineEvent::dedup_keys).collect();
    let all: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
    let fresh = tx.insert_keys(&all, now_ms).await?;
    // An event is new when none of its keys was seen, before or earlier in this batch.
    let mut seen_in_batch: HashSet<&str> = HashSet::new();
    let new: Vec<bool> = keys
        .iter()
        .map(|ks| {
            let new = ks
                .iter()
                .all(|k| fresh.contains(k) && !seen_in_batch.contains(k.as_str()));
            seen_in_batch.extend(ks.iter().map(String::as_str));
            new
        })
        .collect();

    let refs: Vec<RefKey> = events
        .iter()
        .zip(&new)
        .filter(|(_, new)| **new)
        .map(|(ev, _)| (ev.project_id, ev.git_ref.clone()))
        .collect();
    let stored = tx.lock_refs(&refs).await?;
    let mut heads: HashMap<RefKey, RefNow> = stored
        .into_iter()
        .map(|(k, st)| {
            let abandoned = st.open.as_ref().filter(|o| o.root_failed).map(|o| o.id);
            let open = st.open.filter(|o| !o.root_failed).map(|o| Incident {
                id: IncidentRef::Stored(o.id),
                channel: o.channel,
                opened_at: o.opened_at,
                failures: o.failures,
                first_pipeline: o.first_pipeline,
                latest_pipeline: o.latest_pipeline,
                latest: serde_json::from_str(&o.root_body).ok().map(Cow::Owned),
            });
            let now = RefNow {
                last_pipeline: st.last_pipeline,
                open,
                abandoned,
                touched: false,
            };
            (k, now)
        })
        .collect();

    let mut writes = BatchWrites::default();
    let mut roots = RootUpdates::default();
    let mut outcomes = Vec::with_capacity(events.len());
    for (ev, new) in events.iter().zip(new) {
        if !new {
            outcomes.push(Outcome::Done(Applied::Duplicate));
            continue;
        }
        let head = heads
            .entry((ev.project_id, ev.git_ref.clone()))
            .or_default();
        outcomes.push(decide(ev, head, &mut writes, &mut roots, now)?);
    }
    roots.finish(&mut writes.rows)?;
    writes.heads = heads
        .into_iter()
        .filter(|(_, h)| h.touched)
        .map(|((project_id, git_ref), h)| HeadRow {
            project_id,
            git_ref,
            last_pipeline: h.last_pipeline,
            open_incident: h.open.map(|o| o.id),
        })
        .collect();
    // Heads in one order for every writer (PostgreSQL row locks).
    writes
        .heads
        .sort_unstable_by(|a, b| (a.project_id, &a.git_ref).cmp(&(b.project_id, &b.git_ref)));

    let ids = tx.write(writes, now_ms).await?;
    tx.commit().await?;

    let resolve = |id: IncidentRef| id.resolve(&ids);
    outcomes
        .into_iter()
        .map(|o| {
            Ok(match o {
                Outcome::Done(a) => a,
                Outcome::Opened(id) => Applied::Opened {
                    incident: resolve(id)?,
                },
                Outcome::StillFailing(id) => Applied::StillFailing {
                    incident: resolve(id)?,
                },
                Outcome::Fixed(id) => Applied::Fixed {
                    incident: resolve(id)?,
                },
            })
        })
        .collect()
}

/// Records a change to an incident: into the batch's new row, or as an update of a stored one.
fn change<'e>(
    writes: &mut BatchWrites<'e>,
    id: IncidentRef,
    apply_new: impl FnOnce(&mut NewIncident<'e>),
    apply_stored: impl FnOnce(&mut IncidentUpdate),
) -> anyhow::Result<()> {
    match id {
        IncidentRef::New(i) => apply_new(
            writes
                .new_incidents
                .get_mut(i)
                .ok_or_else(|| anyhow::anyhow!("no new incident {i} in the batch"))?,
        ),
        IncidentRef::Stored(id) => apply_stored(writes.updates.entry(id).or_default()),
    }
    Ok(())
}

/// The incident logic for one event against its ref as the batch left it.
fn decide<'e>(
    ev: &'e PipelineEvent,
    head: &mut RefNow<'e>,
    writes: &mut BatchWrites<'e>,
    roots: &mut RootUpdates<'e>,
    now: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    let before = RefHead {
        last_pipeline: head.last_pipeline,
        broken: head.open.is_some(),
    };
    let group = ev.group_pipeline;
    let step = incident::step(&before, group, ev.outcome());
    if let Step::Stale { newest } = step {
        return Ok(Outcome::Done(Applied::Stale { newest }));
    }
    head.last_pipeline = incident::advance(&before, group, step).last_pipeline;
    head.touched = true;
    let url = ev.pipeline_url.as_str();
    let event_time = ev.finished_at.unwrap_or(now);
    if let Some(id) = head.abandoned.take() {
        // Closed without a fixing pipeline.
        writes.updates.entry(id).or_default().fixed_at = Some(event_time.timestamp());
    }
    let open = |head: &mut RefNow<'e>| {
        head.open
            .take()
            .ok_or_else(|| anyhow::anyhow!("ref is broken but has no open incident"))
    };
    Ok(match (step, &ev.notice) {
        (Step::Stale { .. } | Step::StillHealthy, _) => Outcome::Done(Applied::StillHealthy),
        (
            Step::Open,
            Notice::Failed {
                kept,
                kept_json,
                root_json,
                first_reply_json,
                ..
            },
        ) => {
            let id = IncidentRef::New(writes.new_incidents.len());
            writes.new_incidents.push(NewIncident {
                project_id: ev.project_id,
                project_path: &ev.project_path,
                git_ref: &ev.git_ref,
                channel: &ev.channel,
                root_body_json: kept_json,
                first_pipeline: ev.pipeline_id,
                latest_pipeline: ev.pipeline_id,
                latest_url: url,
                failures: 1,
                opened_at: event_time.timestamp(),
                fixed_at: None,
                fixed_by: None,
            });
            writes.rows.push((
                Some(id),
                QueuedRow {
                    channel: ev.channel.clone(),
                    kind: OutboxKind::Post,
                    incident_id: None,
                    target_ts: None,
                    target_id: None,
                    payload: root_json.clone(),
                },
            ));
            head.open = Some(Incident {
                id,
                channel: ev.channel.clone(),
                opened_at: event_time.timestamp(),
                failures: 1,
                first_pipeline: ev.pipeline_id,
                latest_pipeline: ev.pipeline_id,
                latest: Some(Cow::Borrowed(kept)),
            });
            if let Some(reply) = first_reply_json {
                writes.rows.push((
                    Some(id),
                    QueuedRow {
                        channel: ev.channel.clone(),
                        kind: OutboxKind::Reply,
                        incident_id: None,
                        target_ts: None,
                        target_id: None,
                        payload: reply.clone(),
                    },
                ));
            }
            Outcome::Opened(id)
        }
        (
            Step::StillFailing,
            Notice::Failed {
                failure,
                kept,
                kept_json,
                ..
            },
        ) => {
            let mut inc = open(head)?;
            inc.failures += 1;
            let failures = inc.failures;
            change(
                writes,
                inc.id,
                |n| {
                    n.failures = failures;
                    n.latest_pipeline = ev.pipeline_id;
                    n.latest_url = url;
                    n.root_body_json = kept_json;
                },
                |u| {
                    u.failures = Some(failures);
                    u.latest_pipeline = Some(ev.pipeline_id);
                    u.latest_url = Some(url.to_string());
                    u.root_body = Some(kept_json.clone());
                },
            )?;
            let failure: &'e Failure = failure;
            let reply = render::still_failing(inc.latest.as_deref(), failure);
            inc.latest = Some(Cow::Borrowed(kept));
            inc.latest_pipeline = ev.pipeline_id;
            let root = Root::Broken {
                failure,
                since: DateTime::from_timestamp(inc.opened_at, 0).unwrap_or(now),
                failures,
                first: inc.first_pipeline,
            };
            thread_pair(writes, roots, &inc, serde_json::to_string(&reply)?, root);
            let id = inc.id;
            head.open = Some(inc);
            Outcome::StillFailing(id)
        }
        (Step::Fixed, Notice::Succeeded(fixed)) => {
            let inc = open(head)?;
            let broken_for = event_time.timestamp() - inc.opened_at;
            let at = event_time.timestamp();
            change(
                writes,
                inc.id,
                |n| {
                    n.fixed_at = Some(at);
                    n.fixed_by = Some(ev.pipeline_id);
                },
                |u| {
                    u.fixed_at = Some(at);
                    u.fixed_by = Some(ev.pipeline_id);
                },
            )?;
            let root = Root::Fixed {
                notice: fixed,
                broken_for,
                first: inc.first_pipeline,
                last_failed: inc.latest_pipeline,
                failures: inc.failures,
            };
            let reply = serde_json::to_string(&fixed.reply(broken_for))?;
            thread_pair(writes, roots, &inc, reply, root);
            head.open = None;
            Outcome::Fixed(inc.id)
        }
        (step, _) => anyhow::bail!("{step:?} cannot follow a {:?} pipeline", ev.outcome()),
    })
}

/// What an incident's root shows once updated.
enum Root<'e> {
    Broken {
        failure: &'e Failure,
        since: DateTime<Utc>,
        failures: i64,
        first: u64,
    },
    Fixed {
        notice: &'e FixedNotice,
        broken_for: i64,
        first: u64,
        last_failed: u64,
        failures: i64,
    },
}

impl Root<'_> {
    fn payload(&self) -> anyhow::Result<String> {
        let m = match self {
            Root::Broken {
                failure,
                since,
                failures,
                first,
            } => render::root_broken(failure, *since, *failures, *first),
            Root::Fixed {
                notice,
                broken_for,
                first,
                last_failed,
                failures,
            } => notice.root(*broken_for, *first, *last_failed, *failures),
        };
        Ok(serde_json::to_string(&m)?)
    }
}

/// A reply in the incident's thread, then the root brought up to date. Both go to the
/// incident's channel so per-channel order keeps them behind the root.
fn thread_pair<'e>(
    writes: &mut BatchWrites<'_>,
    roots: &mut RootUpdates<'e>,
    inc: &Incident,
    reply_json: String,
    root: Root<'e>,
) {
    for (kind, payload) in [
        (OutboxKind::Reply, reply_json),
        // Rendered once the batch is decided: see `RootUpdates`.
        (OutboxKind::Update, String::new()),
    ] {
        writes.rows.push((
            Some(inc.id),
            QueuedRow {
                channel: inc.channel.clone(),
                kind,
                incident_id: None,
                target_ts: None,
                target_id: None,
                payload,
            },
        ));
    }
    roots.push(inc.id, writes.rows.len() - 1, root);
}

/// The root updates of a batch: only an incident's last one is sent, in the last one's place.
/// Each replaces the whole root message, so an earlier one in the same batch would only be
/// overwritten a moment later, at the cost of a `chat.update` call (Slack allows about 50 a
/// minute) and of a rendered root stored for nothing.
#[derive(Default)]
struct RootUpdates<'e> {
    /// Incident → (its update row, what the root shows).
    last: HashMap<IncidentRef, (usize, Root<'e>)>,
    superseded: HashSet<usize>,
}

impl<'e> RootUpdates<'e> {
    fn push(&mut self, inc: IncidentRef, row: usize, root: Root<'e>) {
        if let Some((old, _)) = self.last.insert(inc, (row, root)) {
            self.superseded.insert(old);
        }
    }

    /// Renders the surviving updates into their rows and drops the superseded ones.
    fn finish(self, rows: &mut Vec<(Option<IncidentRef>, QueuedRow)>) -> anyhow::Result<()> {
        for (row, root) in self.last.into_values() {
            if let Some((_, r)) = rows.get_mut(row) {
                r.payload = root.payload()?;
            }
        }
        if !self.superseded.is_empty() {
            let mut i = 0;
            rows.retain(|_| {
                i += 1;
                !self.superseded.contains(&(i - 1))
            });
        }
        Ok(())
    }
}
