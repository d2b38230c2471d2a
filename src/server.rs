//! Running the service: the listener, the leader task (delivery worker and periodic jobs on
//! the replica that holds the lease), graceful shutdown.

use std::{future::Future, time::Duration};

use anyhow::Context;
use tokio::sync::watch;

use crate::{delivery::Health, http, leader, state::AppState};

/// Listens on `settings.listen` and serves; see [`run_on`].
pub async fn run(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = state.settings.listen;
    let listener = http::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    run_on(listener, state, shutdown).await
}

/// Serves on `listener` (and `/metrics` on `ARMBOT_METRICS_LISTEN`, bound here, when set);
/// see [`run_on_both`].
pub async fn run_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics_listener = match state.settings.metrics_listen {
        Some(addr) => Some(
            http::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (ARMBOT_METRICS_LISTEN)"))?,
        ),
        None => None,
    };
    run_on_both(listener, metrics_listener, state, shutdown).await
}

/// Serves on `listener`, and `/metrics` on `metrics_listener` if given (`/metrics` is left out
/// of `listener`'s routes when `ARMBOT_METRICS_LISTEN` is set), until `shutdown` resolves;
/// then stops accepting on both, closes idle connections, gives requests in progress
/// `[http] shutdown_timeout_secs` to finish and closes the rest, lets the worker finish its
/// current call, and returns.
pub async fn run_on_both(
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
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
                tracing::info!(bot_user = %me.user_id, team = %me.team_id, "connected to Slack");
                let _ = state.identity.set(me);
            }
            Err(e) => {
                tracing::warn!(error = %e, "auth.test failed; bot messages are still ignored by bot_id")
            }
        }
    }
    let bot_team = state.identity.get().map(|me| me.team_id.as_str());
    if settings.slack.signing_secret.is_some() && settings.slack.team.expected(bot_team).is_none() {
        tracing::warn!(
            "Slack requests from every workspace are served: SLACK_TEAM_ID is `any`, or the \
             bot's own workspace is not known (no bot token, or auth.test failed)"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let leader = tokio::spawn(leader::run(state.clone(), stop_rx));

    let metrics = state.metrics.clone();
    // One shutdown for both listeners, also when the main one fails.
    let (down_tx, down_rx) = watch::channel(false);
    let metrics_server = match metrics_listener {
        Some(l) => {
            let addr = l
                .local_addr()
                .context("the metrics listener has no address")?;
            tracing::info!(listen = %addr, "metrics listening");
            let mut down = down_rx.clone();
            Some(tokio::spawn(http::serve(
                l,
                http::metrics_router(state.clone()),
                settings.http.clone(),
                metrics.clone(),
                async move {
                    let _ = down.wait_for(|d| *d).await;
                },
            )))
        }
        None => None,
    };
    let app = http::router(state.clone());
    let down = &down_tx;
    // A dead or stalled ingest writer or worker stops the service too, so that its supervisor
    // restarts it rather than letting it limp on.
    let trouble = std::sync::Mutex::new(None::<String>);
    let found = &trouble;
    let health = state.health.clone();
    let served = http::serve(listener, app, settings.http.clone(), metrics, async move {
        tokio::select! {
            () = shutdown => {}
            why = supervise(&health) => {
                tracing::error!(why = %why, "stopping: {why}; the supervisor should start the service again");
                *found.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
            }
        }
        let _ = down.send(true);
    })
    .await;
    let _ = down_tx.send(true);
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    served.context("server error")?;

    // Commands and clicks in progress finish; a running reap finishes the servers it is on and
    // starts no other (the rest is reported as not attempted).
    state.shutdown.cancel();
    state.tasks.close();
    if tokio::time::timeout(TASKS_STOP_BOUND, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = state.tasks.len(),
            "background work did not finish in time; a reap cut short is reported at the next start"
        );
    }
    let _ = stop_tx.send(true);
    let _ = leader.await;
    tracing::info!("stopped");
    match trouble
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(why) => Err(anyhow::anyhow!("stopped because {why}")),
        None => Ok(()),
    }
}

/// How long a stop waits for commands, clicks and a running reap to finish.
const TASKS_STOP_BOUND: Duration = Duration::from_secs(15);
/// How often the ingest writer and the worker are checked.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

/// Resolves with the reason when the ingest writer or the worker dies or stalls.
async fn supervise(health: &Health) -> String {
    loop {
        tokio::time::sleep(SUPERVISE_EVERY).await;
        if let Some(why) = health.trouble() {
            return why;
        }
    }
}
