//! Group commit for accepted webhooks: handlers hand events to one writer,
//! which applies whatever has queued up in a single transaction, so a burst
//! costs one fsync per batch instead of one per webhook.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{
    Store,
    pipeline::{Applied, PipelineEvent},
};

const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<anyhow::Result<Applied>>;

#[derive(Debug, Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<(PipelineEvent, Reply)>,
}

impl Ingestor {
    /// Starts the writer; it stops when every `Ingestor` clone is dropped.
    pub fn spawn(store: Store, wake: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(store, wake, rx));
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

async fn writer(store: Store, wake: Arc<Notify>, mut rx: mpsc::Receiver<(PipelineEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let now = chrono::Utc::now();
        match store.apply_pipeline_events(&events, now).await {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            // One bad event must not fail its neighbours: retry them one by one.
            Err(_) => {
                for (ev, reply) in events.into_iter().zip(replies) {
                    let r = store
                        .apply_pipeline_events(std::slice::from_ref(&ev), now)
                        .await
                        .and_then(|mut v| v.pop().ok_or_else(|| anyhow::anyhow!("no result")));
                    let _ = reply.send(r);
                }
            }
        }
        wake.notify_one();
    }
}
