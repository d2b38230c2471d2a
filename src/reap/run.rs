//! The steps of a reap that `/arm reap` and the fleet watch share: list the fleet and plan
//! (the plan stored and audited), claim a stored plan, and run a claimed one (execute, mark it
//! done, audit, count). Who may confirm, and the fleet-wide reap lock
//! ([`crate::store::Store::lock_reaps`]), are the caller's: a click checks the clicker, the
//! watch acts on the team's `[watch] auto_reap`.

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    ClickOutcome, MachineIndex, Plan, PlanContext, ReapReport, ReapSettings, SlotReleaser,
    Unclaimed,
};
use crate::{
    fleet::{FleetContext, Server, list_zones},
    metrics::Metrics,
    store::{Store, now_ms, reap::Claim},
};

/// What a reap needs of the app, borrowed.
#[derive(Clone, Copy)]
pub struct Reaping<'a> {
    pub store: &'a Store,
    pub metrics: &'a Metrics,
    pub fleet: &'a FleetContext,
    pub releaser: Option<&'a SlotReleaser>,
    /// `[reap]`; the watch passes a copy whose grace is its `auto_reap_after_minutes`.
    pub settings: &'a ReapSettings,
    /// Cancelled when the service stops: a run stops between servers.
    pub halt: &'a CancellationToken,
}

impl Reaping<'_> {
    /// Lists every zone and plans over the servers found; the plan is stored for a later
    /// claim and audited as made by `actor`. The error is a sentence for the person asking.
    pub async fn list_and_plan(&self, actor: &str, now: DateTime<Utc>) -> Result<Plan, String> {
        let project = self.fleet.settings.project_id.as_deref();
        let mut servers: Vec<Server> = Vec::new();
        for (_, listed) in list_zones(self.fleet).await {
            servers.extend(listed.map_err(|e| e.user_message(project))?);
        }
        let plan = self.draft(&servers, now)?;
        self.save(&plan, actor).await?;
        Ok(plan)
    }

    /// Plans over `servers` (listed in the fleet's zones), reading the docker-machine store
    /// when one is configured. Nothing is stored.
    pub fn draft(&self, servers: &[Server], now: DateTime<Utc>) -> Result<Plan, String> {
        let index = match &self.settings.machine_store {
            Some(dir) => Some(MachineIndex::read(dir).map_err(|e| e.user_message())?),
            None => None,
        };
        let pctx = PlanContext::from(&self.fleet.settings);
        Ok(super::plan(
            servers,
            index.as_ref(),
            self.settings,
            &pctx,
            now,
        ))
    }

    /// Stores a plan so it can be claimed, audited as made by `actor`.
    pub async fn save(&self, plan: &Plan, actor: &str) -> Result<(), String> {
        let json =
            serde_json::to_string(plan).map_err(|_| "could not store the plan".to_string())?;
        let selected: Vec<&str> = plan.selected.iter().map(|s| s.server_id.as_str()).collect();
        let saved = self
            .store
            .save_plan(
                &plan.id,
                &json,
                actor,
                now_ms(),
                plan.expires_at.timestamp_millis(),
            )
            .await
            .and(
                self.store
                    .audit(
                        now_ms(),
                        actor,
                        "plan",
                        Some(&plan.id),
                        &json!({"selected": selected}),
                    )
                    .await,
            );
        if let Err(e) = saved {
            tracing::error!(error = format!("{e:#}"), "could not store a reap plan");
            return Err("The plan could not be saved; try again in a moment.".into());
        }
        Ok(())
    }

    /// Takes the stored plan for `actor`, so exactly one of several concurrent claims acts
    /// on it: to run it (`confirm`) or to cancel it.
    /// `channel`: where the plan was confirmed, so a run a crash cuts short is reported there.
    pub async fn claim(
        &self,
        plan_id: &str,
        actor: &str,
        confirm: bool,
        channel: Option<&str>,
    ) -> Result<Plan, Unclaimed> {
        let to = if confirm { "running" } else { "cancelled" };
        match self
            .store
            .claim_plan(plan_id, actor, to, channel, now_ms())
            .await
        {
            Ok(Claim::Claimed(json)) => {
                serde_json::from_str(&json).map_err(|_| Unclaimed::Unreadable)
            }
            Ok(Claim::Expired) => Err(Unclaimed::Expired),
            Ok(Claim::NotFound) => Err(Unclaimed::NotFound),
            Ok(Claim::AlreadyHandled(state)) => Err(Unclaimed::AlreadyHandled(state)),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not claim a reap plan");
                Err(Unclaimed::StoreUnavailable)
            }
        }
    }

    /// Carries out a claimed plan and records it: the plan marked done, an `executed` audit
    /// entry by `actor` with every server's outcome, and the metrics. Call it holding the reap
    /// lock.
    pub async fn run<F>(&self, plan: &Plan, actor: &str, now: F) -> ReapReport
    where
        F: Fn() -> DateTime<Utc> + Sync,
    {
        let report = super::execute(
            plan,
            &self.fleet.scaleway,
            self.releaser,
            self.settings,
            &PlanContext::from(&self.fleet.settings),
            now,
            self.halt,
        )
        .await;
        if let Err(e) = self.store.finish_plan(&plan.id).await {
            tracing::error!(error = format!("{e:#}"), "could not mark a reap plan done");
        }
        let counts = report.counts();
        let detail = json!({
            "results": report.results.iter().map(|r| json!({"server": r.server_id, "outcome": format!("{:?}", r.outcome), "slot": format!("{:?}", r.slot)})).collect::<Vec<_>>(),
            "stopped_early": report.stopped_early,
        });
        self.audit(actor, "executed", &plan.id, detail).await;
        self.metrics
            .servers_removed
            .inc_by(counts.servers_removed as u64);
        let outcome = if report.stopped_early.is_some() || counts.failed > 0 {
            "partial"
        } else {
            "ok"
        };
        self.metrics.reap(outcome);
        tracing::info!(plan = %plan.id, actor = %actor, removed = counts.servers_removed, "reap finished");
        report
    }

    /// Cancels a claimed plan: audited and counted.
    pub async fn cancelled(&self, plan: Plan, actor: &str, via: &str) -> ClickOutcome {
        self.audit(actor, "cancel", &plan.id, json!({"via": via}))
            .await;
        self.metrics.reap("cancelled");
        ClickOutcome::Cancelled {
            plan,
            user: actor.to_owned(),
        }
    }

    pub async fn audit(&self, actor: &str, action: &str, plan_id: &str, detail: serde_json::Value) {
        audit(self.store, actor, action, plan_id, detail).await;
    }
}

/// One audit entry about a plan. Best effort: a store hiccup must not undo a reap that
/// happened.
pub async fn audit(
    store: &Store,
    actor: &str,
    action: &str,
    plan_id: &str,
    detail: serde_json::Value,
) {
    if let Err(e) = store
        .audit(now_ms(), actor, action, Some(plan_id), &detail)
        .await
    {
        tracing::error!(
            error = format!("{e:#}"),
            action,
            "could not write the audit log"
        );
    }
}
