//! Whether the ingest writer and the delivery worker are alive and moving: each marks when
//! it starts and finishes a unit of work, and whether it stopped unexpectedly (a panic). The
//! service's supervisor reads this; `/readyz` says which one is in trouble.

use std::{
    sync::atomic::{AtomicBool, AtomicI64, Ordering},
    time::Duration,
};

use crate::store::now_ms;

#[derive(Debug, Default)]
pub struct Liveness {
    /// Running, as opposed to never started or stopped on purpose.
    running: AtomicBool,
    /// Stopped by a panic while running.
    died: AtomicBool,
    /// When the unit of work in progress began (ms), 0 when idle.
    busy_since: AtomicI64,
}

/// Why a component is not healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    Died,
    Stalled,
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Died => "stopped unexpectedly",
            Self::Stalled => "is stalled",
        })
    }
}

impl Liveness {
    /// Held for as long as the component runs; a panic that drops it marks the component dead.
    pub fn alive(&self) -> Alive<'_> {
        self.died.store(false, Ordering::SeqCst);
        self.busy_since.store(0, Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
        Alive(self)
    }

    /// Held while a unit of work runs.
    pub fn busy(&self) -> Busy<'_> {
        self.busy_since.store(now_ms().max(1), Ordering::SeqCst);
        Busy(self)
    }

    /// `None` when healthy: not running at all (a standby's worker) counts as healthy.
    pub fn trouble(&self, stall: Duration) -> Option<Trouble> {
        if self.died.load(Ordering::SeqCst) {
            return Some(Trouble::Died);
        }
        let since = self.busy_since.load(Ordering::SeqCst);
        let running = self.running.load(Ordering::SeqCst);
        (running && since > 0 && now_ms() - since > stall.as_millis() as i64)
            .then_some(Trouble::Stalled)
    }
}

pub struct Alive<'a>(&'a Liveness);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.died.store(true, Ordering::SeqCst);
        }
        self.0.running.store(false, Ordering::SeqCst);
    }
}

pub struct Busy<'a>(&'a Liveness);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy_since.store(0, Ordering::SeqCst);
    }
}

/// The two components the service cannot do without.
#[derive(Debug, Default)]
pub struct Health {
    pub ingest: Liveness,
    pub worker: Liveness,
}

/// A batch that has not committed in this long is stuck (the store's own timeouts are seconds).
pub const INGEST_STALL: Duration = Duration::from_secs(120);
/// A pass over the outbox makes at most one Slack call per channel, each bounded by a timeout.
pub const WORKER_STALL: Duration = Duration::from_secs(600);

impl Health {
    /// The first component in trouble, named.
    pub fn trouble(&self) -> Option<String> {
        if let Some(t) = self.ingest.trouble(INGEST_STALL) {
            return Some(format!("the ingest writer {t}"));
        }
        self.worker
            .trouble(WORKER_STALL)
            .map(|t| format!("the delivery worker {t}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_marks_the_component_dead_and_a_clean_stop_does_not() {
        let l = Liveness::default();
        {
            let _alive = l.alive();
            let _busy = l.busy();
            assert_eq!(l.trouble(Duration::from_secs(60)), None);
            // A unit of work begun ten seconds ago.
            l.busy_since.store(now_ms() - 10_000, Ordering::SeqCst);
            assert_eq!(l.trouble(Duration::from_secs(5)), Some(Trouble::Stalled));
        }
        assert_eq!(l.trouble(Duration::ZERO), None, "stopped on purpose");
        let died = std::panic::catch_unwind(|| {
            let _alive = l.alive();
            panic!("boom");
        });
        assert!(died.is_err());
        assert_eq!(l.trouble(Duration::from_secs(60)), Some(Trouble::Died));
    }
}
