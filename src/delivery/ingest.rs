//! Group commit for accepted webhooks: handlers hand events to one writer, which applies
//! whatever has queued up in a single transaction, so a burst costs one fsync per batch
//! instead of one per webhook. A batch reads the stored state of its refs once, runs the
//! incident logic of `notify` over its events in memory, and writes the outcome — incidents,
//! messages, ref heads — with a fixed number of statements.

use std::{
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
        render::{self, RootStatus},
    },
    slack::Message,
    store::{
        OutboxKind, Store,
        ingest::{HeadRow, IncidentChange, NewIncident, QueuedRow, RefKey},
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

impl Ingestor {
    /// Starts the writer; it stops when every `Ingestor` clone is dropped.
    /// Starts the writer; `health.ingest` says whether it is alive and moving.
    pub fn spawn(store: Store, outbox: Outbox, health: Arc<Health>, metrics: &Metrics) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(metrics.caught("ingest writer", writer(store, outbox, rx, health)));
        Self { tx }
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
    store: Store,
    outbox: Outbox,
    mut rx: mpsc::Receiver<(PipelineEvent, Reply)>,
    health: Arc<Health>,
) {
    let _alive = health.ingest.alive();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut recorded = Recorded::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let _busy = health.ingest.busy();
        let (events, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let now = chrono::Utc::now();
        let projects = recorded.missing(&events);
        match apply(&store, &events, &projects, now).await {
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
                    let r = apply(&store, one, &projects, now)
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
    }
}

/// Where an incident's id comes from: the store, or the batch's own new incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IncidentId {
    Stored(i64),
    New(usize),
}

/// An incident as the batch sees it.
#[derive(Debug, Clone)]
struct Incident {
    id: IncidentId,
    channel: String,
    opened_at: i64,
    failures: i64,
    root_body: Message,
}

/// A ref as the batch sees it.
#[derive(Debug, Clone, Default)]
struct RefNow {
    last_pipeline: Option<u64>,
    open: Option<Incident>,
    /// An open incident whose root could never be posted: closed by the ref's next event,
    /// which then starts afresh rather than replying into a thread that does not exist.
    abandoned: Option<i64>,
    touched: bool,
}

/// The writes a batch calls for, decided in memory.
#[derive(Default)]
struct Writes<'e> {
    new_incidents: Vec<NewIncident<'e>>,
    changes: Vec<(IncidentId, Change)>,
    rows: Vec<(Option<IncidentId>, QueuedRow)>,
}

enum Change {
    Failed {
        failures: i64,
        pipeline_id: u64,
        url: String,
    },
    Fixed {
        at: i64,
        by: u64,
    },
    Abandoned {
        at: i64,
    },
}

/// What applying an event did, before new incidents have ids.
enum Outcome {
    Done(Applied),
    Opened(IncidentId),
    StillFailing(IncidentId),
    Fixed(IncidentId),
}

/// Applies events in order in one transaction, with a fixed number of statements for the
/// batch (plus one per newly opened incident, one per touched incident, and one when
/// `projects` names projects to record for catch-up): either all of them are durable when
/// this returns `Ok`, or none is.
pub async fn apply(
    store: &Store,
    events: &[PipelineEvent],
    projects: &[SeenProject],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Applied>> {
    let now_ms = now.timestamp_millis();
    let mut tx = store.begin_ingest().await?;
    tx.record_projects(projects, now_ms).await?;

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
                id: IncidentId::Stored(o.id),
                channel: o.channel,
                opened_at: o.opened_at,
                failures: o.failures,
                root_body: o.root_body,
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

    let mut writes = Writes::default();
    let mut outcomes = Vec::with_capacity(events.len());
    for (ev, new) in events.iter().zip(new) {
        if !new {
            outcomes.push(Outcome::Done(Applied::Duplicate));
            continue;
        }
        let head = heads
            .entry((ev.project_id, ev.git_ref.clone()))
            .or_default();
        outcomes.push(decide(ev, head, &mut writes, now)?);
    }

    let mut ids = Vec::with_capacity(writes.new_incidents.len());
    for inc in &writes.new_incidents {
        ids.push(tx.open_incident(inc).await?);
    }
    let resolve = |id: IncidentId| match id {
        IncidentId::Stored(id) => id,
        IncidentId::New(i) => ids[i],
    };
    for (id, change) in writes.changes {
        let id = resolve(id);
        tx.change_incident(&match change {
            Change::Failed {
                failures,
                pipeline_id,
                url,
            } => IncidentChange::Failed {
                id,
                failures,
                pipeline_id,
                pipeline_url: url,
            },
            Change::Fixed { at, by } => IncidentChange::Fixed {
                id,
                fixed_at: at,
                fixed_by: by,
            },
            Change::Abandoned { at } => IncidentChange::Abandoned { id, at },
        })
        .await?;
    }
    let rows: Vec<QueuedRow> = writes
        .rows
        .into_iter()
        .map(|(incident, mut row)| {
            row.incident_id = incident.map(resolve);
            row
        })
        .collect();
    tx.queue(&rows, now_ms).await?;
    let heads: Vec<HeadRow> = heads
        .into_iter()
        .filter(|(_, h)| h.touched)
        .map(|((project_id, git_ref), h)| HeadRow {
            project_id,
            git_ref,
            last_pipeline: h.last_pipeline,
            open_incident: h.open.map(|o| resolve(o.id)),
        })
        .collect();
    tx.set_heads(&heads).await?;
    tx.commit().await?;

    Ok(outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Done(a) => a,
            Outcome::Opened(id) => Applied::Opened {
                incident: resolve(id),
            },
            Outcome::StillFailing(id) => Applied::StillFailing {
                incident: resolve(id),
            },
            Outcome::Fixed(id) => Applied::Fixed {
                incident: resolve(id),
            },
        })
        .collect())
}

/// The incident logic for one event against its ref as the batch left it.
fn decide<'e>(
    ev: &'e PipelineEvent,
    head: &mut RefNow,
    writes: &mut Writes<'e>,
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
        writes.changes.push((
            IncidentId::Stored(id),
            Change::Abandoned {
                at: event_time.timestamp(),
            },
        ));
    }
    let open = |head: &RefNow| {
        head.open
            .clone()
            .ok_or_else(|| anyhow::anyhow!("ref is broken but has no open incident"))
    };
    Ok(match (step, &ev.notice) {
        (Step::Stale { .. } | Step::StillHealthy, _) => Outcome::Done(Applied::StillHealthy),
        (
            Step::Open,
            Notice::Failed {
                body,
                body_json,
                first_reply_json,
                ..
            },
        ) => {
            let id = IncidentId::New(writes.new_incidents.len());
            writes.new_incidents.push(NewIncident {
                project_id: ev.project_id,
                project_path: &ev.project_path,
                git_ref: &ev.git_ref,
                channel: &ev.channel,
                root_body_json: body_json,
                pipeline_id: ev.pipeline_id,
                pipeline_url: url,
                opened_at: event_time.timestamp(),
            });
            let status = RootStatus::Broken {
                since: event_time,
                failures: 1,
                latest_pipeline: ev.pipeline_id,
                latest_url: url.to_string(),
            };
            writes.rows.push((
                Some(id),
                QueuedRow {
                    channel: ev.channel.clone(),
                    kind: OutboxKind::Post,
                    incident_id: None,
                    target_ts: None,
                    target_id: None,
                    payload: serde_json::to_string(&render::root_message(body, &status))?,
                },
            ));
            head.open = Some(Incident {
                id,
                channel: ev.channel.clone(),
                opened_at: event_time.timestamp(),
                failures: 1,
                root_body: body.clone(),
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
        (Step::StillFailing, Notice::Failed { reply_json, .. }) => {
            let mut inc = open(head)?;
            inc.failures += 1;
            writes.changes.push((
                inc.id,
                Change::Failed {
                    failures: inc.failures,
                    pipeline_id: ev.pipeline_id,
                    url: url.to_string(),
                },
            ));
            let status = RootStatus::Broken {
                since: DateTime::from_timestamp(inc.opened_at, 0).unwrap_or(now),
                failures: inc.failures as u32,
                latest_pipeline: ev.pipeline_id,
                latest_url: url.to_string(),
            };
            thread_pair(writes, &inc, reply_json.clone(), &status)?;
            let id = inc.id;
            head.open = Some(inc);
            Outcome::StillFailing(id)
        }
        (Step::Fixed, Notice::Succeeded(fixed)) => {
            let inc = open(head)?;
            let broken_for = event_time.timestamp() - inc.opened_at;
            writes.changes.push((
                inc.id,
                Change::Fixed {
                    at: event_time.timestamp(),
                    by: ev.pipeline_id,
                },
            ));
            let status = RootStatus::Fixed {
                by_pipeline: ev.pipeline_id,
                by_url: url.to_string(),
                broken_for_secs: broken_for,
            };
            let reply = serde_json::to_string(&fixed.message(broken_for))?;
            thread_pair(writes, &inc, reply, &status)?;
            head.open = None;
            Outcome::Fixed(inc.id)
        }
        (step, _) => anyhow::bail!("{step:?} cannot follow a {:?} pipeline", ev.outcome()),
    })
}

/// A reply in the incident's thread, then the root brought up to date. Both go to the
/// incident's channel so per-channel order keeps them behind the root.
fn thread_pair(
    writes: &mut Writes<'_>,
    inc: &Incident,
    reply_json: String,
    status: &RootStatus,
) -> anyhow::Result<()> {
    let update = serde_json::to_string(&render::root_message(&inc.root_body, status))?;
    for (kind, payload) in [
        (OutboxKind::Reply, reply_json),
        (OutboxKind::Update, update),
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
    Ok(())
}
