//! `/arm status [zone…]`: acknowledged at once; the report follows on `response_url`.

use std::time::Instant;

use serde_json::Value;

use super::{Responder, SlashRequest, grammar::valid_zone};
use crate::{
    fleet::gather_status,
    slack::{Message, Reply, mrkdwn::escape},
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
    app.spawn("status", async move {
        let report = gather_status(&ctx, chrono::Utc::now()).await;
        let failed_zone = report.zones.iter().any(|z| z.fleet.is_err());
        let outcome = if failed_zone { "scaleway_error" } else { "ok" };
        metrics.command("status", outcome, started.elapsed().as_secs_f64());
        let blocks = match report.to_blocks() {
            Value::Array(b) => b,
            other => vec![other],
        };
        responder
            .send(Reply::Ephemeral(Message::new(
                report.summary_text(),
                blocks,
            )))
            .await;
    });
    Reply::ephemeral(format!("Looking at the ARM fleet in {}…", escape(&zones)))
}
