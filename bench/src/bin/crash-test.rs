//! Crash test: a burst of pipeline webhooks into a release `armbot` that is
//! killed with SIGKILL at random moments and restarted, then a check that the
//! fake Slack received exactly the notices the events call for.
//!
//! Run with `bench/crash-test` (builds in release mode first).

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use armbot_fakes::FakeSlack;
use clap::Parser;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio::{process::Child, sync::Mutex};

#[derive(Parser, Debug)]
struct Args {
    /// The armbot binary (release build).
    #[arg(long, default_value = "target/release/armbot")]
    armbot: PathBuf,
    /// Webhooks to send in each trial.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Refs the events are spread over.
    #[arg(long, default_value_t = 40)]
    refs: usize,
    /// SIGKILLs per trial.
    #[arg(long, default_value_t = 6)]
    kills: usize,
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// Concurrent senders (each owns a set of refs, so per-ref order holds).
    #[arg(long, default_value_t = 8)]
    lanes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone)]
struct Event {
    git_ref: String,
    id: u64,
    failed: bool,
}

/// What a notice is about: (kind, ref, pipeline id).
type NoticeKey = (&'static str, String, u64);

/// The notices the incident model calls for, in order per ref.
fn expected(events: &[Event]) -> Vec<NoticeKey> {
    let mut broken: HashMap<&str, bool> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let b = broken.entry(&e.git_ref).or_default();
        match (e.failed, *b) {
            (true, false) => out.push(("root", e.git_ref.clone(), e.id)),
            (true, true) => out.push(("still", e.git_ref.clone(), e.id)),
            (false, true) => out.push(("fixed", e.git_ref.clone(), e.id)),
            (false, false) => {}
        }
        *b = e.failed;
    }
    out
}

/// Reads a notice back from the fallback text the bot sends.
fn parse_notice(text: &str) -> Option<NoticeKey> {
    let id_after = |s: &str, marker: &str| -> Option<u64> {
        let rest = &s[s.find(marker)? + marker.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    let ref_after = |s: &str, marker: &str| -> Option<String> {
        let rest = &s[s.find(marker)? + marker.len()..];
        rest.split_whitespace().next().map(str::to_string)
    };
    if let Some(rest) = text.strip_prefix("Fixed: ") {
        return Some((
            "fixed",
            ref_after(rest, "branch ")?,
            id_after(rest, "(pipeline #")?,
        ));
    }
    let (kind, rest) = match text.strip_prefix("Still failing: ") {
        Some(r) => ("still", r),
        None => ("root", text),
    };
    Some((
        kind,
        ref_after(rest, "on branch ")?,
        id_after(rest, "Pipeline #")?,
    ))
}

fn payload(e: &Event) -> serde_json::Value {
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": e.id, "iid": e.id, "ref": e.git_ref, "tag": false, "sha": "0123456789abcdef",
            "source": "push", "status": if e.failed { "failed" } else { "success" },
            "finished_at": "2026-11-27 10:00:00 UTC", "duration": 600,
            "url": format!("https://gitlab.example.com/g/p/-/pipelines/{}", e.id)
        },
        "project": {"id": 1, "name": "p", "web_url": "https://gitlab.example.com/g/p",
                    "path_with_namespace": "g/p", "default_branch": "master"},
        "commit": {"id": "0123456789abcdef", "title": "Bump", "url": "https://gitlab.example.com/g/p/-/commit/0123"},
        "user": {"name": "Crash Tester", "username": "crash"},
        "builds": if e.failed {
            json!([{"id": e.id * 10, "stage": "test", "name": "rspec", "status": "failed",
                    "failure_reason": "script_failure", "allow_failure": false}])
        } else { json!([]) }
    })
}

struct Bot {
    args: Vec<(String, String)>,
    bin: PathBuf,
    child: Option<Child>,
    base: String,
}

impl Bot {
    async fn start(&mut self) -> anyhow::Result<()> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in &self.args {
            cmd.env(k, v);
        }
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("cannot start {}", self.bin.display()))?,
        );
        // Wait (bounded) until it answers.
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("armbot did not become ready")
    }

    async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?; // SIGKILL: no shutdown hook runs
            c.wait().await?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Trial {
    events: usize,
    expected: usize,
    received: usize,
    lost: usize,
    duplicated: usize,
    unexpected: usize,
    kills: usize,
    seconds: f64,
}

async fn trial(args: &Args, n: usize) -> anyhow::Result<Trial> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(args.seed + n as u64);
    let refs: Vec<String> = (0..args.refs)
        .map(|i| format!("{}-{}-stable", 16 + i / 10, i % 10))
        .collect();
    let mut events = Vec::with_capacity(args.events);
    for id in 0..args.events as u64 {
        let r = refs[rng.random_range(0..refs.len())].clone();
        events.push(Event {
            git_ref: r,
            id: 1000 + id,
            failed: rng.random_bool(0.6),
        });
    }
    let want = expected(&events);

    let fake = FakeSlack::start().await;
    fake.set_token(Some("xoxb-crash-test"));
    let dir = std::env::temp_dir().join(format!("armbot-crash-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("armbot.toml"), "[slack]\nmin_interval_ms = 0\n")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let bot = Arc::new(Mutex::new(Bot {
        args: vec![
            ("ARMBOT_LISTEN".into(), format!("127.0.0.1:{port}")),
            (
                "ARMBOT_CONFIG".into(),
                dir.join("armbot.toml").display().to_string(),
            ),
            (
                "ARMBOT_DATABASE_URL".into(),
                format!("sqlite://{}", dir.join("armbot.db").display()),
            ),
            ("ARMBOT_NOTIFY_CHANNEL".into(), "C0CRASH".into()),
            ("GITLAB_WEBHOOK_TOKEN".into(), "crash-token".into()),
            ("SLACK_BOT_TOKEN".into(), "xoxb-crash-test".into()),
            ("SLACK_API_URL".into(), fake.api_url()),
            ("RUST_LOG".into(), "error".into()),
        ],
        bin: args.armbot.clone(),
        child: None,
        base: base.clone(),
    }));
    bot.lock().await.start().await?;

    // Senders: lane i owns refs i, i+lanes, …, so each ref's events stay in order.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut lanes = Vec::new();
    for lane in 0..args.lanes {
        let mine: Vec<Event> = events
            .iter()
            .filter(|e| refs.iter().position(|r| *r == e.git_ref).unwrap_or(0) % args.lanes == lane)
            .cloned()
            .collect();
        let client = client.clone();
        let url = format!("{base}/gitlab/webhook");
        lanes.push(tokio::spawn(async move {
            for e in mine {
                let body = payload(&e).to_string();
                // Retried until accepted, with the same key, as GitLab's resend would.
                loop {
                    let r = client
                        .post(&url)
                        .header("x-gitlab-token", "crash-token")
                        .header("x-gitlab-event", "Pipeline Hook")
                        .header("idempotency-key", format!("evt-{}", e.id))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    let killer_bot = bot.clone();
    let kills = args.kills;
    let mut krng = StdRng::seed_from_u64(args.seed * 7919 + n as u64);
    let killer = tokio::spawn(async move {
        for _ in 0..kills {
            tokio::time::sleep(Duration::from_millis(krng.random_range(100..1200))).await;
            let mut b = killer_bot.lock().await;
            b.kill9().await?;
            b.start().await?;
        }
        anyhow::Ok(())
    });
    for l in lanes {
        l.await?;
    }
    killer.await??;

    // Drain: wait until the bot's outbox is empty and nothing new arrives.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let quiet = tokio::time::timeout(Duration::from_secs(2), fake.changed())
            .await
            .is_err();
        if quiet {
            let m = client
                .get(format!("{base}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            if !m.lines().any(|l| l.starts_with("armbot_outbox_pending{")) {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("the outbox did not drain");
        }
    }
    bot.lock().await.kill9().await?;

    let mut got: BTreeMap<NoticeKey, usize> = BTreeMap::new();
    let mut unexpected = 0;
    for r in fake
        .messages()
        .iter()
        .filter(|r| r.method == "chat.postMessage")
    {
        match parse_notice(&r.text) {
            Some(k) => *got.entry(k).or_default() += 1,
            None => unexpected += 1,
        }
    }
    let mut t = Trial {
        events: events.len(),
        expected: want.len(),
        kills,
        ..Trial::default()
    };
    for k in &want {
        match got.get(k) {
            None => t.lost += 1,
            Some(&c) if c > 1 => t.duplicated += c - 1,
            Some(_) => {}
        }
    }
    t.unexpected = unexpected + got.keys().filter(|k| !want.contains(k)).count();
    t.received = got.values().sum();
    t.seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(t)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "| trial | events | notices expected | received | lost | duplicated | unexpected | kill -9 | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for n in 0..args.trials {
        let t = trial(&args, n).await?;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            n + 1,
            t.events,
            t.expected,
            t.received,
            t.lost,
            t.duplicated,
            t.unexpected,
            t.kills,
            t.seconds
        );
        failed |= t.lost + t.duplicated + t.unexpected > 0;
    }
    if failed {
        bail!("notices were lost or duplicated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_and_the_parser_agree_with_the_bot_texts() {
        let ev = |id, failed| Event {
            git_ref: "16-1-stable".into(),
            id,
            failed,
        };
        let want = expected(&[
            ev(1, false),
            ev(2, true),
            ev(3, true),
            ev(4, false),
            ev(5, false),
        ]);
        assert_eq!(
            want,
            vec![
                ("root", "16-1-stable".into(), 2),
                ("still", "16-1-stable".into(), 3),
                ("fixed", "16-1-stable".into(), 4)
            ]
        );
        assert_eq!(
            parse_notice("Pipeline #2 failed on branch 16-1-stable of g/p"),
            Some(want[0].clone())
        );
        assert_eq!(
            parse_notice("Still failing: Pipeline #3 failed on branch 16-1-stable of g/p"),
            Some(want[1].clone())
        );
        assert_eq!(
            parse_notice("Fixed: branch 16-1-stable of g/p is green again (pipeline #4)"),
            Some(want[2].clone())
        );
    }
}
