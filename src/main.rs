//! The `armbot` command: serve | check-config | render.

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

use armbot::{
    check_config,
    config::Settings,
    gitlab::payload,
    metrics::Metrics,
    notify::preview,
    server,
    state::{AppState, system_clock},
    store::{DatabaseUrl, Store},
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
        /// Print every message as posted (the root with its status line, then its first
        /// reply), as one JSON list.
        #[arg(long)]
        thread: bool,
    },
    /// Ask a running armbot on this machine whether it is ready (`GET /readyz`): exit 0 if it
    /// answers 200, else 1. For container health checks, without curl in the image.
    Probe {
        /// Where the bot listens; an unspecified address (0.0.0.0, [::]) means this machine.
        #[arg(long, env = "ARMBOT_LISTEN", default_value = "0.0.0.0:8080")]
        addr: std::net::SocketAddr,
        /// The path asked.
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
    /// Copy every table of one store into another, empty one (e.g. SQLite to PostgreSQL when
    /// moving to replicas). Stop the bot first.
    MigrateStore {
        /// The store to copy, e.g. sqlite://armbot.db
        #[arg(long)]
        from: String,
        /// The empty store to fill, e.g. postgres://armbot@db/armbot (migrated first)
        #[arg(long)]
        to: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve => serve(),
        Command::CheckConfig => check_settings(),
        Command::Render { payload, thread } => render_payload(&payload, thread),
        Command::MigrateStore { from, to } => migrate_store(&from, &to),
        Command::Probe { addr, path } => probe(addr, &path),
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
        tracing::info!(store = %settings.database_url, "store ready");
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
    print_quietly(&report)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn render_payload(path: &std::path::Path, thread: bool) -> anyhow::Result<ExitCode> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let notify = Settings::for_render(&env)?;
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let hook = payload::parse_pipeline(&text, |_| true)
        .with_context(|| format!("{} is not a pipeline payload", path.display()))?
        .hook;
    let (out, problems) = preview::preview(&hook, &notify, thread)?;
    for p in &problems {
        eprintln!("armbot: {p}");
    }
    print_quietly(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints to stdout; a reader that stops early (`armbot render … | head`) is not an error.
fn print_quietly(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

fn migrate_store(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    let (from, to) = (DatabaseUrl::new(from), DatabaseUrl::new(to));
    anyhow::ensure!(from != to, "--from and --to name the same store");
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let source = Store::connect(&from)
            .await
            .with_context(|| format!("cannot open {from}"))?;
        let target = Store::connect(&to)
            .await
            .with_context(|| format!("cannot open {to}"))?;
        let copied = armbot::store::migrate::copy(&source, &target).await?;
        println!("copied {from} into {to}:");
        for (table, rows) in copied {
            println!("  {table:<12} {rows} rows");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `GET path` on `addr` over plain HTTP, bounded by a few seconds: success on a 200.
fn probe(mut addr: std::net::SocketAddr, path: &str) -> anyhow::Result<ExitCode> {
    use std::{
        io::Read,
        net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream},
        time::Duration,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let limit = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, limit)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .context("cannot send the request")?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(e).context("no answer"),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split(' ').nth(1).unwrap_or("none");
    println!("{path}: {status}");
    Ok(if status == "200" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
