//! Crash test: a burst of pipeline webhooks into a release `armbot` that is
//! killed with SIGKILL at random moments and restarted, then a check that the
//! fake Slack received exactly the notices the events call for.
//!
//! With `--postgres URL`, two replicas share one PostgreSQL database behind a
//! round-robin "load balancer": each kill takes down the replica that delivers,
//! the time until the other takes over is measured, and at the end a reap plan is
//! confirmed on both replicas at once (each server must be deleted once).
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
use armbot_bench::{
    pg::Schema,
    process::leads,
    slack::{SIGNING_SECRET, click_body, find_confirm, post as slack_post, slash_body},
};
use armbot_fakes::{FakeScaleway, FakeSlack, ScwOp, ScwServer};
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
    /// A PostgreSQL server: run two replicas on a schema of their own instead of one bot on
    /// SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// Replicas in PostgreSQL mode.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
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

/// Reads a notice back from the fallback text the bot sends: `p 16-1-stable #2 failed: …`,
/// `p 16-1-stable #3 still failing: …`, `p 16-1-stable fixed by #4 after …`.
fn parse_notice(text: &str) -> Option<NoticeKey> {
    let id = |w: &str| -> Option<u64> { w.trim_start_matches('#').parse().ok() };
    let mut words = text.split_whitespace().skip(1);
    let git_ref = words.next()?.to_string();
    match words.next()? {
        "fixed" => {
            words.next().filter(|w| *w == "by")?;
            Some(("fixed", git_ref, id(words.next()?)?))
        }
        pipeline => {
            let kind = match words.next()? {
                "still" => "still",
                w if w.starts_with("failed") => "root",
                _ => return None,
            };
            Some((kind, git_ref, id(pipeline)?))
        }
    }
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
    /// Seconds from each kill of the delivering replica until another delivered.
    takeovers: Vec<f64>,
    /// Servers a double Confirm deleted more or less than once.
    reap_wrong: usize,
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
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-crash");
    let dir = std::env::temp_dir().join(format!("armbot-crash-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("armbot.toml"),
        "[slack]\nmin_interval_ms = 0\n[reap]\nname_prefix = \"runner-crash-\"\nallowed_users = [\"U0REAPER\"]\n",
    )?;
    let schema = match &args.postgres {
        Some(base) => Some(Schema::create(base).await?),
        None => None,
    };
    let database = match &schema {
        Some(s) => s.url.clone(),
        None => format!("sqlite://{}", dir.join("armbot.db").display()),
    };
    let replicas = if schema.is_some() {
        args.replicas.max(1)
    } else {
        1
    };
    let mut bots = Vec::new();
    for _ in 0..replicas {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut bot = Bot {
            args: vec![
                ("ARMBOT_LISTEN".into(), format!("127.0.0.1:{port}")),
                (
                    "ARMBOT_CONFIG".into(),
                    dir.join("armbot.toml").display().to_string(),
                ),
                ("ARMBOT_DATABASE_URL".into(), database.clone()),
                ("ARMBOT_NOTIFY_CHANNEL".into(), "C0CRASH".into()),
                ("GITLAB_WEBHOOK_TOKEN".into(), "crash-token".into()),
                ("SLACK_BOT_TOKEN".into(), "xoxb-crash-test".into()),
                ("SLACK_API_URL".into(), fake.api_url()),
                ("SLACK_SIGNING_SECRET".into(), SIGNING_SECRET.into()),
                ("SCW_SECRET_KEY".into(), "scw-crash".into()),
                ("SCW_DEFAULT_PROJECT_ID".into(), "proj-crash".into()),
                ("SCW_DEFAULT_ZONE".into(), "fr-par-1".into()),
                ("SCW_API_URL".into(), scw.uri()),
                ("RUST_LOG".into(), "error".into()),
            ],
            bin: args.armbot.clone(),
            child: None,
            base: format!("http://127.0.0.1:{port}"),
        };
        bot.start().await?;
        bots.push(Arc::new(Mutex::new(bot)));
    }
    let bases: Vec<String> = {
        let mut v = Vec::new();
        for b in &bots {
            v.push(b.lock().await.base.clone());
        }
        v
    };

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
        let urls: Vec<String> = bases
            .iter()
            .map(|b| format!("{b}/gitlab/webhook"))
            .collect();
        lanes.push(tokio::spawn(async move {
            for e in mine {
                let body = payload(&e).to_string();
                // Round robin over the replicas, as a load balancer would; retried until
                // accepted, with the same key, as GitLab's resend would.
                let mut attempt = e.id as usize;
                loop {
                    let url = &urls[attempt % urls.len()];
                    attempt += 1;
                    let r = client
                        .post(url)
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
    let killer_bots = bots.clone();
    let kills = args.kills;
    let mut krng = StdRng::seed_from_u64(args.seed * 7919 + n as u64);
    let killer = tokio::spawn(async move {
        let mut takeovers = Vec::new();
        for _ in 0..kills {
            tokio::time::sleep(Duration::from_millis(krng.random_range(100..1200))).await;
            // The replica that delivers, when one says so; any one otherwise.
            let mut victim = krng.random_range(0..killer_bots.len());
            for (i, b) in killer_bots.iter().enumerate() {
                if leads(&b.lock().await.base).await {
                    victim = i;
                }
            }
            let was_leader = leads(&killer_bots[victim].lock().await.base).await;
            killer_bots[victim].lock().await.kill9().await?;
            let killed_at = Instant::now();
            if was_leader && killer_bots.len() > 1 {
                let others: Vec<String> = {
                    let mut v = Vec::new();
                    for (i, b) in killer_bots.iter().enumerate() {
                        if i != victim {
                            v.push(b.lock().await.base.clone());
                        }
                    }
                    v
                };
                'wait: while killed_at.elapsed() < Duration::from_secs(60) {
                    for o in &others {
                        if leads(o).await {
                            takeovers.push(killed_at.elapsed().as_secs_f64());
                            break 'wait;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            killer_bots[victim].lock().await.start().await?;
        }
        anyhow::Ok(takeovers)
    });
    for l in lanes {
        l.await?;
    }
    let takeovers = killer.await??;

    // Drain: wait until the bot's outbox is empty and nothing new arrives.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let quiet = tokio::time::timeout(Duration::from_secs(2), fake.changed())
            .await
            .is_err();
        if quiet {
            let m = client
                .get(format!("{}/metrics", bases[0]))
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
    // The notices, before the reap adds its own summary to the channel.
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
    let reap_wrong = if replicas > 1 {
        double_confirm(&client, &bases, &fake, &scw).await?
    } else {
        0
    };
    for b in &bots {
        b.lock().await.kill9().await?;
    }
    if let Some(schema) = schema {
        schema.drop_it().await?;
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
    t.takeovers = takeovers;
    t.reap_wrong = reap_wrong;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(t)
}

/// A reap plan for stuck builders, confirmed on every replica at once: returns how many
/// servers were deleted other than exactly once.
async fn double_confirm(
    client: &reqwest::Client,
    bases: &[String],
    fake: &FakeSlack,
    scw: &FakeScaleway,
) -> anyhow::Result<usize> {
    let servers: Vec<ScwServer> = (0..3)
        .map(|i| {
            ScwServer::numbered("fr-par-1", i, "runner-crash-")
                .project("proj-crash")
                .state("stopped")
                .modified_minutes_ago(120)
        })
        .collect();
    scw.set_zone("fr-par-1", &servers);
    let plan_url = fake.response_url("crash-plan");
    let (status, _, _) = slack_post(
        client,
        &format!("{}/slack/commands", bases[0]),
        slash_body("reap", "U0REAPER", &plan_url),
    )
    .await?;
    if status != 200 {
        bail!("/arm reap answered {status}");
    }
    let plan = fake
        .wait_for_message(Duration::from_secs(60), |m| {
            m.method == "response_url" && m.channel == "crash-plan"
        })
        .await
        .context("no reap plan")?;
    let plan_id = find_confirm(&plan.body).context("no Confirm button in the plan")?;
    let urls: Vec<String> = bases
        .iter()
        .map(|b| format!("{b}/slack/interactions"))
        .collect();
    let clicks = urls.iter().enumerate().map(|(i, url)| {
        let body = click_body(
            "reap_confirm",
            &plan_id,
            "U0REAPER",
            "C0CRASH",
            &fake.response_url(&format!("crash-click-{i}")),
        );
        slack_post(client, url, body)
    });
    for r in futures::future::join_all(clicks).await {
        let (status, _, _) = r?;
        if status != 200 {
            bail!("Confirm answered {status}");
        }
    }
    // Every click gets its answer: one report, the others "already running" or "done".
    for i in 0..bases.len() {
        let key = format!("crash-click-{i}");
        fake.wait_for_message(Duration::from_secs(60), |m| {
            m.method == "response_url" && m.channel == key
        })
        .await
        .context("a Confirm went unanswered")?;
    }
    let deleted = scw.deleted(ScwOp::DeleteServer);
    let mut wrong = 0;
    for s in &servers {
        let id = s.json()["id"].as_str().unwrap_or_default().to_string();
        if deleted.iter().filter(|d| **d == id).count() != 1 {
            wrong += 1;
        }
    }
    Ok(wrong + deleted.len().saturating_sub(servers.len()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mode = match &args.postgres {
        Some(_) => format!("{} replicas on PostgreSQL", args.replicas),
        None => "one bot on SQLite".to_string(),
    };
    println!("{mode}");
    println!(
        "| trial | events | notices expected | received | lost | duplicated | unexpected | kill -9 | takeover (s) | double Confirm | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for n in 0..args.trials {
        let t = trial(&args, n).await?;
        let takeover = if t.takeovers.is_empty() {
            "—".to_string()
        } else {
            let mut v = t.takeovers.clone();
            v.sort_by(f64::total_cmp);
            format!(
                "{:.2}–{:.2} (median {:.2})",
                v[0],
                v[v.len() - 1],
                v[v.len() / 2]
            )
        };
        let reap = if args.postgres.is_some() {
            if t.reap_wrong == 0 {
                "each server deleted once".to_string()
            } else {
                format!("{} servers wrong", t.reap_wrong)
            }
        } else {
            "—".to_string()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {takeover} | {reap} | {:.1} |",
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
        failed |= t.lost + t.duplicated + t.unexpected + t.reap_wrong > 0;
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
            parse_notice("p 16-1-stable #2 failed: rspec (script)"),
            Some(want[0].clone())
        );
        assert_eq!(
            parse_notice("p 16-1-stable #3 still failing: rspec (script)"),
            Some(want[1].clone())
        );
        assert_eq!(
            parse_notice("p 16-1-stable fixed by #4 after 10 min"),
            Some(want[2].clone())
        );
    }
}
