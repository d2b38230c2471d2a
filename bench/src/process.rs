//! Starting a real `armbot serve` (or the reference server) as a child process,
//! and reading its memory from `/proc`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

pub struct Bot {
    child: Child,
    pub url: String,
    /// Holds the database and settings file until the bot is dropped.
    _dir: tempfile::TempDir,
}

/// A free loopback port (the tiny race with another process taking it is fine here).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Bot {
    /// Starts `binary serve` in a fresh directory with `toml` as its settings
    /// and `env` on top, and waits until `/readyz` answers.
    pub async fn start(binary: &Path, toml: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_limited(binary, toml, env, None).await
    }

    /// As [`Bot::start`], with the process's open-file limit set to `nofile` (as under
    /// systemd's default of 1024), through `sh -c 'ulimit -n …; exec …'`.
    pub async fn start_limited(
        binary: &Path,
        toml: &str,
        env: &[(&str, String)],
        nofile: Option<u64>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("armbot.toml");
        std::fs::write(&config, toml)?;
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" serve"))
                    .arg(binary);
                c
            }
            None => {
                let mut c = Command::new(binary);
                c.arg("serve");
                c
            }
        };
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ARMBOT_CONFIG", &config)
            .env("ARMBOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("GITLAB_WEBHOOK_TOKEN", "bench-token")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let mut bot = Self {
            child,
            url,
            _dir: dir,
        };
        bot.ready("/readyz").await?;
        Ok(bot)
    }

    async fn ready(&mut self, path: &str) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                bail!("the process exited early: {status}");
            }
            if client
                .get(format!("{}{path}", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not become ready in 15 s", self.url)
    }

    /// The socket address the bot listens on.
    pub fn addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        Ok(self.url.trim_start_matches("http://").parse()?)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether this replica holds the lease (`armbot_leader 1` in its metrics).
    pub async fn leads(&self) -> bool {
        leads(&self.url).await
    }

    /// SIGKILL: no shutdown hook runs, as in a crash.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// `VmRSS` and `VmHWM` (peak) in KiB.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.pid().context("the process has exited")?;
        memory_kib(pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits (at most `bound`) for the process to exit: how long it took
    /// and whether it exited 0.
    pub async fn terminate(mut self, bound: Duration) -> anyhow::Result<(Duration, bool)> {
        let pid = self.pid().context("the process has exited")?;
        let started = std::time::Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed");
        }
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .with_context(|| format!("still running {bound:?} after SIGTERM"))??;
        Ok((started.elapsed(), status.success()))
    }
}

/// Whether the bot at `url` says it holds the lease.
pub async fn leads(url: &str) -> bool {
    let Ok(r) = reqwest::get(format!("{url}/metrics")).await else {
        return false;
    };
    r.text()
        .await
        .is_ok_and(|m| m.lines().any(|l| l == "armbot_leader 1"))
}

pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing from /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The minimal axum server every ingestion figure is compared with, as its own process.
pub struct Reference {
    child: Child,
    pub url: String,
}

impl Reference {
    pub async fn start(loadgen: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(loadgen)
            .args(["reference", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", loadgen.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .post(format!("{url}/gitlab/webhook"))
                .send()
                .await
                .is_ok()
            {
                return Ok(Self { child, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the reference server did not start")
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// `target/release/<name>`, honouring `CARGO_TARGET_DIR`.
pub fn release_binary(name: &str) -> PathBuf {
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    dir.join("release").join(name)
}
