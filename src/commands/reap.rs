//! `/arm reap`: a dry-run plan with Confirm/Cancel buttons; the reap itself
//! runs only on a confirmation by an allowed user, once, one at a time.

use std::{sync::Arc, time::Instant};

use axum::response::Response;
use serde_json::{Value, json};

use super::{Responder, SlashRequest};
use crate::{
    app::AppState,
    fleet::FleetContext,
    http::slack::ephemeral,
    notify::render::Message,
    reap::{self, MachineIndex, PlanContext, SlotReleaser},
    store::{NewMessage, OutboxKind, now_ms, reap::Claim},
};

fn context(app: &AppState) -> Result<FleetContext, String> {
    FleetContext::new(
        &app.settings.fleet,
        &app.settings.scaleway,
        app.settings.scaleway_timeout,
    )
}

/// Anyone may ask for a plan: it changes nothing.
pub fn start(app: &AppState, req: &SlashRequest) -> Response {
    let started = Instant::now();
    let ctx = match context(app) {
        Ok(c) => Arc::new(c),
        Err(sentence) => {
            app.metrics
                .command("reap", "not_configured", started.elapsed().as_secs_f64());
            return ephemeral(sentence, None);
        }
    };
    let (app2, req2) = (app.clone(), req.clone());
    tokio::spawn(async move {
        let responder = Responder::new(app2.clone(), &req2);
        let body = match plan(&app2, &ctx, &req2.user_id).await {
            Ok(body) => body,
            Err(sentence) => json!({"response_type": "ephemeral", "text": sentence}),
        };
        app2.metrics
            .command("reap", "planned", started.elapsed().as_secs_f64());
        responder.send(body).await;
    });
    ephemeral(
        "Planning which stuck ARM builders could be removed… nothing is deleted without a confirmation.",
        None,
    )
}

async fn plan(app: &AppState, ctx: &FleetContext, user: &str) -> Result<Value, String> {
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
    let now = chrono::Utc::now();
    let plan = reap::plan(&servers, index.as_ref(), &app.settings.reap, &pctx, now);
    let json = serde_json::to_string(&plan).map_err(|_| "could not store the plan".to_string())?;
    let store = &app.store;
    let saved = store
        .save_plan(&plan.id, &json, user, now_ms(), plan.expires_at.timestamp_millis())
        .await
        .and(
            store
                .audit(now_ms(), user, "plan", Some(&plan.id), &json!({"selected": plan.selected.iter().map(|s| &s.server_id).collect::<Vec<_>>()}))
                .await,
        );
    if let Err(e) = saved {
        tracing::error!(error = format!("{e:#}"), "could not store a reap plan");
        return Err("The plan could not be saved; try again in a moment.".into());
    }
    Ok(json!({
        "response_type": "in_channel",
        "text": reap::plan_text(&plan),
        "blocks": reap::plan_blocks(&plan, &plan.id),
    }))
}

struct Refusal {
    /// For the audit log.
    reason: &'static str,
    sentence: String,
}

/// Which setting lets `user` confirm or cancel a reap: listed in `allowed_users`, or a member
/// of `allowed_usergroup`. Fails closed: a group Slack cannot answer for lets nobody in.
async fn allowed(app: &AppState, user: &str) -> Result<&'static str, Refusal> {
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

/// A Confirm or Cancel click. Answers at once; the reap runs in the background.
pub async fn button(
    app: AppState,
    user: String,
    confirm: bool,
    plan_id: String,
    channel: String,
    response_url: String,
) {
    let responder = Responder::for_url(app.clone(), &response_url, &user);
    let refuse = |text: String| json!({"response_type": "ephemeral", "replace_original": false, "text": text});
    let via = match allowed(&app, &user).await {
        Ok(via) => via,
        Err(refusal) => {
            let _ = app
                .store
                .audit(
                    now_ms(),
                    &user,
                    "refused",
                    Some(&plan_id),
                    &json!({"confirm": confirm, "reason": refusal.reason}),
                )
                .await;
            responder.send(refuse(refusal.sentence)).await;
            return;
        }
    };
    let claim = app
        .store
        .claim_plan(
            &plan_id,
            &user,
            if confirm { "running" } else { "cancelled" },
            now_ms(),
        )
        .await;
    let plan: reap::Plan = match claim {
        Ok(Claim::Claimed(json)) => match serde_json::from_str(&json) {
            Ok(p) => p,
            Err(_) => {
                return responder
                    .send(refuse(
                        "That plan could not be read; run `/arm reap` again.".into(),
                    ))
                    .await;
            }
        },
        Ok(Claim::Expired) => {
            return responder
                .send(refuse(
                    "That plan has expired; run `/arm reap` again for a fresh one.".into(),
                ))
                .await;
        }
        Ok(Claim::NotFound) => {
            return responder
                .send(refuse(
                    "I don't know that plan; run `/arm reap` again.".into(),
                ))
                .await;
        }
        Ok(Claim::AlreadyHandled(state)) => {
            return responder
                .send(refuse(format!(
                    "That plan is already {state}; nothing more to do."
                )))
                .await;
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not claim a reap plan");
            return responder
                .send(refuse(
                    "The store is unavailable; try again in a moment.".into(),
                ))
                .await;
        }
    };
    if !confirm {
        let _ = app
            .store
            .audit(
                now_ms(),
                &user,
                "cancel",
                Some(&plan_id),
                &json!({"via": via}),
            )
            .await;
        app.metrics.reap("cancelled");
        let body = json!({"replace_original": true, "text": "Reap cancelled", "blocks": reap::cancelled_blocks(&plan, &user)});
        responder.send(body).await;
        return;
    }
    // One reap at a time across the bot.
    let _guard = app.reap_lock.lock().await;
    let _ = app
        .store
        .audit(
            now_ms(),
            &user,
            "confirm",
            Some(&plan_id),
            &json!({"via": via}),
        )
        .await;
    let report = match context(&app) {
        Ok(ctx) => {
            let releaser = SlotReleaser::from_settings(&app.settings.reap);
            let pctx = PlanContext::from(&ctx.settings);
            reap::execute(
                &plan,
                &ctx.scaleway,
                releaser.as_ref(),
                &app.settings.reap,
                &pctx,
                chrono::Utc::now,
            )
            .await
        }
        Err(sentence) => return responder.send(refuse(sentence)).await,
    };
    let _ = app.store.finish_plan(&plan_id).await;
    let counts = report.counts();
    let detail = json!({
        "results": report.results.iter().map(|r| json!({"server": r.server_id, "outcome": format!("{:?}", r.outcome), "slot": format!("{:?}", r.slot)})).collect::<Vec<_>>(),
        "stopped_early": report.stopped_early,
    });
    let _ = app
        .store
        .audit(now_ms(), &user, "executed", Some(&plan_id), &detail)
        .await;
    app.metrics
        .servers_removed
        .inc_by(counts.servers_removed as u64);
    let outcome = if report.stopped_early.is_some() || counts.failed > 0 {
        "partial"
    } else {
        "ok"
    };
    app.metrics.reap(outcome);
    let summary = reap::summary_text(&report, &user);
    responder
        .send(json!({"replace_original": true, "text": summary, "blocks": reap::report_blocks(&report, &plan, &user)}))
        .await;
    if !channel.is_empty() {
        let m = NewMessage {
            channel,
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            message: Message::plain(summary),
        };
        match app.store.enqueue(&m, now_ms()).await {
            Ok(_) => app.wake.notify_one(),
            Err(e) => tracing::error!(error = format!("{e:#}"), "could not queue the reap summary"),
        }
    }
    tracing::info!(plan = %plan_id, user = %user, removed = counts.servers_removed, "reap finished");
}
