//! `/arm status [zone…]`: acknowledged at once; the report follows on `response_url`, with
//! "Plan a reap" (when something is reapable) and "Share in channel".

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    Responder, SlashRequest,
    grammar::{self, valid_zone},
};
use crate::{
    catch_up,
    fleet::{FleetContext, ScwError, StatusReport, gather_status},
    slack::{
        Message, Reply,
        blocks::{MAX_BUTTON_VALUE, actions, button, context, divider},
        mrkdwn::{escape, len},
    },
    state::AppState,
    store::{NewMessage, OutboxKind},
    watch,
};

/// `action_id` of the "Share in channel" button. Its value is the zones asked for (space
/// separated, [`CONFIGURED_ZONES`] for the configured ones): an ephemeral report is not sent
/// back with the click, and a 360-builder report would not fit in a button's 2,000
/// characters, so the shared copy is gathered afresh over the same zones, as of the click.
pub const SHARE_ACTION: &str = "status_share";
/// The share button's value for the configured zones: Slack refuses an empty value. (Buttons
/// sent before this carry an empty value, read the same.)
const CONFIGURED_ZONES: &str = "*";

pub fn start(app: &AppState, req: &SlashRequest, zones: Vec<String>) -> Reply {
    let started = Instant::now();
    if let Some(bad) = zones.iter().find(|z| !valid_zone(z)) {
        app.metrics
            .command("status", "user_error", started.elapsed().as_secs_f64());
        return Reply::ephemeral(format!(
            "`{}` is not a Scaleway zone; zones look like `fr-par-1` or `nl-ams-1`.",
            escape(bad)
        ));
    }
    let ctx = match &app.fleet {
        Ok(ctx) => ctx.with_zones(zones.clone()),
        Err(missing) => {
            app.metrics
                .command("status", "not_configured", started.elapsed().as_secs_f64());
            return Reply::ephemeral(missing.to_string());
        }
    };
    let listed = ctx.settings.zones.join(", ");
    let responder = Responder::new(app.clone(), &req.response_url, &req.user_id);
    let app2 = app.clone();
    app.spawn("status", async move {
        let value = if zones.is_empty() {
            CONFIGURED_ZONES.to_owned()
        } else {
            zones.join(" ")
        };
        let (report, message) = report_message(&app2, &ctx, |report| {
            let mut buttons = plan_button(report);
            // Zones are capped when parsed, but one absurdly long name could still overflow it.
            if len(&value) <= MAX_BUTTON_VALUE {
                buttons.push(button(SHARE_ACTION, "Share in channel", &value, None));
            }
            row(buttons)
        })
        .await;
        let failed_zone = report.zones.iter().any(|z| z.fleet.is_err());
        let outcome = if failed_zone { "scaleway_error" } else { "ok" };
        app2.metrics
            .command("status", outcome, started.elapsed().as_secs_f64());
        responder.send(Reply::Ephemeral(message)).await;
    });
    Reply::ephemeral(format!("Looking at the ARM fleet in {}…", escape(&listed)))
}

/// A "Share in channel" click, already recorded as seen (a replay never gets here, so it costs
/// no fleet listing): the report, gathered again over the zones the button names, posted in
/// the channel saying who shared it; then the clicker's ephemeral copy is removed. When no
/// zone can be read, or the store cannot queue the post, the clicker is told and keeps their
/// copy: a new click (a new `action_ts`) tries again. Runs in the background.
pub async fn share(
    app: AppState,
    user: String,
    channel: String,
    zones: String,
    response_url: String,
) {
    let responder = Responder::new(app.clone(), &response_url, &user);
    let zones = match zones.trim() {
        CONFIGURED_ZONES | "" => Vec::new(),
        asked => grammar::zones(asked),
    };
    let ctx = match &app.fleet {
        // The value is the bot's own; anything else was not made by it.
        Ok(_) if zones.iter().any(|z| !valid_zone(z)) => {
            tracing::warn!(user = %user, "a status share click named an invalid zone");
            return;
        }
        Ok(ctx) => ctx.with_zones(zones),
        Err(missing) => {
            responder.send(Reply::aside(missing.to_string())).await;
            return;
        }
    };
    let (report, message) = report_message(&app, &ctx, |report| {
        // Anyone who clicks gets their own plan, and only allowed people can confirm it.
        let mut tail = row(plan_button(report));
        tail.push(context(&format!(
            "Shared by <@{}> with `/arm status`",
            escape(&user)
        )));
        tail
    })
    .await;
    // A report of errors alone tells the channel nothing.
    if let Some(e) = unreadable(&report) {
        responder
            .send(Reply::aside(format!(
                "The report was not shared: {}",
                e.user_message(ctx.settings.project_id.as_deref())
            )))
            .await;
        return;
    }
    let m = NewMessage {
        channel,
        kind: OutboxKind::Post,
        incident_id: None,
        target_ts: None,
        target_id: None,
        message,
    };
    match app.outbox.enqueue(&m).await {
        Ok(_) => responder.send(Reply::DeleteOriginal).await,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not queue a shared status");
            responder
                .send(Reply::aside(
                    "The report could not be shared: the bot cannot reach its store just now. \
                     Try again in a minute.",
                ))
                .await;
        }
    }
}

/// The first zone's error when no zone could be read.
fn unreadable(report: &StatusReport) -> Option<&ScwError> {
    let errors: Option<Vec<&ScwError>> = report
        .zones
        .iter()
        .map(|z| z.fleet.as_ref().err())
        .collect();
    errors?.into_iter().next()
}

/// The fleet report, the GitLab section and then the blocks `tail` makes for the report, as of
/// the app's clock.
async fn report_message(
    app: &AppState,
    ctx: &FleetContext,
    tail: impl FnOnce(&StatusReport) -> Vec<Value>,
) -> (StatusReport, Message) {
    let now = DateTime::from_timestamp((app.clock)(), 0).unwrap_or_else(Utc::now);
    let (report, gitlab) =
        tokio::join!(gather_status(ctx, now), catch_up::status_section(app, now));
    let mut extra = Vec::new();
    let mut summary = report.summary_text();
    if let Some((section, disabled)) = gitlab {
        extra.push(divider());
        extra.extend(section);
        if disabled > 0 {
            summary.push_str(&format!(
                "; GitLab has disabled the webhook of {disabled} project{}",
                if disabled == 1 { "" } else { "s" }
            ));
        }
    }
    extra.extend(tail(&report));
    let blocks = match report.to_blocks_with(extra) {
        Value::Array(b) => b,
        other => vec![other],
    };
    (report, Message::new(summary, blocks))
}

/// A row of buttons, or nothing when there are none (Slack refuses an empty row).
fn row(buttons: Vec<Value>) -> Vec<Value> {
    if buttons.is_empty() {
        Vec::new()
    } else {
        vec![actions(None, buttons)]
    }
}

/// "Plan a reap" (the fleet watch's button: the clicker alone sees the plan) when some
/// builder is reapable.
fn plan_button(report: &StatusReport) -> Vec<Value> {
    if report.reapable() == 0 {
        return Vec::new();
    }
    vec![button(
        watch::PLAN_REAP_ACTION_ID,
        "Plan a reap",
        "status",
        Some("primary"),
    )]
}
