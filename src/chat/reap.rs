//! `/arm reap`: a dry-run plan with Confirm/Cancel buttons; the reap itself runs only on a
//! confirmation by an allowed user, once, one at a time. A click runs in steps — authorize,
//! claim, execute, audit — and its [`ClickOutcome`] is rendered by `reap::render`.

use std::time::Instant;

use serde_json::json;

use super::{Responder, SlashRequest};
use crate::{
    fleet::FleetContext,
    reap::{self, ClickOutcome, MachineIndex, Plan, PlanContext, Unclaimed},
    slack::{Message, Reply},
    state::AppState,
    store::{NewMessage, OutboxKind, now_ms, reap::Claim},
};

/// Anyone may ask for a plan: it changes nothing.
pub fn start(app: &AppState, req: &SlashRequest) -> Reply {
    let started = Instant::now();
    let ctx = match &app.fleet {
        Ok(c) => c.clone(),
        Err(missing) => {
            app.metrics
                .command("reap", "not_configured", started.elapsed().as_secs_f64());
            return Reply::ephemeral(missing.to_string());
        }
    };
    let (app, req) = (app.clone(), req.clone());
    tokio::spawn(async move {
        let responder = Responder::new(app.clone(), &req.response_url, &req.user_id);
        let reply = match plan(&app, &ctx, &req.user_id).await {
            Ok(plan) => Reply::InChannel(Message::new(
                reap::plan_text(&plan),
                reap::plan_blocks(&plan, &plan.id),
            )),
            Err(sentence) => Reply::ephemeral(sentence),
        };
        app.metrics
            .command("reap", "planned", started.elapsed().as_secs_f64());
        responder.send(reply).await;
    });
    Reply::ephemeral(
        "Planning which stuck ARM builders could be removed… nothing is deleted without a confirmation.",
    )
}

/// Lists the fleet, plans, and stores the plan so a click can claim it.
async fn plan(app: &AppState, ctx: &FleetContext, user: &str) -> Result<Plan, String> {
    let project = ctx.settings.project_id.as_deref();
    // Zones are listed at once, as for `/arm status`.
    let lists = futures::future::try_join_all(
        ctx.settings
            .zones
            .iter()
            .map(|zone| ctx.scaleway.list_servers(zone, project)),
    )
    .await
    .map_err(|e| e.user_message(project))?;
    let servers: Vec<_> = lists.into_iter().flatten().collect();
    let index = match &app.settings.reap.machine_store {
        Some(dir) => Some(MachineIndex::read(dir).map_err(|e| e.user_message())?),
        None => None,
    };
    let pctx = PlanContext::from(&ctx.settings);
    let plan = reap::plan(
        &servers,
        index.as_ref(),
        &app.settings.reap,
        &pctx,
        chrono::Utc::now(),
    );
    let json = serde_json::to_string(&plan).map_err(|_| "could not store the plan".to_string())?;
    let store = &app.store;
    let selected: Vec<&str> = plan.selected.iter().map(|s| s.server_id.as_str()).collect();
    let saved = store
        .save_plan(
            &plan.id,
            &json,
            user,
            now_ms(),
            plan.expires_at.timestamp_millis(),
        )
        .await
        .and(
            store
                .audit(
                    now_ms(),
                    user,
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
    Ok(plan)
}

/// A Confirm or Cancel click on a plan.
#[derive(Debug, Clone)]
pub struct Click {
    pub user: String,
    pub confirm: bool,
    pub plan_id: String,
    /// Where the plan was shown; the summary of a run is posted there.
    pub channel: Option<String>,
    pub response_url: String,
}

/// Runs a click to its outcome and answers; called in the background.
pub async fn click(app: AppState, click: Click) {
    let responder = Responder::new(app.clone(), &click.response_url, &click.user);
    let outcome = run(&app, &click).await;
    responder.send(reap::click_reply(&outcome)).await;
    if let (ClickOutcome::Executed { report, user, .. }, Some(channel)) = (&outcome, click.channel)
    {
        let m = NewMessage {
            channel,
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            target_id: None,
            message: Message::plain(reap::summary_text(report, user)),
        };
        if let Err(e) = app.outbox.enqueue(&m).await {
            tracing::error!(error = format!("{e:#}"), "could not queue the reap summary");
        }
    }
}

async fn run(app: &AppState, click: &Click) -> ClickOutcome {
    let user = &click.user;
    let via = match authorize(app, user).await {
        Ok(via) => via,
        Err(refusal) => {
            audit(
                app,
                user,
                "refused",
                &click.plan_id,
                json!({"confirm": click.confirm, "reason": refusal.reason}),
            )
            .await;
            return ClickOutcome::Refused(refusal.sentence);
        }
    };
    // A plan exists only when the fleet is configured; settings do not change while running.
    let ctx = match &app.fleet {
        Ok(ctx) => ctx,
        Err(missing) => return ClickOutcome::Refused(missing.to_string()),
    };
    // One reap at a time, fleet-wide; taken before the claim so a plan is never left
    // claimed by a click that then could not run it.
    let _reaping = if click.confirm {
        match app.store.lock_reaps().await {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not take the reap lock");
                return ClickOutcome::NotClaimed(Unclaimed::StoreUnavailable);
            }
        }
    } else {
        None
    };
    let plan = match claim(app, click).await {
        Ok(plan) => plan,
        Err(why) => return ClickOutcome::NotClaimed(why),
    };
    if !click.confirm {
        audit(app, user, "cancel", &click.plan_id, json!({"via": via})).await;
        app.metrics.reap("cancelled");
        return ClickOutcome::Cancelled {
            plan,
            user: user.clone(),
        };
    }
    audit(app, user, "confirm", &click.plan_id, json!({"via": via})).await;
    let report = reap::execute(
        &plan,
        &ctx.scaleway,
        app.releaser.as_ref(),
        &app.settings.reap,
        &PlanContext::from(&ctx.settings),
        chrono::Utc::now,
    )
    .await;
    if let Err(e) = app.store.finish_plan(&click.plan_id).await {
        tracing::error!(error = format!("{e:#}"), "could not mark a reap plan done");
    }
    let counts = report.counts();
    let detail = json!({
        "results": report.results.iter().map(|r| json!({"server": r.server_id, "outcome": format!("{:?}", r.outcome), "slot": format!("{:?}", r.slot)})).collect::<Vec<_>>(),
        "stopped_early": report.stopped_early,
    });
    audit(app, user, "executed", &click.plan_id, detail).await;
    app.metrics
        .servers_removed
        .inc_by(counts.servers_removed as u64);
    let outcome = if report.stopped_early.is_some() || counts.failed > 0 {
        "partial"
    } else {
        "ok"
    };
    app.metrics.reap(outcome);
    tracing::info!(plan = %click.plan_id, user = %user, removed = counts.servers_removed, "reap finished");
    ClickOutcome::Executed {
        plan,
        report,
        user: user.clone(),
    }
}

struct Refusal {
    /// For the audit log.
    reason: &'static str,
    sentence: String,
}

/// Which setting lets `user` confirm or cancel a reap: listed in `allowed_users`, or a member
/// of `allowed_usergroup`. Fails closed: a group Slack cannot answer for lets nobody in.
async fn authorize(app: &AppState, user: &str) -> Result<&'static str, Refusal> {
    let s = &app.settings.reap;
    if s.allowed_users.iter().any(|u| u == user) {
        return Ok("allowed_users");
    }
    let not_allowed = |who: &str| Refusal {
        reason: "not_allowed",
        sentence: format!("Only {who} can confirm or cancel a reap; nothing was changed."),
    };
    let Some(group) = &s.allowed_usergroup else {
        return Err(not_allowed("the people listed in `[reap] allowed_users`"));
    };
    match app.usergroups.contains(group, user).await {
        Ok(true) => Ok("allowed_usergroup"),
        Ok(false) => Err(not_allowed(
            "the people listed in `[reap] allowed_users` or in the `[reap] allowed_usergroup` \
             user group",
        )),
        Err(e) => {
            tracing::warn!(error = %e, usergroup = %group, "could not check reap group membership");
            Err(Refusal {
                reason: "usergroup_unavailable",
                sentence: format!(
                    "I couldn't check membership of the reap group: {}. Nothing was changed.",
                    e.user_reason(group)
                ),
            })
        }
    }
}

/// Takes the plan for this click, so exactly one of several concurrent clicks acts on it.
async fn claim(app: &AppState, click: &Click) -> Result<Plan, Unclaimed> {
    let to = if click.confirm {
        "running"
    } else {
        "cancelled"
    };
    match app
        .store
        .claim_plan(&click.plan_id, &click.user, to, now_ms())
        .await
    {
        Ok(Claim::Claimed(json)) => serde_json::from_str(&json).map_err(|_| Unclaimed::Unreadable),
        Ok(Claim::Expired) => Err(Unclaimed::Expired),
        Ok(Claim::NotFound) => Err(Unclaimed::NotFound),
        Ok(Claim::AlreadyHandled(state)) => Err(Unclaimed::AlreadyHandled(state)),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not claim a reap plan");
            Err(Unclaimed::StoreUnavailable)
        }
    }
}

/// The audit log is best effort: a store hiccup must not undo a reap that happened.
async fn audit(app: &AppState, user: &str, action: &str, plan_id: &str, detail: serde_json::Value) {
    if let Err(e) = app
        .store
        .audit(now_ms(), user, action, Some(plan_id), &detail)
        .await
    {
        tracing::error!(
            error = format!("{e:#}"),
            action,
            "could not write the audit log"
        );
    }
}
