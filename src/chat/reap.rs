//! `/arm reap`: a dry-run plan with Confirm/Cancel buttons; the reap itself runs only on a
//! confirmation by an allowed user, once, one at a time. A click runs in steps — authorize,
//! claim, execute, audit — and its [`ClickOutcome`] is rendered by `reap::render`.

use std::time::Instant;

use serde_json::json;

use super::{Responder, SlashRequest};
use crate::{
    reap::{self, ClickOutcome, Plan, Unclaimed},
    slack::{Message, Reply},
    state::AppState,
    store::{NewMessage, OutboxKind},
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
    app.clone().spawn("reap plan", async move {
        let responder = Responder::new(app.clone(), &req.response_url, &req.user_id);
        let reply = match app
            .reaping(&ctx)
            .list_and_plan(&req.user_id, chrono::Utc::now())
            .await
        {
            Ok(plan) => Reply::InChannel(plan_message(&plan)),
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

/// The "Plan a reap" button of a fleet-watch incident or a status report: the same plan as
/// `/arm reap`, with the same Remove and Cancel, shown only to the person who clicked. Runs in
/// the background.
pub async fn plan_for_clicker(app: AppState, user: String, response_url: String) {
    let responder = Responder::new(app.clone(), &response_url, &user);
    let reply = match &app.fleet {
        Err(missing) => Reply::aside(missing.to_string()),
        Ok(ctx) => match app
            .reaping(ctx)
            .list_and_plan(&user, chrono::Utc::now())
            .await
        {
            Ok(plan) => Reply::Aside(plan_message(&plan)),
            Err(sentence) => Reply::aside(sentence),
        },
    };
    responder.send(reply).await;
}

/// A plan as Slack shows it, with Confirm and Cancel when something is selected.
fn plan_message(plan: &Plan) -> Message {
    Message::new(reap::plan_text(plan), reap::plan_blocks(plan, &plan.id))
}

/// A Confirm or Cancel click on a plan.
#[derive(Debug, Clone)]
pub struct Click {
    pub user: String,
    pub confirm: bool,
    pub plan_id: String,
    /// Where the plan was shown.
    pub channel: Option<String>,
    /// The plan was posted in the channel (`/arm reap`), not shown to one person ("Plan a
    /// reap" on a fleet-watch incident or a status report).
    pub plan_seen_by_all: bool,
    pub response_url: String,
}

/// Runs a click to its outcome and answers; called in the background. The report replaces
/// the plan; a plan only the clicker saw is also reported in the channel, so the team learns
/// what was removed. (A plan posted in the channel already shows the report to everyone: a
/// second post would only repeat it.)
pub async fn click(app: AppState, click: Click) {
    let responder = Responder::new(app.clone(), &click.response_url, &click.user);
    let outcome = run(&app, &click).await;
    if let (ClickOutcome::Executed { plan, report, user }, Some(channel), false) =
        (&outcome, &click.channel, click.plan_seen_by_all)
    {
        let m = NewMessage {
            channel: channel.clone(),
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            target_id: None,
            message: reap::report_message(report, plan, user),
        };
        if let Err(e) = app.outbox.enqueue(&m).await {
            tracing::error!(error = format!("{e:#}"), "could not queue the reap report");
        }
    }
    responder.send(reap::click_reply(&outcome)).await;
}

async fn run(app: &AppState, click: &Click) -> ClickOutcome {
    let user = &click.user;
    let via = match authorize(app, user, click.confirm).await {
        Ok(via) => via,
        Err(refusal) => {
            reap::run::audit(
                &app.store,
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
    let reaping = app.reaping(ctx);
    // One reap at a time, fleet-wide (the fleet watch's auto-reap included); taken before
    // the claim so a plan is never left claimed by a click that then could not run it.
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
    let plan = match reaping
        .claim(
            &click.plan_id,
            user,
            click.confirm,
            click.channel.as_deref(),
        )
        .await
    {
        Ok(plan) => plan,
        Err(why) => return ClickOutcome::NotClaimed(why),
    };
    if !click.confirm {
        return reaping.cancelled(plan, user, via).await;
    }
    reaping
        .audit(user, "confirm", &click.plan_id, json!({"via": via}))
        .await;
    let report = reaping.run(&plan, user, chrono::Utc::now).await;
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
/// of `allowed_usergroup`. Fails closed: a group Slack cannot answer for lets nobody in. The
/// refusal names who can, not the settings.
async fn authorize(app: &AppState, user: &str, confirm: bool) -> Result<&'static str, Refusal> {
    let s = &app.settings.reap;
    if s.allowed_users.iter().any(|u| u == user) {
        return Ok("allowed_users");
    }
    let not_allowed = || Refusal {
        reason: "not_allowed",
        sentence: reap::refusal(confirm, &s.allowed_users, s.allowed_usergroup.as_deref()),
    };
    let Some(group) = &s.allowed_usergroup else {
        return Err(not_allowed());
    };
    match app.usergroups.contains(group, user).await {
        Ok(true) => Ok("allowed_usergroup"),
        Ok(false) => Err(not_allowed()),
        Err(e) => {
            tracing::warn!(error = %e, usergroup = %group, "could not check reap group membership");
            Err(Refusal {
                reason: "usergroup_unavailable",
                sentence: reap::group_unchecked(confirm, &s.allowed_users, &e.user_reason(group)),
            })
        }
    }
}

/// Runs cut short by a crash or a vanished replica, found again: each is checked against
/// Scaleway, marked `interrupted` (never re-run), audited, and reported where it was
/// confirmed with what was and was not removed. Runs on the replica that leads, when no reap
/// runs anywhere; a run that cannot be checked now is left for the next time.
pub async fn recover_interrupted(app: AppState) {
    let Ok(fleet) = &app.fleet else {
        return;
    };
    let _lock = match app.store.try_lock_reaps().await {
        Ok(Some(lock)) => lock,
        Ok(None) => return, // a reap runs now: its plan is not orphaned
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot look for interrupted reaps"
            );
            return;
        }
    };
    let running = match app.store.running_plans().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot look for interrupted reaps"
            );
            return;
        }
    };
    for found in running {
        let Ok(plan) = serde_json::from_str::<Plan>(&found.plan) else {
            tracing::error!(plan = %found.id, "an interrupted reap's plan cannot be read");
            continue;
        };
        let (mut gone, mut still_there) = (Vec::new(), Vec::new());
        for removal in &plan.selected {
            match fleet
                .scaleway
                .get_server(&removal.zone, &removal.server_id)
                .await
            {
                Ok(None) => gone.push(removal),
                Ok(Some(_)) => still_there.push(removal),
                Err(e) => {
                    tracing::warn!(plan = %found.id, error = %e, "cannot check an interrupted reap; trying again later");
                    return;
                }
            }
        }
        match app.store.interrupt_plan(&found.id).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "cannot mark an interrupted reap");
                return;
            }
        }
        let ids = |rs: &[&reap::PlannedRemoval]| {
            rs.iter().map(|r| r.server_id.clone()).collect::<Vec<_>>()
        };
        reap::run::audit(
            &app.store,
            "armbot",
            "interrupted",
            &found.id,
            json!({"removed": ids(&gone), "still_there": ids(&still_there)}),
        )
        .await;
        tracing::warn!(plan = %found.id, removed = gone.len(), left = still_there.len(), "a reap was interrupted by a stop; reported, not re-run");
        let text =
            reap::interrupted_text(&plan, found.confirmed_by.as_deref(), &gone, &still_there);
        let Some(channel) = found.channel else {
            continue;
        };
        let m = NewMessage {
            channel,
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            target_id: None,
            message: Message::plain(text),
        };
        if let Err(e) = app.outbox.enqueue(&m).await {
            tracing::error!(
                error = format!("{e:#}"),
                "could not queue an interrupted reap's report"
            );
        }
    }
}
