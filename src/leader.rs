//! One replica at a time delivers the outbox and runs the periodic jobs (pruning, the fleet
//! watch, catch-up of missed pipelines and the GitLab hook check): the one
//! holding the store's lease (see `Store::try_lead`). The others stand by and take over
//! within about [`STANDBY_POLL`] of the lease being released — at once on a clean stop,
//! and as soon as the database notices a killed replica's connection is gone.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    catch_up,
    delivery::{Worker, WorkerConfig},
    state::AppState,
    store::{Engine, Lease, now_ms},
};

/// How often a standby replica asks for the lease.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);
/// How often the leader checks that it still holds the lease.
const LEASE_CHECK: Duration = Duration::from_secs(2);
/// How long a stop waits for the worker to finish the call it is in.
const WORKER_STOP_BOUND: Duration = Duration::from_secs(15);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs until `stop` turns true: stands by, leads while it holds the lease, and stands by
/// again if it loses it.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        match state.store.try_lead().await {
            Ok(Some(lease)) => {
                if lead(&state, lease, &mut stop).await == Term::Stopped {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "cannot reach the store to take the delivery lease; retrying"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Term {
    Stopped,
    LeaseLost,
}

async fn lead(state: &AppState, mut lease: Lease, stop: &mut watch::Receiver<bool>) -> Term {
    tracing::info!("this replica now delivers the outbox and runs the periodic jobs");
    state.metrics.leader.set(1);
    let settings = &state.settings;
    if state.store.engine() == Engine::Postgres {
        // The replica that led before may have posted to a channel a moment ago.
        tokio::time::sleep(settings.slack.min_interval).await;
    }
    let (term_tx, term_rx) = watch::channel(false);
    let worker = Worker::new(
        state.store.clone(),
        state.transport(),
        WorkerConfig {
            min_interval: settings.slack.min_interval,
            blocked_for_at_most: settings.retention,
            ..WorkerConfig::default()
        },
        state.metrics.clone(),
    )
    .watched(state.health.clone());
    let metrics = &state.metrics;
    let worker = tokio::spawn(metrics.caught(
        "delivery worker",
        worker.run(state.outbox.signal(), term_rx.clone()),
    ));
    let pruner =
        tokio::spawn(metrics.caught("pruning", prune_loop(state.clone(), term_rx.clone())));
    // A run cut short by the last leader's (or this process's) crash is reported, once.
    state.spawn(
        "interrupted reaps",
        crate::chat::reap::recover_interrupted(state.clone()),
    );
    let watch = state
        .watcher()
        .map(|w| tokio::spawn(metrics.caught("fleet watch", w.run(term_rx.clone()))));
    if let (None, Some(why)) = (&watch, &settings.watch.off) {
        tracing::info!(why = %why, "the fleet watch is off");
    }
    let catch_up = match &state.gitlab_api {
        Ok(_) => Some(tokio::spawn(
            metrics.caught("catch-up", catch_up::run(state.clone(), term_rx.clone())),
        )),
        Err(missing) => {
            tracing::info!(%missing, "catch-up of missed pipelines is off");
            None
        }
    };
    let term = loop {
        tokio::select! {
            _ = stop.changed() => break Term::Stopped,
            () = tokio::time::sleep(LEASE_CHECK) => {
                if let Err(e) = lease.check().await {
                    tracing::error!(error = format!("{e:#}"), "lost the delivery lease; standing by");
                    break Term::LeaseLost;
                }
            }
        }
    };
    let _ = term_tx.send(true);
    pruner.abort();
    if let Some(job) = catch_up {
        // Its writes are idempotent: a pass cut short is redone by the next leader.
        job.abort();
    }
    if let Some(watch) = watch {
        finish_watch(watch).await;
    }
    finish(worker).await;
    state.metrics.leader.set(0);
    drop(lease);
    term
}

async fn finish(worker: JoinHandle<()>) {
    if tokio::time::timeout(WORKER_STOP_BOUND, worker)
        .await
        .is_err()
    {
        tracing::warn!("delivery worker did not stop in time; pending messages resume later");
    }
}

/// The watch's poll in progress may be reaping: it may finish and record what it did, within
/// the same bound as the worker; then it is stopped (its next poll, on whichever replica
/// leads, starts from what was saved).
async fn finish_watch(watch: JoinHandle<()>) {
    let abort = watch.abort_handle();
    if tokio::time::timeout(WORKER_STOP_BOUND, watch)
        .await
        .is_err()
    {
        tracing::warn!("the fleet watch did not stop in time; stopping it");
        abort.abort();
    }
}

async fn prune_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        match state.store.prune(now_ms(), state.settings.retention).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned old store rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "pruning failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
