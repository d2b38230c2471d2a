//! Getting messages out: the group-commit ingest writer for webhooks, the [`Outbox`] every
//! producer queues through, and the worker that delivers what is queued.

pub mod ingest;
pub mod liveness;
pub mod outbox;
pub mod worker;

pub use ingest::Ingestor;
pub use liveness::Health;
pub use outbox::Outbox;
pub use worker::{Tick, Worker, WorkerConfig};
