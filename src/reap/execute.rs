//! Carry out a confirmed [`Plan`]: re-check each server, delete it, its volumes and flexible
//! IPs, then free its runner slot. No Slack and no store: the caller renders and records the
//! [`ReapReport`].

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::escape;
use super::machines::SlotReleaser;
use super::plan::{Assessment, Plan, PlanContext, PlannedRemoval, PlannedVolume, assess};
use super::settings::ReapSettings;
use crate::fleet::{Deleted, ScalewayClient, ScwError, VolumeType};
use crate::slack::blocks::time;

const NOT_ATTEMPTED: &str = "not attempted: the run stopped early";

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapReport {
    pub plan_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// In the plan's order.
    pub results: Vec<ServerResult>,
    /// Why the run stopped before every server was tried (mrkdwn).
    pub stopped_early: Option<String>,
}

/// What happened to one planned server and what went with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerResult {
    pub server_id: String,
    pub name: String,
    pub zone: String,
    pub commercial_type: String,
    pub machine: Option<String>,
    pub outcome: ServerOutcome,
    /// Volumes, then flexible IPs; empty unless the server is gone.
    pub resources: Vec<ResourceResult>,
    pub slot: SlotOutcome,
}

/// Reasons are mrkdwn with values escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ServerOutcome {
    Removed,
    /// Scaleway no longer had it (someone or something else deleted it).
    AlreadyGone,
    /// It no longer passes the rules the plan was made with.
    Skipped {
        reason: String,
    },
    Failed {
        reason: String,
    },
    /// The run stopped before reaching it.
    NotAttempted {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceResult {
    pub kind: ResourceKind,
    pub id: String,
    pub outcome: ResourceOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResourceKind {
    Volume { volume_type: VolumeType },
    FlexibleIp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ResourceOutcome {
    Removed,
    AlreadyGone,
    Failed { reason: String },
    LeftAlone { reason: String },
}

impl ResourceOutcome {
    /// Gone as planned, by this run or before it.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            ResourceOutcome::Removed | ResourceOutcome::AlreadyGone
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "slot", rename_all = "snake_case")]
pub enum SlotOutcome {
    /// The release command succeeded.
    Freed,
    Failed {
        reason: String,
    },
    /// No docker-machine store configured: the bot cannot free the slot (the report says how).
    NoStore,
    /// The store has no machine for this server, so it holds no runner slot.
    NoMachine,
    /// The server is still there (or its fate unknown), so its machine is left to the runner.
    NotAttempted,
}

/// The numbers of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapCounts {
    pub servers_removed: usize,
    pub already_gone: usize,
    pub volumes_removed: usize,
    pub ips_removed: usize,
    pub slots_freed: usize,
    /// Servers with any failure: the server itself, a volume, an IP or the slot.
    pub failed: usize,
    pub skipped: usize,
    pub not_attempted: usize,
}

impl ServerResult {
    fn new(planned: &PlannedRemoval, outcome: ServerOutcome) -> Self {
        ServerResult {
            server_id: planned.server_id.clone(),
            name: planned.name.clone(),
            zone: planned.zone.clone(),
            commercial_type: planned.commercial_type.clone(),
            machine: planned.machine.clone(),
            outcome,
            resources: Vec::new(),
            slot: SlotOutcome::NotAttempted,
        }
    }

    pub fn has_failure(&self) -> bool {
        matches!(self.outcome, ServerOutcome::Failed { .. })
            || matches!(self.slot, SlotOutcome::Failed { .. })
            || self
                .resources
                .iter()
                .any(|r| matches!(r.outcome, ResourceOutcome::Failed { .. }))
    }
}

impl ReapReport {
    pub fn counts(&self) -> ReapCounts {
        let mut c = ReapCounts::default();
        for r in &self.results {
            match r.outcome {
                ServerOutcome::Removed => c.servers_removed += 1,
                ServerOutcome::AlreadyGone => c.already_gone += 1,
                ServerOutcome::Skipped { .. } => c.skipped += 1,
                ServerOutcome::NotAttempted { .. } => c.not_attempted += 1,
                ServerOutcome::Failed { .. } => {}
            }
            for res in r.resources.iter().filter(|res| res.outcome.is_done()) {
                match res.kind {
                    ResourceKind::Volume { .. } => c.volumes_removed += 1,
                    ResourceKind::FlexibleIp => c.ips_removed += 1,
                }
            }
            if r.slot == SlotOutcome::Freed {
                c.slots_freed += 1;
            }
            if r.has_failure() {
                c.failed += 1;
            }
        }
        c
    }

    /// Servers this run deleted, per commercial type: the instance quota given back.
    pub fn quota_freed(&self) -> BTreeMap<String, usize> {
        let mut freed = BTreeMap::new();
        for r in &self.results {
            if r.outcome == ServerOutcome::Removed {
                *freed.entry(r.commercial_type.clone()).or_insert(0) += 1;
            }
        }
        freed
    }

    /// Whether any server's slot was left because no store is configured.
    pub fn no_store(&self) -> bool {
        self.results.iter().any(|r| r.slot == SlotOutcome::NoStore)
    }
}

/// Carry out `plan`, `settings.concurrency` servers at a time. Each server is re-read and held
/// to the planner's rules first (with `now()` as the clock); a permission or key error stops
/// the run, and so does `halt` (the service stopping): servers not yet started are left alone,
/// those in progress are finished. Never fails: every outcome is reported.
#[tracing::instrument(name = "reap", skip_all, fields(plan_id = %plan.id))]
pub async fn execute<F>(
    plan: &Plan,
    client: &ScalewayClient,
    releaser: Option<&SlotReleaser>,
    settings: &ReapSettings,
    ctx: &PlanContext,
    now: F,
    halt: &CancellationToken,
) -> ReapReport
where
    F: Fn() -> DateTime<Utc> + Sync,
{
    let started_at = now();
    let run = Run {
        client,
        releaser,
        settings,
        ctx,
        now: &now,
        stop: OnceLock::new(),
        halt,
    };
    if plan.is_expired(started_at) {
        let _ = run.stop.set(format!(
            "This plan expired at {}, so nothing was done: run `/arm reap` again for a fresh one.",
            time(plan.expires_at)
        ));
    }
    // The cap is enforced here too: settings may have shrunk since the plan was made.
    let (within, over) = plan
        .selected
        .split_at(plan.selected.len().min(settings.max_per_run));
    // Made up front rather than in a `map` on the stream: a closure there would be generic
    // over the item's lifetime, and the whole run would no longer be `Send`. Unpolled futures
    // do nothing, so `buffered` still bounds how many run at once, in the plan's order.
    let runs: Vec<_> = within.iter().map(|planned| run.reap_one(planned)).collect();
    let mut results: Vec<ServerResult> = futures::stream::iter(runs)
        .buffered(settings.concurrency.max(1))
        .collect()
        .await;
    results.extend(over.iter().map(|planned| {
        let reason = format!("over the per-run cap of {}", settings.max_per_run);
        ServerResult::new(planned, ServerOutcome::NotAttempted { reason })
    }));
    ReapReport {
        plan_id: plan.id.clone(),
        started_at,
        finished_at: now(),
        results,
        stopped_early: run.stop.into_inner(),
    }
}

struct Run<'a, F> {
    client: &'a ScalewayClient,
    releaser: Option<&'a SlotReleaser>,
    settings: &'a ReapSettings,
    ctx: &'a PlanContext,
    now: &'a F,
    /// Set once, by the first error that dooms every later call, or by plan expiry.
    stop: OnceLock<String>,
    /// The service is stopping: start no further server.
    halt: &'a CancellationToken,
}

impl<F> Run<'_, F>
where
    F: Fn() -> DateTime<Utc> + Sync,
{
    async fn reap_one(&self, planned: &PlannedRemoval) -> ServerResult {
        let result = self.reap_server(planned).await;
        tracing::info!(
            server_id = %planned.server_id,
            zone = %planned.zone,
            outcome = ?result.outcome,
            slot = ?result.slot,
            "reaped server"
        );
        result
    }

    async fn reap_server(&self, planned: &PlannedRemoval) -> ServerResult {
        let not_attempted = || ServerOutcome::NotAttempted {
            reason: NOT_ATTEMPTED.to_owned(),
        };
        if self.halt.is_cancelled() {
            let _ = self.stop.set(
                "The bot was stopping, so it finished the servers in progress and left the \
                 rest: run `/arm reap` again for them."
                    .to_owned(),
            );
        }
        if self.stop.get().is_some() {
            return ServerResult::new(planned, not_attempted());
        }
        let name = escape(&planned.name);
        let (zone, id) = (planned.zone.as_str(), planned.server_id.as_str());

        let fresh = match self
            .scaleway(&format!("read server `{name}`"), || {
                self.client.get_server(zone, id)
            })
            .await
        {
            Ok(fresh) => fresh,
            Err(reason) => return ServerResult::new(planned, ServerOutcome::Failed { reason }),
        };
        let outcome = match fresh {
            None => ServerOutcome::AlreadyGone,
            Some(server) => {
                if let Some(reason) = self.changed(planned, &server) {
                    return ServerResult::new(planned, ServerOutcome::Skipped { reason });
                }
                // Another server's key error may have stopped the run while this one was read.
                if self.stop.get().is_some() {
                    return ServerResult::new(planned, not_attempted());
                }
                match self
                    .scaleway(&format!("delete server `{name}`"), || {
                        self.client.delete_server(zone, id)
                    })
                    .await
                {
                    Ok(Deleted::Yes) => ServerOutcome::Removed,
                    Ok(Deleted::AlreadyGone) => ServerOutcome::AlreadyGone,
                    Err(reason) => {
                        return ServerResult::new(planned, ServerOutcome::Failed { reason });
                    }
                }
            }
        };
        let mut result = ServerResult::new(planned, outcome);
        for volume in &planned.volumes {
            result
                .resources
                .push(self.delete_volume(zone, volume).await);
        }
        for ip in &planned.flexible_ips {
            result.resources.push(self.delete_ip(zone, ip).await);
        }
        // After the cloud resources: `rm -f` drops the store entry, the only link from the
        // machine to its server.
        result.slot = self.free_slot(planned.machine.as_deref()).await;
        result
    }

    /// Why the server may no longer be removed, judged by the planner's own rules, or `None`.
    fn changed(&self, planned: &PlannedRemoval, server: &crate::fleet::Server) -> Option<String> {
        let machine = planned.machine.as_deref();
        match assess(server, machine, self.settings, self.ctx, (self.now)()) {
            Assessment::Reapable { .. } => {}
            Assessment::Busy => {
                return Some(format!(
                    "started again since the plan (now `{}`)",
                    escape(server.state.as_str())
                ));
            }
            Assessment::Unrelated => {
                return Some("no longer matches the fleet filter".to_owned());
            }
            Assessment::LeftAlone(reason) => {
                return Some(format!("changed since the plan: {reason}"));
            }
        }
        // What was confirmed is what gets deleted: a volume or IP attached since is not ours.
        let now = PlannedRemoval::from_server(server, TimeDelta::zero(), machine);
        let ids = |r: &PlannedRemoval| {
            let mut volumes: Vec<String> = r.volumes.iter().map(|v| v.id.clone()).collect();
            let mut ips = r.flexible_ips.clone();
            volumes.sort();
            ips.sort();
            (volumes, ips)
        };
        if ids(&now) != ids(planned) {
            return Some("its volumes or flexible IPs changed since the plan".to_owned());
        }
        None
    }

    async fn delete_volume(&self, zone: &str, volume: &PlannedVolume) -> ResourceResult {
        let id = volume.id.as_str();
        let action = format!("delete volume `{}`", escape(id));
        let outcome = if self.stop.get().is_some() {
            ResourceOutcome::LeftAlone {
                reason: NOT_ATTEMPTED.to_owned(),
            }
        } else {
            match &volume.volume_type {
                VolumeType::LSsd | VolumeType::BSsd | VolumeType::Scratch => deleted(
                    self.scaleway(&action, || self.client.delete_volume(zone, id))
                        .await,
                ),
                VolumeType::SbsVolume => deleted(
                    self.scaleway(&action, || self.client.delete_block_volume(zone, id))
                        .await,
                ),
                VolumeType::Other(kind) => ResourceOutcome::LeftAlone {
                    reason: format!(
                        "volume type `{}` is unknown to reap: delete it by hand",
                        escape(kind)
                    ),
                },
            }
        };
        ResourceResult {
            kind: ResourceKind::Volume {
                volume_type: volume.volume_type.clone(),
            },
            id: id.to_owned(),
            outcome,
        }
    }

    async fn delete_ip(&self, zone: &str, id: &str) -> ResourceResult {
        let outcome = if self.stop.get().is_some() {
            ResourceOutcome::LeftAlone {
                reason: NOT_ATTEMPTED.to_owned(),
            }
        } else {
            let action = format!("delete flexible IP `{}`", escape(id));
            deleted(
                self.scaleway(&action, || self.client.delete_ip(zone, id))
                    .await,
            )
        };
        ResourceResult {
            kind: ResourceKind::FlexibleIp,
            id: id.to_owned(),
            outcome,
        }
    }

    async fn free_slot(&self, machine: Option<&str>) -> SlotOutcome {
        let Some(releaser) = self.releaser else {
            return SlotOutcome::NoStore;
        };
        let Some(machine) = machine else {
            return SlotOutcome::NoMachine;
        };
        match releaser.release(machine).await {
            Ok(()) => SlotOutcome::Freed,
            Err(e) => {
                tracing::warn!(machine, error = %e, "freeing the runner slot failed");
                SlotOutcome::Failed {
                    reason: e.user_message(),
                }
            }
        }
    }

    /// One Scaleway call, retried while the resource is in a transient state. The error is a
    /// sentence for the report; a key or permission error also stops the run, since every
    /// later call would fail the same way.
    async fn scaleway<T, Fut>(&self, action: &str, call: impl Fn() -> Fut) -> Result<T, String>
    where
        Fut: Future<Output = Result<T, ScwError>>,
    {
        let attempts = self.settings.transient_attempts.max(1);
        let mut delay = Duration::from_millis(self.settings.transient_delay_ms);
        let mut attempt = 1;
        let result = loop {
            match call().await {
                Err(ScwError::TransientState { .. }) if attempt < attempts => {
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                other => break other,
            }
        };
        result.map_err(|e| {
            let sentence = e.user_message(self.ctx.project.as_deref());
            if matches!(
                e,
                ScwError::PermissionDenied { .. }
                    | ScwError::InvalidKey { .. }
                    | ScwError::BadBaseUrl
            ) {
                let _ = self.stop.set(format!(
                    "Scaleway refused to {action}: {sentence} The run stopped: servers not yet \
                     started were left alone."
                ));
            }
            sentence
        })
    }
}

fn deleted(result: Result<Deleted, String>) -> ResourceOutcome {
    match result {
        Ok(Deleted::Yes) => ResourceOutcome::Removed,
        Ok(Deleted::AlreadyGone) => ResourceOutcome::AlreadyGone,
        Err(reason) => ResourceOutcome::Failed { reason },
    }
}
