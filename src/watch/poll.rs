//! One poll of the fleet watch, and the loop the leading replica runs: list the fleet and
//! the runner's metrics, reap if the team allows it, decide, and save the decision with its
//! messages in one transaction.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::{
    incident::{self, AutoReap, Incident, Look, Memory},
    render::{ACTOR, View},
    settings::WatchSettings,
};
use crate::{
    delivery::Outbox,
    fleet::{FleetContext, ScwError, Server, StatusReport, list_zones},
    metrics::Metrics,
    reap::{ReapSettings, Reaping, SlotReleaser},
    store::{
        Store, now_ms,
        watch::{WatchRecord, WatchSaved, WatchWrite},
    },
};

/// The watch's name in the store.
pub const WATCH: &str = "fleet";

/// Unix seconds, as `AppState::clock`.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Everything a poll needs, cloned from the app once (see `AppState::watcher`).
#[derive(Clone)]
pub struct Watcher {
    pub store: Store,
    pub outbox: Outbox,
    pub metrics: Metrics,
    pub fleet: FleetContext,
    pub releaser: Option<SlotReleaser>,
    /// `[reap]`: the auto-reap plans and runs with it.
    pub reap: ReapSettings,
    pub settings: WatchSettings,
    pub clock: Clock,
    /// Cancelled when the service stops: an auto-reap stops between servers.
    pub halt: CancellationToken,
}

/// What one poll did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// `ok`, `scaleway_error` (some zone could not be listed), `store_error` or `conflict`
    /// (another poll saved first): the label of `armbot_watch_polls_total`.
    pub outcome: &'static str,
    /// Builders stuck after the poll.
    pub stuck: usize,
    /// Messages queued.
    pub queued: usize,
    /// Whether an incident opened.
    pub opened: bool,
    /// Servers the auto-reap removed.
    pub reaped: usize,
}

/// Listed zones, as `list_zones` gives them.
type Zones = Vec<(String, Result<Vec<Server>, ScwError>)>;

impl Watcher {
    /// Polls every interval until `stop` turns true. A poll is never cut short by the
    /// interval; the caller bounds how long a stop waits for one.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            channel = %self.settings.channel,
            interval_secs = self.settings.interval.as_secs(),
            auto_reap = self.settings.auto_reap,
            "fleet watch started"
        );
        loop {
            if *stop.borrow() {
                return;
            }
            let report = self.poll_once().await;
            tracing::debug!(?report, "fleet watch poll");
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One poll at the clock's time: look, maybe reap, decide, save. Never fails: what went
    /// wrong is logged and counted.
    pub async fn poll_once(&self) -> PollReport {
        let report = self.poll().await;
        self.metrics.watch_poll(report.outcome);
        report
    }

    async fn poll(&self) -> PollReport {
        let now = (self.clock)();
        let at = to_datetime(now);
        let mut record = match self.store.watch_load(WATCH, now_ms()).await {
            Ok(r) => r,
            Err(e) => {
                return store_error("could not read the fleet watch's memory", format!("{e:#}"));
            }
        };
        let runner = async {
            match &self.fleet.runner {
                Some(client) => Some(client.fetch().await),
                None => None,
            }
        };
        let (zones, runner) = futures::join!(list_zones(&self.fleet), runner);
        let status = StatusReport::build(zones.clone(), &self.fleet.settings, runner, None, at);
        let memory = memory_of(&record);
        let look = incident::look(&status, &memory, now);
        let reaped = self.auto_reap(&zones, &look, &memory, now).await;
        let view = View {
            now,
            grace_minutes: u64::from(self.fleet.settings.reap_grace_minutes),
            interval_secs: self.settings.interval.as_secs(),
            auto_reap_after: self.settings.auto_reap.then(|| self.auto_reap_after()),
            project: self.fleet.settings.project_id.clone(),
            cap: status.cap.clone(),
            shown_without: status.shown_without.clone(),
        };
        // A poll of another replica may have saved meanwhile (a change of leader): decide
        // again on its memory, so a reap that happened is still told.
        for attempt in 0..2 {
            let memory = memory_of(&record);
            let look = incident::look(&status, &memory, now);
            let d = incident::decide(&memory, &look, reaped.as_ref(), &view);
            let json = match serde_json::to_string(&d.memory) {
                Ok(j) => j,
                Err(e) => {
                    return store_error(
                        "could not write the fleet watch's memory",
                        format!("{e:#}"),
                    );
                }
            };
            let write = WatchWrite {
                channel: &self.settings.channel,
                memory: &json,
                open: d.open.as_ref(),
                replies: &d.replies,
                update_root: d.update_root.as_ref(),
                close: d.close,
                warn: d.warn.as_ref(),
                recovered: d.recovered.as_ref(),
            };
            match self
                .store
                .watch_save(WATCH, record.version, &write, now_ms())
                .await
            {
                Ok(WatchSaved::Saved { opened, queued }) => {
                    if queued > 0 {
                        self.outbox.wake();
                    }
                    if let Some(id) = opened {
                        self.metrics.watch_incidents.inc();
                        tracing::warn!(incident = id, stuck = d.stuck, "fleet incident opened");
                    }
                    if d.close {
                        tracing::info!("fleet incident closed: no builder is stuck");
                    }
                    self.metrics
                        .fleet_stuck_builders
                        .set(i64::try_from(d.stuck).unwrap_or(i64::MAX));
                    return PollReport {
                        outcome: if look.failed.is_empty() {
                            "ok"
                        } else {
                            "scaleway_error"
                        },
                        stuck: d.stuck,
                        queued,
                        opened: opened.is_some(),
                        reaped: reaped
                            .as_ref()
                            .map_or(0, |r| r.report.counts().servers_removed),
                    };
                }
                Ok(WatchSaved::Conflict) if attempt == 0 => {
                    record = match self.store.watch_load(WATCH, now_ms()).await {
                        Ok(r) => r,
                        Err(e) => {
                            return store_error(
                                "could not read the fleet watch's memory",
                                format!("{e:#}"),
                            );
                        }
                    };
                }
                Ok(WatchSaved::Conflict) => break,
                Err(e) => {
                    return store_error(
                        "could not save the fleet watch's decision",
                        format!("{e:#}"),
                    );
                }
            }
        }
        tracing::info!("another replica's fleet watch saved first; this poll says nothing");
        PollReport {
            outcome: "conflict",
            ..PollReport::default()
        }
    }

    /// `auto_reap_after_minutes`, never below the reap's own grace period.
    fn auto_reap_after(&self) -> u64 {
        self.settings
            .auto_reap_after_minutes
            .max(self.reap.grace_minutes)
    }

    /// With `auto_reap`, removes the builders stuck past `auto_reap_after_minutes` through the
    /// `/arm reap` steps: planned (every rule of reap applies, within `max_per_run`), stored,
    /// claimed and run under the fleet-wide reap lock, audited as the "fleet watch".
    async fn auto_reap(
        &self,
        zones: &Zones,
        look: &Look,
        memory: &Memory,
        now: i64,
    ) -> Option<AutoReap> {
        if !self.settings.auto_reap {
            return None;
        }
        let after = self.auto_reap_after();
        let no_retry = memory.incident.as_ref().map(|i| &i.not_retried);
        let tried = |id: &String| no_retry.is_some_and(|n| n.contains(id));
        let after_secs = i64::try_from(after.saturating_mul(60)).unwrap_or(i64::MAX);
        let due: Vec<&str> = look
            .stuck
            .iter()
            .filter(|s| !s.protected && now - s.since >= after_secs && !tried(&s.id))
            .map(|s| s.id.as_str())
            .collect();
        if due.is_empty() {
            return None;
        }
        // Only builders the watch reports as stuck: the thread names what it removes.
        let servers: Vec<Server> = zones
            .iter()
            .filter_map(|(_, listed)| listed.as_ref().ok())
            .flatten()
            .filter(|s| due.contains(&s.id.as_str()))
            .cloned()
            .collect();
        let mut settings = self.reap.clone();
        settings.grace_minutes = after;
        let reaping = Reaping {
            store: &self.store,
            metrics: &self.metrics,
            fleet: &self.fleet,
            releaser: self.releaser.as_ref(),
            settings: &settings,
            halt: &self.halt,
        };
        let plan = match reaping.draft(&servers, to_datetime(now)) {
            Ok(plan) if !plan.selected.is_empty() => plan,
            Ok(_) => return None,
            Err(why) => {
                tracing::warn!(why, "the fleet watch could not plan a reap");
                return None;
            }
        };
        // Never while a person's reap runs, on any replica.
        let _lock = match self.store.lock_reaps().await {
            Ok(lock) => lock,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not take the reap lock");
                return None;
            }
        };
        if let Err(why) = reaping.save(&plan, ACTOR).await {
            tracing::warn!(why, "the fleet watch could not store its reap plan");
            return None;
        }
        let plan = match reaping
            .claim(&plan.id, ACTOR, true, Some(&self.settings.channel))
            .await
        {
            Ok(plan) => plan,
            Err(why) => {
                tracing::warn!(?why, "the fleet watch could not claim its reap plan");
                return None;
            }
        };
        reaping
            .audit(
                ACTOR,
                "confirm",
                &plan.id,
                json!({"via": "[watch] auto_reap", "after_minutes": after}),
            )
            .await;
        let clock = self.clock.clone();
        let report = reaping
            .run(&plan, ACTOR, move || to_datetime(clock()))
            .await;
        Some(AutoReap { plan, report })
    }
}

/// The memory as saved, held to what the store says is open: the store is the truth about
/// the incident and the warning (a memory that cannot be read starts afresh).
fn memory_of(record: &WatchRecord) -> Memory {
    let mut memory: Memory = serde_json::from_str(&record.memory).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the fleet watch's memory could not be read; starting afresh");
        Memory::default()
    });
    match (&record.incident, &memory.incident) {
        (Some(open), None) => {
            memory.incident = Some(Incident {
                opened_at: open.opened_at / 1000,
                ..Incident::default()
            });
        }
        (None, Some(_)) => memory.incident = None,
        _ => {}
    }
    memory.trouble.warned = record.warning.is_some();
    memory
}

fn to_datetime(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

fn store_error(what: &str, error: String) -> PollReport {
    tracing::error!(error, "{what}");
    PollReport {
        outcome: "store_error",
        ..PollReport::default()
    }
}
