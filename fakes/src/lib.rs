//! Stateful fakes of the services armbot talks to, one set for its integration tests and
//! its benchmark harness: [`FakeSlack`] (the Web API methods the bot calls and `response_url`
//! posts), [`FakeScaleway`] (the Instance, Block and IAM calls of `/arm status` and
//! `/arm reap`), with [`ScwServer`], the one builder of server JSON, [`FakeGitLab`] (the REST
//! API calls of catch-up and the hook check), and [`Outage`], a TCP proxy that cuts a
//! database's line on demand.
//!
//! Each fake is a wiremock [`MockServer`](wiremock::MockServer) on loopback whose single
//! responder keeps the service's state behind an `Arc<Mutex<…>>`: what was posted can be read
//! back, what was deleted is gone. Every request is recorded, failures can be scripted
//! (an HTTP status, an error body, 429 with `Retry-After`), and every answer can be delayed.
//! Waiting for work is done on a [`tokio::sync::Notify`], under a timeout, never with a sleep.

pub mod gitlab;
pub mod proxy;
pub mod scaleway;
pub mod slack;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

pub use gitlab::{
    FakeGitLab, GlCall, GlCommit, GlFailure, GlHook, GlJob, GlOp, GlPipeline, GlProject, GlTarget,
    GlUser,
};
pub use proxy::Outage;
pub use scaleway::{
    FakeScaleway, ScwCall, ScwFailure, ScwIp, ScwOp, ScwServer, ScwTarget, ScwVolume,
};
pub use slack::{FakeSlack, SlackCall, SlackFailure};

/// A wait that ran out of time; says what was awaited and what was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimeout(pub String);

impl std::fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WaitTimeout {}

/// A poisoned lock still holds usable state: a panicking test must not hide the next one's
/// failure behind a `PoisonError`.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Calls `check` until it returns `Some`, each time `notify` is signalled, for at most `timeout`.
/// The waiter is registered before each check, so a signal between the check and the wait
/// still wakes it.
async fn wait_until<T>(
    notify: &Notify,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut notified = std::pin::pin!(notify.notified());
        notified.as_mut().enable();
        if let Some(found) = check() {
            return Some(found);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return check();
        }
    }
}
