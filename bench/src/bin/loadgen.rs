//! A small HTTP load generator and a reference server.
//!
//! `loadgen hit --url U --body F [--header K:V] --requests N --concurrency C` prints
//! throughput and latency percentiles; `loadgen reference --listen A` serves a
//! minimal axum app that reads the body and answers 200 (the limit to compare with).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Adds `idempotency-key: <n>` and rewrites `"id": 31` to a unique id per request.
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
            unique,
        } => {
            let raw = std::fs::read_to_string(&body)?;
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency)
                .build()?;
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (client, url, raw, headers, next) = (
                    client.clone(),
                    url.clone(),
                    raw.clone(),
                    headers.clone(),
                    next.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0usize;
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= requests {
                            break;
                        }
                        let b = if unique {
                            raw.replacen("\"id\": 31", &format!("\"id\": {}", 100_000 + n), 1)
                        } else {
                            raw.clone()
                        };
                        let mut req = client
                            .post(&url)
                            .body(b)
                            .header("content-type", "application/json");
                        for h in &headers {
                            if let Some((k, v)) = h.split_once(':') {
                                req = req.header(k.trim(), v.trim());
                            }
                        }
                        if unique {
                            req = req.header(
                                "idempotency-key",
                                format!("lg-{n}-{}", std::process::id()),
                            );
                        }
                        let t = Instant::now();
                        match req.send().await {
                            Ok(r) if r.status().is_success() => lat.push(t.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                }));
            }
            let mut all: Vec<Duration> = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await?;
                all.extend(l);
                errors += e;
            }
            let secs = started.elapsed().as_secs_f64();
            all.sort();
            let pct = |p: f64| {
                all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            };
            println!(
                "requests={} errors={} throughput={:.0}/s p50={:.2}ms p99={:.2}ms max={:.2}ms",
                all.len(),
                errors,
                all.len() as f64 / secs,
                pct(0.50),
                pct(0.99),
                pct(1.0)
            );
        }
    }
    Ok(())
}
