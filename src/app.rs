//! Shared state and the router, used by `main` and by the tests alike.

use std::sync::Arc;

use axum::Router;
use tokio::sync::Notify;

use crate::{config::Settings, http, ingest::Ingestor, metrics::Metrics, store::Store};

/// Unix seconds; injectable so signature windows can be tested.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub ingest: Ingestor,
    pub metrics: Metrics,
    /// Wakes the delivery worker when something was queued.
    pub wake: Arc<Notify>,
    pub clock: Clock,
}

impl AppState {
    /// Wires the state; the caller starts the delivery worker with `wake`.
    pub fn new(settings: Settings, store: Store, metrics: Metrics, clock: Clock) -> Self {
        let settings = Arc::new(settings);
        let wake = Arc::new(Notify::new());
        let ingest = Ingestor::spawn(
            store.clone(),
            Arc::new(settings.notify.clone()),
            wake.clone(),
        );
        Self {
            settings,
            store,
            ingest,
            metrics,
            wake,
            clock,
        }
    }
}

pub fn build_app(state: AppState) -> Router {
    http::router(state)
}
