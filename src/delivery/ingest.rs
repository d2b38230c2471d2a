//! Group commit for accepted webhooks: handlers hand events to one writer, which applies
//! whatever has queued up in a single transaction, so a burst costs one fsync per batch
//! instead of one per webhook. Applying an event is the incident logic of `notify` run
//! against the ref's stored state, and the messages it calls for queued in the same
//! transaction.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::outbox::Outbox;
use crate::{
    notify::{
        event::{Applied, Notice, PipelineEvent},
        incident::{self, RefHead, Step},
        render::{self, RootStatus},
    },
    store::{
        NewMessage, OutboxKind, Store,
        ingest::{IngestTx, NewIncident, OpenIncident},
    },
};

const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<anyhow::Result<Applied>>;

#[derive(Debug, Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<(PipelineEvent, Reply)>,
}

impl Ingestor {
    /// Starts the writer; it stops when every `Ingestor` clone is dropped.
    pub fn spawn(store: Store, outbox: Outbox) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(store, outbox, rx));
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

async fn writer(store: Store, outbox: Outbox, mut rx: mpsc::Receiver<(PipelineEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let now = chrono::Utc::now();
        match apply(&store, &events, now).await {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            // One bad event must not fail its neighbours: retry them one by one.
            Err(_) => {
                for (ev, reply) in events.into_iter().zip(replies) {
                    let r = apply(&store, std::slice::from_ref(&ev), now)
                        .await
                        .and_then(|mut v| v.pop().ok_or_else(|| anyhow::anyhow!("no result")));
                    let _ = reply.send(r);
                }
            }
        }
        outbox.wake();
    }
}

/// Applies events in order in one transaction: either all of them are durable when this
/// returns `Ok`, or none is.
pub async fn apply(
    store: &Store,
    events: &[PipelineEvent],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Applied>> {
    let mut tx = store.begin_ingest().await?;
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        out.push(apply_one(&mut tx, ev, now).await?);
    }
    tx.commit().await?;
    Ok(out)
}

async fn apply_one(
    tx: &mut IngestTx,
    ev: &PipelineEvent,
    now: DateTime<Utc>,
) -> anyhow::Result<Applied> {
    let now_ms = now.timestamp_millis();
    let natural = ev.natural_key();
    let idem = ev.idempotency_key.as_ref().map(|k| format!("idem:{k}"));
    let keys: Vec<&str> = std::iter::once(natural.as_str())
        .chain(idem.as_deref())
        .collect();
    if !tx.record_keys(&keys, now_ms).await? {
        return Ok(Applied::Duplicate);
    }
    let state = tx.ref_state(ev.project_id, &ev.git_ref).await?;
    let head = RefHead {
        last_pipeline: state.last_pipeline,
        broken: state.open.is_some(),
    };
    let group = ev.group_pipeline;
    let step = incident::step(&head, group, ev.outcome());
    if let Step::Stale { newest } = step {
        return Ok(Applied::Stale { newest });
    }
    let next = incident::advance(&head, group, step);
    let url = ev.pipeline_url.as_str();
    let event_time = ev.finished_at.unwrap_or(now);
    let open = || {
        state
            .open
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("ref is broken but has no open incident"))
    };

    let (applied, open_after) = match (step, &ev.notice) {
        (Step::Stale { .. } | Step::StillHealthy, _) => (Applied::StillHealthy, None),
        (
            Step::Open,
            Notice::Failed {
                body,
                body_json,
                first_reply_json,
                ..
            },
        ) => {
            let id = tx
                .open_incident(&NewIncident {
                    project_id: ev.project_id,
                    project_path: &ev.project_path,
                    git_ref: &ev.git_ref,
                    channel: &ev.channel,
                    root_body_json: body_json,
                    pipeline_id: ev.pipeline_id,
                    pipeline_url: url,
                    opened_at: event_time.timestamp(),
                })
                .await?;
            let status = RootStatus::Broken {
                since: event_time,
                failures: 1,
                latest_pipeline: ev.pipeline_id,
                latest_url: url.to_string(),
            };
            let root = NewMessage {
                channel: ev.channel.clone(),
                kind: OutboxKind::Post,
                incident_id: Some(id),
                target_ts: None,
                message: render::root_message(body, &status),
            };
            tx.queue(&root, now_ms).await?;
            if let Some(reply) = first_reply_json {
                let reply = [(OutboxKind::Reply, reply.as_str())];
                tx.queue_for_incident(&ev.channel, id, &reply, now_ms)
                    .await?;
            }
            (Applied::Opened { incident: id }, Some(id))
        }
        (Step::StillFailing, Notice::Failed { reply_json, .. }) => {
            let inc = open()?;
            let failures = inc.failures + 1;
            tx.record_failure(inc.id, failures, ev.pipeline_id, url)
                .await?;
            let status = RootStatus::Broken {
                since: DateTime::from_timestamp(inc.opened_at, 0).unwrap_or(now),
                failures: failures as u32,
                latest_pipeline: ev.pipeline_id,
                latest_url: url.to_string(),
            };
            queue_thread_pair(tx, inc, reply_json, &status, now_ms).await?;
            (Applied::StillFailing { incident: inc.id }, Some(inc.id))
        }
        (Step::Fixed, Notice::Succeeded(fixed)) => {
            let inc = open()?;
            let broken_for = event_time.timestamp() - inc.opened_at;
            tx.close_incident(inc.id, event_time.timestamp(), ev.pipeline_id)
                .await?;
            let status = RootStatus::Fixed {
                by_pipeline: ev.pipeline_id,
                by_url: url.to_string(),
                broken_for_secs: broken_for,
            };
            let reply = serde_json::to_string(&fixed.message(broken_for))?;
            queue_thread_pair(tx, inc, &reply, &status, now_ms).await?;
            (Applied::Fixed { incident: inc.id }, None)
        }
        (step, _) => anyhow::bail!("{step:?} cannot follow a {:?} pipeline", ev.outcome()),
    };
    tx.set_ref_head(ev.project_id, &ev.git_ref, next.last_pipeline, open_after)
        .await?;
    Ok(applied)
}

/// A reply in the incident's thread, then the root brought up to date. Both go to the
/// incident's channel so per-channel order keeps them behind the root.
async fn queue_thread_pair(
    tx: &mut IngestTx,
    inc: &OpenIncident,
    reply_json: &str,
    status: &RootStatus,
    now_ms: i64,
) -> anyhow::Result<()> {
    let update = serde_json::to_string(&render::root_message(&inc.root_body, status))?;
    tx.queue_for_incident(
        &inc.channel,
        inc.id,
        &[
            (OutboxKind::Reply, reply_json),
            (OutboxKind::Update, &update),
        ],
        now_ms,
    )
    .await
}
