//! `/arm status [zone…]`: acknowledged at once; the report follows on `response_url`.

use std::time::Instant;

use serde_json::Value;

use super::{Responder, SlashRequest, grammar::valid_zone};
use crate::{
    catch_up,
    fleet::gather_status,
    slack::{
        Message, Reply,
        blocks::{MAX_BLOCKS, divider},
        mrkdwn::escape,
    },
    state::AppState,
};

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
        Ok(ctx) => ctx.with_zones(zones),
        Err(missing) => {
            app.metrics
                .command("status", "not_configured", started.elapsed().as_secs_f64());
            return Reply::ephemeral(missing.to_string());
        }
    };
    let zones = ctx.settings.zones.join(", ");
    let responder = Responder::new(app.clone(), &req.response_url, &req.user_id);
    let metrics = app.metrics.clone();
    let app2 = app.clone();
    app.spawn("status", async move {
        let now = chrono::Utc::now();
        let (report, gitlab) = tokio::join!(
            gather_status(&ctx, now),
            catch_up::status_section(&app2, now)
        );
        let failed_zone = report.zones.iter().any(|z| z.fleet.is_err());
        let outcome = if failed_zone { "scaleway_error" } else { "ok" };
        metrics.command("status", outcome, started.elapsed().as_secs_f64());
        let mut blocks = match report.to_blocks() {
            Value::Array(b) => b,
            other => vec![other],
        };
        let mut summary = report.summary_text();
        if let Some((section, disabled)) = gitlab {
            with_gitlab(&mut blocks, section);
            if disabled > 0 {
                summary.push_str(&format!(
                    "; GitLab has disabled the webhook of {disabled} project{}",
                    if disabled == 1 { "" } else { "s" }
                ));
            }
        }
        responder
            .send(Reply::Ephemeral(Message::new(summary, blocks)))
            .await;
    });
    Reply::ephemeral(format!("Looking at the ARM fleet in {}…", escape(&zones)))
}

/// The GitLab section goes above the report's closing context line, within Slack's block cap
/// (the fleet's blocks give way at the end).
fn with_gitlab(blocks: &mut Vec<Value>, section: Vec<Value>) {
    let closing = blocks.pop();
    let room = MAX_BLOCKS.saturating_sub(section.len() + 1 + usize::from(closing.is_some()));
    blocks.truncate(room);
    blocks.push(divider());
    blocks.extend(section);
    blocks.extend(closing);
}
