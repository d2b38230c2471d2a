//! A small HTTP load generator and a reference server.
//!
//! `loadgen hit --url U --body F [--header K:V] --requests N [--concurrency C] [--rate R]
//! [--unique]` prints throughput and latency percentiles: closed loop (C senders, each sending
//! its next request when its last is answered), or open loop with `--rate` (R requests a
//! second on schedule, latency from each scheduled start, at most C in flight); `loadgen reference --listen A` serves a
//! minimal axum app that reads the body and answers 200 (the limit to compare with).

use armbot_bench::load::{self, Body, Hit};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Hit {
        #[arg(long)]
        url: String,
        #[arg(long)]
        body: std::path::PathBuf,
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Closed loop: the number of senders (16 unless given). Open loop: the most
        /// requests in flight (256 unless given, generous so the schedule is kept).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Requests per second, started on schedule whatever the answers (open loop).
        #[arg(long)]
        rate: Option<f64>,
        /// Gives each request its own pipeline id (the body must carry
        /// `"id":987654321`, as the harness's payloads do) and `Idempotency-Key`.
        #[arg(long)]
        unique: bool,
    },
    Reference {
        #[arg(long)]
        listen: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Reference { listen } => {
            let app = axum::Router::new()
                .route(
                    "/gitlab/webhook",
                    axum::routing::post(|_b: axum::body::Bytes| async { "" }),
                )
                .layer(axum::extract::DefaultBodyLimit::max(25 * 1024 * 1024));
            let l = tokio::net::TcpListener::bind(&listen).await?;
            axum::serve(l, app).await?;
        }
        Cmd::Hit {
            url,
            body,
            headers,
            requests,
            concurrency,
            rate,
            unique,
        } => {
            let raw = std::fs::read(&body)?;
            let body = if unique {
                Body::unique(raw)
            } else {
                Body::fixed(raw)
            };
            if unique && !body.is_unique() {
                anyhow::bail!("--unique needs a body with \"id\":987654321 in it");
            }
            let headers: Vec<(String, String)> = headers
                .iter()
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let first_id = u64::from(std::process::id()) * 1_000_000;
            let hit = Hit {
                url: &url,
                body: &body,
                headers: &headers,
                requests,
                concurrency: concurrency.unwrap_or(if rate.is_some() { 256 } else { 16 }),
                first_id,
            };
            let s = match rate {
                Some(rate) => load::hit_at_rate(hit, rate).await?,
                None => load::hit(hit).await?,
            };
            println!(
                "requests={} errors={} throughput={:.0}/s p50={:.2}ms p99={:.2}ms max={:.2}ms",
                s.ok,
                s.errors,
                s.throughput(),
                s.pct(0.50),
                s.pct(0.99),
                s.pct(1.0)
            );
        }
    }
    Ok(())
}
