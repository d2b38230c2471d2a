//! The one door to the outbox: every producer queues through an [`Outbox`], which stores the
//! message and wakes the delivery worker.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::store::{NewMessage, Store, now_ms};

#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues one message; it is durable when this returns.
    pub async fn enqueue(&self, m: &NewMessage) -> anyhow::Result<i64> {
        let id = self.store.enqueue(m, now_ms()).await?;
        self.wake();
        Ok(id)
    }

    /// Queues `m` (a reply or an update) to the message outbox row `parent` posts, e.g. a
    /// reply in the thread of an earlier warning.
    pub async fn enqueue_reply_to(&self, parent: i64, m: &NewMessage) -> anyhow::Result<i64> {
        let id = self.store.enqueue_reply_to(parent, m, now_ms()).await?;
        self.wake();
        Ok(id)
    }

    /// Queues `m` unless one of `keys` was seen before (a retried event); false then.
    pub async fn enqueue_once(&self, keys: &[String], m: &NewMessage) -> anyhow::Result<bool> {
        let fresh = self.store.enqueue_once(keys, m, now_ms()).await?;
        if fresh {
            self.wake();
        }
        Ok(fresh)
    }

    /// Tells the worker that rows were queued some other way (an ingest transaction).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the worker waits on.
    pub fn signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
