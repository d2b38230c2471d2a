//! Running the service: listener, delivery worker, pruning, graceful shutdown.

use std::{future::Future, time::Duration};

use anyhow::Context;
use tokio::sync::watch;

use crate::{
    delivery::{Worker, WorkerConfig},
    http,
    state::AppState,
    store::now_ms,
};

/// How long shutdown waits for the worker to finish the call it is in.
const WORKER_STOP_BOUND: Duration = Duration::from_secs(15);

/// Listens on `settings.listen` and serves; see [`run_on`].
pub async fn run(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = state.settings.listen;
    let listener = http::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    run_on(listener, state, shutdown).await
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, closes idle
/// connections, gives requests in progress `[http] shutdown_timeout_secs` to finish and closes
/// the rest, lets the worker finish its current call, and returns.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = state.settings.clone();
    if settings.console_mode() {
        tracing::warn!(
            "console mode: SLACK_BOT_TOKEN is not set, so messages are printed to stdout instead of posted"
        );
    }
    let listen = listener
        .local_addr()
        .context("the listener has no address")?;
    tracing::info!(listen = %listen, "armbot listening");

    if let Some(client) = &state.slack {
        // Learn who we are so our own messages are never answered.
        match client.auth_test().await {
            Ok(me) => {
                tracing::info!(bot_user = %me.user_id, "connected to Slack");
                let _ = state.identity.set(me);
            }
            Err(e) => {
                tracing::warn!(error = %e, "auth.test failed; bot messages are still ignored by bot_id")
            }
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_config = WorkerConfig {
        min_interval: settings.slack.min_interval,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(
        state.store.clone(),
        state.transport(),
        worker_config,
        state.metrics.clone(),
    );
    let worker_task = tokio::spawn(worker.run(state.outbox.signal(), stop_rx.clone()));
    let pruner = tokio::spawn(prune_loop(state.clone(), stop_rx));

    let metrics = state.metrics.clone();
    let app = http::router(state);
    http::serve(listener, app, settings.http.clone(), metrics, shutdown)
        .await
        .context("server error")?;

    let _ = stop_tx.send(true);
    pruner.abort();
    if tokio::time::timeout(WORKER_STOP_BOUND, worker_task)
        .await
        .is_err()
    {
        tracing::warn!(
            "delivery worker did not stop in time; pending messages resume on the next start"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

async fn prune_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        match state.store.prune(now_ms(), state.settings.retention).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned old store rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "pruning failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
