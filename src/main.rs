//! The `armbot` command: serve | check-config | render.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

use armbot::{
    check_config,
    config::Settings,
    metrics::Metrics,
    notify::{
        policy::{Decision, Outcome},
        render,
    },
    server,
    state::{AppState, system_clock},
    store::Store,
};

#[derive(Parser)]
#[command(version, about = "Slack ChatOps for the ARM build fleet")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (webhooks, Slack endpoints, delivery worker).
    Serve,
    /// Validate the settings and say which features are on and what each one off lacks.
    CheckConfig,
    /// Print the Slack message a GitLab pipeline payload would produce, or why none would.
    Render {
        /// A Pipeline Hook JSON file.
        payload: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve => serve(),
        Command::CheckConfig => check_settings(),
        Command::Render { payload } => render_payload(&payload),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("armbot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("ARMBOT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Logs go to stderr: stdout carries console-mode messages and `render` output.
    if json {
        fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

fn serve() -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let served = rt.block_on(async move {
        let store = Store::connect(&settings.database_url).await?;
        let state = AppState::new(settings, store, Metrics::new(), system_clock())?;
        server::run(state, shutdown_signal()).await
    });
    // Whatever still runs in the background (a reap's answer, a blocking write) must not
    // hold the exit past the shutdown deadline.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

fn check_settings() -> anyhow::Result<ExitCode> {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let (report, ok) = check_config::report(&settings);
    print!("{report}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn render_payload(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let hook: armbot::gitlab::PipelineHook = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a pipeline payload", path.display()))?;
    match armbot::notify::policy::classify(&hook.head(), &settings.notify) {
        Decision::Ignore(reason) => {
            println!("no message: {reason}");
        }
        Decision::Track { outcome, channel } => {
            let message = match outcome {
                Outcome::Failed => render::failure_message(&hook, &settings.notify),
                Outcome::Succeeded => {
                    println!(
                        "no message unless {channel} has an open incident for this ref; then:"
                    );
                    render::fixed(&hook, 0)
                }
            };
            println!("channel: {channel}");
            println!("{}", serde_json::to_string_pretty(&message)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
