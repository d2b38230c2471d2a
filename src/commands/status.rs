//! `/arm status [zone…]`: acknowledged at once; the report follows on `response_url`.

use std::{sync::Arc, time::Instant};

use axum::response::Response;

use super::{Responder, SlashRequest, ephemeral_body, grammar::valid_zone};
use crate::{
    app::AppState,
    fleet::{FleetContext, gather_status},
    http::slack::ephemeral,
    slack::mrkdwn::escape,
};

pub fn start(app: &AppState, req: &SlashRequest, zones: Vec<String>) -> Response {
    let started = Instant::now();
    if let Some(bad) = zones.iter().find(|z| !valid_zone(z)) {
        app.metrics
            .command("status", "user_error", started.elapsed().as_secs_f64());
        return ephemeral(
            format!(
                "`{}` is not a Scaleway zone; zones look like `fr-par-1` or `nl-ams-1`.",
                escape(bad)
            ),
            None,
        );
    }
    let mut fleet = app.settings.fleet.clone();
    if !zones.is_empty() {
        fleet.zones = zones;
    }
    let ctx = match FleetContext::new(
        &fleet,
        &app.settings.scaleway,
        app.settings.scaleway_timeout,
    ) {
        Ok(mut ctx) => {
            ctx.scaleway = ctx.scaleway.with_metrics(app.metrics.clone());
            Arc::new(ctx)
        }
        Err(sentence) => {
            app.metrics
                .command("status", "not_configured", started.elapsed().as_secs_f64());
            return ephemeral(sentence, None);
        }
    };
    let zones = ctx.settings.zones.join(", ");
    let responder = Responder::new(app.clone(), req);
    let metrics = app.metrics.clone();
    tokio::spawn(async move {
        let report = gather_status(&ctx, chrono::Utc::now()).await;
        let blocks = match report.to_blocks() {
            serde_json::Value::Array(b) => b,
            other => vec![other],
        };
        let failed_zone = report.zones.iter().any(|z| z.fleet.is_err());
        let outcome = if failed_zone { "scaleway_error" } else { "ok" };
        metrics.command("status", outcome, started.elapsed().as_secs_f64());
        responder
            .send(ephemeral_body(&report.summary_text(), blocks))
            .await;
    });
    ephemeral(
        format!("Looking at the ARM fleet in {}…", escape(&zones)),
        None,
    )
}
