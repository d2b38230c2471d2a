//! The benchmark harness: runs every measurement of the benchmarks issue
//! against a release `armbot` and the references, side by side in one run,
//! and prints one markdown table. Run it with `bench/run`.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use armbot_bench::{
    hostile,
    load::{self, Body, Hit, percentile_ms},
    payloads::Payloads,
    pg::Schema,
    process::{Bot, Reference, release_binary},
    slack::{SIGNING_SECRET, click_body, find_confirm, post as slack_post, slash_body},
};
use armbot_fakes::{FakeScaleway, FakeSlack, ScwCall, ScwOp, ScwServer, scaleway::fake_id};
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Repetitions of every measurement; medians are quoted with min and max.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds instead of minutes: tiny loads, one repetition (a smoke run).
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    armbot: Option<PathBuf>,
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// GitLab's documented pipeline example, grown into the payloads.
    #[arg(long, default_value = "examples/failed-pipeline.json")]
    example: PathBuf,
    /// A markdown table from `bench/micro` whose rows join this table.
    #[arg(long)]
    micro: Option<PathBuf>,
    /// Run only these sections (ingest, e2e, slash, status, reap, memory, hostile, takeover).
    #[arg(long = "only")]
    only: Vec<String>,
    /// A PostgreSQL server: ingestion is also measured on it, and the replica takeover.
    #[arg(long, env = "ARMBOT_TEST_POSTGRES_URL")]
    postgres: Option<String>,
}

const SLACK_TOKEN: &str = "xoxb-bench";
const PROJECT: &str = "b0000000-0000-4000-8000-00000000b0b0";
const NAME_PREFIX: &str = "runner-bench-arm-";
const CHANNEL: &str = "C0BENCH";
const REAPER: &str = "U0REAPER";
const ZONES: [&str; 3] = ["fr-par-1", "nl-ams-1", "pl-waw-1"];
/// The fleet watch would list the fake fleet (and post about it) beside what a section
/// measures: sections that configure Scaleway turn it off.
const NO_WATCH: &str = "\n[watch]\nenabled = false\n";

/// Requests a second of the fixed-rate ingestion run.
const PACED_RATE: f64 = 200.0;

/// The token `process::Bot` starts the bot with.
static GITLAB_TOKEN_HEADER: std::sync::LazyLock<[(String, String); 1]> =
    std::sync::LazyLock::new(|| [("x-gitlab-token".into(), "bench-token".into())]);

/// Values of one figure over the repetitions.
#[derive(Default, Clone)]
struct Series(Vec<f64>);

impl Series {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn show(&self, f: impl Fn(f64) -> String) -> String {
        let v = self.sorted();
        match v.as_slice() {
            [] => "—".into(),
            [one] => f(*one),
            [first, .., last] => format!("{} ({}–{})", f(self.median()), f(*first), f(*last)),
        }
    }
}

fn rate(v: f64) -> String {
    let n = v.round() as u64;
    if n >= 1000 {
        format!("{},{:03}/s", n / 1000, n % 1000)
    } else {
        format!("{n}/s")
    }
}
/// A count with a thousands separator, as the rates are written.
fn count(n: usize) -> String {
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}
fn secs(v: f64) -> String {
    format!("{v:.2} s")
}
fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}
fn times(v: f64) -> String {
    format!("{v:.2}x")
}
fn size(bytes: usize) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.0} KB", bytes as f64 / 1e3)
    }
}
fn mib(v: f64) -> String {
    format!("{v:.1} MB")
}

struct Row {
    item: &'static str,
    what: String,
    bot: String,
    reference: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

struct Harness {
    args: Args,
    armbot: PathBuf,
    loadgen: PathBuf,
    payloads: Payloads,
    rows: Vec<Row>,
    next_id: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.reps = 1;
    }
    let armbot = args
        .armbot
        .clone()
        .unwrap_or_else(|| release_binary("armbot"));
    let loadgen = args
        .loadgen
        .clone()
        .unwrap_or_else(|| release_binary("loadgen"));
    // Absolute, since the bot runs in a directory of its own.
    let [armbot, loadgen] = [armbot, loadgen].map(|b| {
        b.canonicalize().with_context(|| {
            format!(
                "{} is missing: build it first (bench/run does)",
                b.display()
            )
        })
    });
    let (armbot, loadgen) = (armbot?, loadgen?);
    let payloads = Payloads::load(&args.example)?;
    let mut h = Harness {
        args,
        armbot,
        loadgen,
        payloads,
        rows: Vec::new(),
        next_id: 1_000_000,
    };
    let started = Instant::now();
    if h.wants("ingest") {
        h.ingest(None).await.context("ingestion")?;
        if let Some(pg) = h.args.postgres.clone() {
            h.ingest(Some(&pg))
                .await
                .context("ingestion on PostgreSQL")?;
        }
    }
    if h.wants("takeover") {
        match h.args.postgres.clone() {
            Some(pg) => h.takeover(&pg).await.context("takeover")?,
            None => eprintln!("harness: takeover skipped (no --postgres)"),
        }
    }
    if h.wants("e2e") {
        h.end_to_end().await.context("end to end")?;
    }
    if h.wants("slash") {
        h.slash_ack().await.context("slash ack")?;
    }
    if h.wants("status") {
        h.status().await.context("status")?;
    }
    if h.wants("reap") {
        h.reap().await.context("reap")?;
    }
    if h.wants("memory") {
        h.memory().await.context("memory")?;
    }
    if h.wants("hostile") {
        h.hostile().await.context("hostile clients")?;
    }
    h.micro()?;
    h.print();
    eprintln!(
        "harness: {} repetition(s) in {:.0} s",
        h.args.reps,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn scale(quick: bool, full: usize, small: usize) -> usize {
    if quick { small } else { full }
}

/// One ARM builder as the Instance API describes it: arm64, one Block Storage volume, no
/// flexible IP, in `state` since `age` minutes.
fn builder(zone: &str, n: usize, state: &str, age: i64) -> ScwServer {
    ScwServer::numbered(zone, n, &format!("{NAME_PREFIX}{zone}-"))
        .project(PROJECT)
        .state(state)
        .modified_minutes_ago(age)
        .volume(&fake_id(&format!("{zone}/volumes"), n), "sbs_volume")
}

/// A fake Scaleway whose every answer takes `latency`, as a loaded API would.
async fn scaleway(latency: Duration) -> FakeScaleway {
    let scw = FakeScaleway::start().await;
    scw.require_key("bench-scw-secret");
    scw.set_latency(latency);
    scw
}

/// A fake Slack expecting the bot's token.
async fn slack() -> FakeSlack {
    let slack = FakeSlack::start().await;
    slack.set_token(Some(SLACK_TOKEN));
    slack
}

fn scaleway_env(scw: &FakeScaleway) -> Vec<(&'static str, String)> {
    vec![
        ("SCW_SECRET_KEY", "bench-scw-secret".into()),
        ("SCW_API_URL", scw.uri()),
        ("SCW_DEFAULT_ZONE", ZONES[0].into()),
        ("SCW_DEFAULT_PROJECT_ID", PROJECT.into()),
    ]
}

fn slack_env(slack: &FakeSlack) -> Vec<(&'static str, String)> {
    vec![
        ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ("SLACK_API_URL", slack.api_url()),
        ("ARMBOT_NOTIFY_CHANNEL", CHANNEL.into()),
    ]
}

/// Checks that the deletes of `op` among `calls` removed each of `want` exactly once.
fn deleted_once(calls: &[ScwCall], op: ScwOp, want: &[String]) -> anyhow::Result<()> {
    let mut got: BTreeMap<&str, usize> = BTreeMap::new();
    for c in calls
        .iter()
        .filter(|c| c.op == op && (200..300).contains(&c.status))
    {
        *got.entry(c.id.as_deref().unwrap_or_default()).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = want.iter().map(|id| (id.as_str(), 1)).collect();
    if got != expected {
        let wrong = got
            .iter()
            .filter(|(id, n)| expected.get(*id) != Some(*n))
            .count();
        let missing = expected.keys().filter(|id| !got.contains_key(*id)).count();
        bail!(
            "{op:?}: {} successful deletes for {} ids; {missing} never deleted, {wrong} deleted \
             more than once or not planned",
            got.values().sum::<usize>(),
            want.len()
        );
    }
    Ok(())
}

impl Harness {
    fn wants(&self, section: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|s| s == section)
    }

    fn ids(&mut self, n: usize) -> u64 {
        let first = self.next_id;
        self.next_id += n as u64 + 1;
        first
    }

    /// Item 1: throughput and latency against the reference, per payload; on the embedded
    /// SQLite store, or on PostgreSQL when `postgres` names a server.
    async fn ingest(&mut self, postgres: Option<&str>) -> anyhow::Result<()> {
        let q = self.args.quick;
        let notified = |bytes: usize, full: usize, small: usize| {
            (
                "notified failure",
                Body::unique(self.payloads.failure_of_size(bytes)),
                scale(q, full, small),
                "≥ 50 %",
                0.50,
            )
        };
        let cases: Vec<(&str, Body, usize, &str, f64)> = vec![
            (
                "ignored event (feature branch)",
                Body::fixed(self.payloads.ignored()),
                scale(q, 4000, 200),
                "≥ 80 %",
                0.80,
            ),
            (
                "ignored event (feature branch, 20 jobs)",
                Body::fixed(self.payloads.ignored_with_jobs(20)),
                scale(q, 4000, 200),
                "≥ 80 %",
                0.80,
            ),
            notified(10_000, 3000, 150),
            notified(300_000, 1500, 60),
            notified(5_000_000, 120, 10),
        ];
        let schema = match postgres {
            Some(base) => Some(Schema::create(base).await?),
            None => None,
        };
        let env: Vec<(&str, String)> = schema
            .iter()
            .map(|s| ("ARMBOT_DATABASE_URL", s.url.clone()))
            .collect();
        let bot = Bot::start(&self.armbot, "", &env).await?;
        let reference = Reference::start(&self.loadgen).await?;
        let token: &'static [(String, String)] = &*GITLAB_TOKEN_HEADER;
        let mut results: Vec<(Series, Series, Series, Series, Series)> =
            vec![Default::default(); cases.len()];
        // The fixed-rate run: 10 KB notified failures, each with its own id, at
        // PACED_RATE a second on schedule (open loop), so a slow answer cannot slow the
        // load down and hide behind it.
        let paced = Body::unique(self.payloads.failure_of_size(10_000));
        let paced_requests = scale(q, PACED_RATE as usize * 10, 100);
        let (mut paced_p50, mut paced_p99) = (Series::default(), Series::default());
        for _ in 0..self.args.reps {
            // Before the repetition's closed-loop runs; every earlier request has been answered,
            // so this is the only load in flight.
            let first_id = self.ids(paced_requests);
            let s = load::hit_at_rate(
                Hit {
                    url: &format!("{}/gitlab/webhook", bot.url),
                    body: &paced,
                    headers: token,
                    requests: paced_requests,
                    // Generous: at 200/s and a few ms each, a handful are in flight.
                    concurrency: 256,
                    first_id,
                },
                PACED_RATE,
            )
            .await?;
            if s.errors > 0 {
                bail!(
                    "{} of {paced_requests} requests at {PACED_RATE}/s failed",
                    s.errors
                );
            }
            paced_p50.push(s.pct(0.50));
            paced_p99.push(s.pct(0.99));
            for (i, (_, body, requests, _, _)) in cases.iter().enumerate() {
                let mut run = |url: &str, headers: &'static [(String, String)]| {
                    let url = format!("{url}/gitlab/webhook");
                    let first_id = self.ids(*requests);
                    async move {
                        load::hit(Hit {
                            url: &url,
                            body,
                            headers,
                            requests: *requests,
                            concurrency: 16,
                            first_id,
                        })
                        .await
                    }
                };
                let r = run(&reference.url, &[]).await?;
                let b = run(&bot.url, token).await?;
                if b.errors > 0 || r.errors > 0 {
                    bail!(
                        "{}: {} bot errors, {} reference errors",
                        cases[i].0,
                        b.errors,
                        r.errors
                    );
                }
                let s = &mut results[i];
                s.0.push(b.throughput());
                s.1.push(r.throughput());
                s.2.push(b.throughput() / r.throughput());
                s.3.push(b.pct(0.50));
                s.4.push(b.pct(0.99));
            }
        }
        reference.stop().await;
        bot.stop().await;
        if let Some(schema) = schema {
            schema.drop_it().await?;
        }
        let engine = if postgres.is_some() {
            " on PostgreSQL"
        } else {
            ""
        };
        for ((what, body, _, target, goal), (bt, rt, ratio, p50, p99)) in
            cases.into_iter().zip(results)
        {
            self.rows.push(Row {
                item: "1",
                what: format!(
                    "ingestion{engine}: {what}, {}, 16 connections",
                    size(body.len())
                ),
                bot: format!(
                    "{}; p50 {}; p99 {}",
                    bt.show(rate),
                    p50.show(ms),
                    p99.show(ms)
                ),
                reference: rt.show(rate),
                ratio: ratio.show(pct),
                target: target.into(),
                met: Some(ratio.median() >= goal),
            });
        }
        self.rows.push(Row {
            item: "1",
            what: format!(
                "ingestion{engine}: notified failure at {PACED_RATE} requests/s, {}, open loop ({} requests, latency from each scheduled start)",
                size(paced.len()),
                count(paced_requests)
            ),
            bot: format!("p50 {}; p99 {}", paced_p50.show(ms), paced_p99.show(ms)),
            reference: "—".into(),
            ratio: "—".into(),
            target: "p99 < 5 ms".into(),
            met: Some(paced_p99.median() < 5.0),
        });
        Ok(())
    }

    /// Two replicas on one PostgreSQL database: the time from a SIGKILL of the one that
    /// delivers until the other says it holds the lease.
    async fn takeover(&mut self, base: &str) -> anyhow::Result<()> {
        let schema = Schema::create(base).await?;
        let env = [("ARMBOT_DATABASE_URL", schema.url.clone())];
        let mut bots = vec![
            Bot::start(&self.armbot, "", &env).await?,
            Bot::start(&self.armbot, "", &env).await?,
        ];
        let mut times = Series::default();
        for _ in 0..self.args.reps.max(3) {
            let deadline = Instant::now() + Duration::from_secs(30);
            let leader = loop {
                if let Some(i) = leader_of(&bots).await {
                    break i;
                }
                if Instant::now() > deadline {
                    bail!("no replica took the lease");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let killed = bots.remove(leader);
            let standby = bots[0].url.clone();
            let started = Instant::now();
            killed.kill9().await;
            while !armbot_bench::process::leads(&standby).await {
                if started.elapsed() > Duration::from_secs(60) {
                    bail!("the standby did not take over");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            times.push(started.elapsed().as_secs_f64());
            bots.push(Bot::start(&self.armbot, "", &env).await?);
        }
        for b in bots {
            b.stop().await;
        }
        schema.drop_it().await?;
        self.rows.push(Row {
            item: "16",
            what: "takeover: kill -9 of the delivering replica until the other delivers (2 replicas, PostgreSQL)".into(),
            bot: times.show(secs),
            reference: "—".into(),
            ratio: "—".into(),
            target: "seconds".into(),
            met: None,
        });
        Ok(())
    }

    /// Item 2: webhook in → `chat.postMessage` at a fake Slack that answers at once.
    async fn end_to_end(&mut self) -> anyhow::Result<()> {
        let slack = slack().await;
        // Slack's own pacing (one message a second per channel) is switched off: this
        // measures the bot, and every notice here would otherwise wait its turn.
        let bot = Bot::start(
            &self.armbot,
            "[slack]\nmin_interval_ms = 0\n",
            &slack_env(&slack),
        )
        .await?;
        let client = reqwest::Client::new();
        let n = scale(self.args.quick, 200, 20);
        let (mut p50, mut p99) = (Series::default(), Series::default());
        for _ in 0..self.args.reps {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let id = self.ids(1);
                let body = self.payloads.tag_failure(&format!("v99.{id}.0"), id);
                let needle = format!(" #{id} failed");
                let t = Instant::now();
                let r = client
                    .post(format!("{}/gitlab/webhook", bot.url))
                    .header("x-gitlab-token", "bench-token")
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("webhook answered {}", r.status());
                }
                let got = slack
                    .wait_for_message(Duration::from_secs(10), |m| {
                        m.method == "chat.postMessage" && m.text.contains(&needle)
                    })
                    .await
                    .with_context(|| format!("no notice for pipeline {id} within 10 s"))?;
                lat.push(got.at.duration_since(t));
            }
            lat.sort();
            p50.push(percentile_ms(&lat, 0.50));
            p99.push(percentile_ms(&lat, 0.99));
        }
        bot.stop().await;
        self.rows.push(Row {
            item: "2",
            what: format!("end to end: webhook → chat.postMessage, {n} notices one after another"),
            bot: format!("p50 {}; p99 {}", p50.show(ms), p99.show(ms)),
            reference: "—".into(),
            ratio: "—".into(),
            target: "p50 < 50 ms".into(),
            met: Some(p50.median() < 50.0),
        });
        Ok(())
    }

    /// Item 3: the immediate ack of `/arm status` while Scaleway takes 5 s.
    async fn slash_ack(&mut self) -> anyhow::Result<()> {
        let scw = scaleway(Duration::from_secs(5)).await;
        scw.set_zone(
            ZONES[0],
            (0..30).map(|n| builder(ZONES[0], n, "running", 30)),
        );
        let slack = slack().await;
        let toml = format!(
            "[fleet]\nzones = [\"{}\"]\nname_prefix = \"{NAME_PREFIX}\"\n{NO_WATCH}",
            ZONES[0],
        );
        let mut env = slack_env(&slack);
        env.extend(scaleway_env(&scw));
        let bot = Bot::start(&self.armbot, &toml, &env).await?;
        let waves = scale(self.args.quick, 4, 1);
        let (mut p50, mut p99, mut max) = (Series::default(), Series::default(), Series::default());
        let mut delivered = 0usize;
        let mut sent = 0usize;
        for rep in 0..self.args.reps {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(50)
                .build()?;
            let url = format!("{}/slack/commands", bot.url);
            let mut tasks = Vec::new();
            for c in 0..50 {
                let (client, url, slack) = (client.clone(), url.clone(), slack.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    for w in 0..waves {
                        let key = format!("ack-{rep}-{c}-{w}");
                        let body = slash_body("status", "U0ASKER", &slack.response_url(&key));
                        let (status, text, took) = slack_post(&client, &url, body).await?;
                        if status != 200 || !text.contains("Looking at") {
                            bail!("ack was {status}: {text}");
                        }
                        lat.push(took);
                    }
                    anyhow::Ok(lat)
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await??);
            }
            lat.sort();
            sent += lat.len();
            p50.push(percentile_ms(&lat, 0.50));
            p99.push(percentile_ms(&lat, 0.99));
            max.push(percentile_ms(&lat, 1.0));
            // Every command's report must still arrive, about 5 s later.
            let want = lat.len();
            let prefix = format!("ack-{rep}-");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let got = slack
                    .messages()
                    .iter()
                    .filter(|m| m.method == "response_url" && m.channel.starts_with(&prefix))
                    .count();
                if got >= want || Instant::now() > deadline {
                    delivered += got;
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), slack.changed()).await;
            }
        }
        bot.stop().await;
        self.rows.push(Row {
            item: "3",
            what: format!(
                "slash ack: `/arm status`, 50 concurrent senders × {waves}, Scaleway answering in 5 s ({delivered}/{sent} reports delivered)"
            ),
            bot: format!("p99 {}; p50 {}; max {}", p99.show(ms), p50.show(ms), max.show(ms)),
            reference: "—".into(),
            ratio: "—".into(),
            target: "p99 < 50 ms".into(),
            met: Some(p99.median() < 50.0 && delivered == sent),
        });
        Ok(())
    }

    /// Item 4: `/arm status` over 1,000 servers in 3 zones against one zone alone.
    async fn status(&mut self) -> anyhow::Result<()> {
        let latency = Duration::from_millis(50);
        let scw = scaleway(latency).await;
        let states = [
            "running",
            "running",
            "running",
            "stopped",
            "starting",
            "stopped in place",
        ];
        let mut n = 0;
        for (z, zone) in ZONES.iter().enumerate() {
            let count = if z == 0 { 334 } else { 333 };
            scw.set_zone(
                zone,
                (0..count)
                    .map(|i| {
                        n += 1;
                        builder(zone, n, states[i % states.len()], 60)
                    })
                    .collect::<Vec<_>>(),
            );
        }
        // The same 1,000 servers in one zone: ten pages one after another.
        scw.set_zone(
            "fr-par-2",
            (0..1000).map(|i| builder("fr-par-2", i, states[i % states.len()], 60)),
        );
        let slack = slack().await;
        let toml = format!(
            "[fleet]\nzones = [{}]\nname_prefix = \"{NAME_PREFIX}\"\nrunner_cap = 1200\n{NO_WATCH}",
            ZONES.map(|z| format!("\"{z}\"")).join(", "),
        );
        let mut env = slack_env(&slack);
        env.extend(scaleway_env(&scw));
        let bot = Bot::start(&self.armbot, &toml, &env).await?;
        let client = reqwest::Client::new();
        let url = format!("{}/slack/commands", bot.url);
        let samples = scale(self.args.quick, 5, 1);
        let cases = [
            ("status", "3 zones"),
            ("status fr-par-1", "1 zone"),
            ("status fr-par-2", "1 zone, 1,000"),
        ];
        let mut walls: Vec<Series> = vec![Series::default(); cases.len()];
        let mut ratio = Series::default();
        let mut k = 0;
        for _ in 0..self.args.reps {
            let mut medians = Vec::new();
            for (i, (text, _)) in cases.iter().enumerate() {
                let mut one = Vec::new();
                for _ in 0..samples {
                    k += 1;
                    let key = format!("status-{k}");
                    let body = slash_body(text, "U0ASKER", &slack.response_url(&key));
                    let t = Instant::now();
                    let (status, _, _) = slack_post(&client, &url, body).await?;
                    if status != 200 {
                        bail!("status command answered {status}");
                    }
                    let got = slack
                        .wait_for_message(Duration::from_secs(60), |m| {
                            m.method == "response_url" && m.channel == key
                        })
                        .await
                        .context("no status report within 60 s")?;
                    if !got.text.contains("servers") && !got.text.contains("builders") {
                        eprintln!("status report: {}", got.text);
                    }
                    one.push(got.at.duration_since(t).as_secs_f64());
                }
                let m = Series(one).median();
                walls[i].push(m);
                medians.push(m);
            }
            ratio.push(medians[0] / medians[1]);
        }
        bot.stop().await;
        let lat = latency.as_millis();
        self.rows.push(Row {
            item: "4",
            what: format!("status: 1,000 servers in 3 zones (334/333/333) vs one zone alone (334), Scaleway {lat} ms per call"),
            bot: format!("{} vs {}", walls[0].show(secs), walls[1].show(secs)),
            reference: "—".into(),
            ratio: ratio.show(times),
            target: "< 2x".into(),
            met: Some(ratio.median() < 2.0),
        });
        self.rows.push(Row {
            item: "4",
            what: format!(
                "status: 1,000 servers in one zone (10 pages of 100), Scaleway {lat} ms per call"
            ),
            bot: walls[2].show(secs),
            reference: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            met: None,
        });
        Ok(())
    }

    /// Item 5: reap of 100 stuck servers at 200 ms per call, bounded against serial.
    async fn reap(&mut self) -> anyhow::Result<()> {
        let servers = scale(self.args.quick, 100, 10);
        let scw = scaleway(Duration::from_millis(200)).await;
        let slack = slack().await;
        let mut env = slack_env(&slack);
        env.extend(scaleway_env(&scw));
        let mut walls: Vec<Series> = vec![Series::default(); 2];
        let concurrency = [8usize, 1];
        let mut k = 0;
        for (c, conc) in concurrency.iter().enumerate() {
            let toml = format!(
                "[fleet]\nzones = [\"{z}\"]\nname_prefix = \"{p}\"\n\n[reap]\nallowed_users = [\"{REAPER}\"]\nmax_per_run = {servers}\nconcurrency = {conc}\nname_prefix = \"{p}\"\n{NO_WATCH}",
                z = ZONES[0],
                p = NAME_PREFIX,
            );
            let bot = Bot::start(&self.armbot, &toml, &env).await?;
            let client = reqwest::Client::new();
            for _ in 0..self.args.reps {
                k += 1;
                let fleet: Vec<ScwServer> = (0..servers)
                    .map(|n| builder(ZONES[0], n, "stopped", 120))
                    .collect();
                scw.set_zone(ZONES[0], &fleet);
                scw.take_calls();
                let plan_key = format!("reap-plan-{k}");
                let body = slash_body("reap", REAPER, &slack.response_url(&plan_key));
                slack_post(&client, &format!("{}/slack/commands", bot.url), body).await?;
                let plan = slack
                    .wait_for_message(Duration::from_secs(60), |m| {
                        m.method == "response_url" && m.channel == plan_key
                    })
                    .await
                    .context("no reap plan within 60 s")?;
                let plan_id = find_confirm(&plan.body)
                    .with_context(|| format!("no Confirm button in the plan: {}", plan.text))?;
                let done_key = format!("reap-done-{k}");
                let form = click_body(
                    "reap_confirm",
                    &plan_id,
                    REAPER,
                    CHANNEL,
                    &slack.response_url(&done_key),
                );
                let t = Instant::now();
                let (status, _, _) =
                    slack_post(&client, &format!("{}/slack/interactions", bot.url), form).await?;
                if status != 200 {
                    bail!("confirm answered {status}");
                }
                slack
                    .wait_for_message(Duration::from_secs(600), |m| {
                        m.method == "response_url" && m.channel == done_key
                    })
                    .await
                    .context("no reap report within 10 minutes")?;
                walls[c].push(t.elapsed().as_secs_f64());
                let left = scw.server_count(ZONES[0]);
                if left != 0 {
                    bail!("{left} of {servers} servers were left after the reap");
                }
                // Each server and its one volume, once, and nothing else.
                let calls = scw.take_calls();
                let ids = |f: fn(&ScwServer) -> String| fleet.iter().map(f).collect::<Vec<_>>();
                deleted_once(&calls, ScwOp::DeleteServer, &ids(|s| s.id.clone()))?;
                deleted_once(
                    &calls,
                    ScwOp::DeleteBlockVolume,
                    &ids(|s| s.volumes[0].id.clone()),
                )?;
                for op in [ScwOp::DeleteVolume, ScwOp::DeleteIp] {
                    deleted_once(&calls, op, &[])?;
                }
            }
            bot.stop().await;
        }
        let speedup = walls[1].median() / walls[0].median();
        self.rows.push(Row {
            item: "5",
            what: format!("reap: {servers} stuck servers, 200 ms per Scaleway call (re-read, delete server, delete volume), concurrency 8 vs 1"),
            bot: format!("{} vs {}", walls[0].show(secs), walls[1].show(secs)),
            reference: "—".into(),
            ratio: format!("{} faster", times(speedup)),
            target: "≥ 5x".into(),
            met: Some(speedup >= 5.0),
        });
        Ok(())
    }

    /// Item 6: resident set idle, and the peak during 200 concurrent 5 MB webhooks.
    async fn memory(&mut self) -> anyhow::Result<()> {
        let body = Body::unique(self.payloads.failure_of_size(5_000_000));
        let clients = scale(self.args.quick, 200, 20);
        let (mut idle, mut peak) = (Series::default(), Series::default());
        let token: &[(String, String)] = &*GITLAB_TOKEN_HEADER;
        for _ in 0..self.args.reps {
            let bot = Bot::start(&self.armbot, "", &[]).await?;
            // Let start-up allocations settle before reading the idle figure.
            tokio::time::sleep(Duration::from_millis(500)).await;
            idle.push(bot.memory_kib()?.0 as f64 / 1024.0);
            let first_id = self.ids(clients);
            let s = load::hit(Hit {
                url: &format!("{}/gitlab/webhook", bot.url),
                body: &body,
                headers: token,
                requests: clients,
                concurrency: clients,
                first_id,
            })
            .await?;
            if s.errors > 0 {
                bail!("{} of {clients} 5 MB webhooks failed", s.errors);
            }
            peak.push(bot.memory_kib()?.1 as f64 / 1024.0);
            bot.stop().await;
        }
        self.rows.push(Row {
            item: "6",
            what: "memory: resident set idle (console mode, fresh store)".into(),
            bot: idle.show(mib),
            reference: "—".into(),
            ratio: "—".into(),
            target: "< 30 MB".into(),
            met: Some(idle.median() < 30.0),
        });
        self.rows.push(Row {
            item: "6",
            what: format!(
                "memory: peak resident set during {clients} concurrent {} webhooks",
                size(body.len())
            ),
            bot: peak.show(mib),
            reference: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            met: None,
        });
        Ok(())
    }

    /// Hostile clients (issue 14): resident set after bursts of unauthenticated uploads,
    /// `/healthz` while half-open connections are hoarded, SIGTERM with stalled connections.
    async fn hostile(&mut self) -> anyhow::Result<()> {
        let quick = self.args.quick;
        let n = scale(quick, 300, 30);
        let mib_body = vec![b'x'; 1024 * 1024 - 1024];
        let slack_sized = vec![b'x'; 250 * 1024];
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        let bad_slack = |len: usize| {
            format!(
                "POST /slack/events HTTP/1.1\r\nHost: bench\r\nX-Slack-Request-Timestamp: {}\r\nX-Slack-Signature: v0={}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n",
                now(),
                "0".repeat(64)
            )
        };
        let no_token = |len: usize| {
            format!(
                "POST /gitlab/webhook HTTP/1.1\r\nHost: bench\r\nX-Gitlab-Event: Pipeline Hook\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
            )
        };
        let forged = |len: usize, i: usize| {
            format!(
                "POST /gitlab/webhook HTTP/1.1\r\nHost: bench\r\nwebhook-id: forged-{i}\r\nwebhook-timestamp: {}\r\nwebhook-signature: v1,AAAA\r\nContent-Length: {len}\r\n\r\n",
                now()
            )
        };
        let slack_secret = [("SLACK_SIGNING_SECRET", SIGNING_SECRET.to_string())];
        let signing_only = [
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET.to_string()),
            ("GITLAB_WEBHOOK_TOKEN", String::new()),
            (
                "GITLAB_WEBHOOK_SIGNING_TOKEN",
                "whsec_YmVuY2gtc2lnbmluZy1rZXktMzItYnl0ZXMtbG9uZyEh".to_string(),
            ),
        ];
        type Heads<'a> = Box<dyn Fn(usize) -> String + 'a>;
        /// What a burst is, the bot's environment, each request's head, the body.
        type Burst<'a> = (&'a str, &'a [(&'a str, String)], Heads<'a>, &'a [u8]);
        let bursts: [Burst; 3] = [
            (
                "~1 MiB uploads, half GitLab without a token, half Slack with a wrong signature",
                &slack_secret,
                Box::new(|i| {
                    if i % 2 == 0 {
                        no_token(mib_body.len())
                    } else {
                        bad_slack(mib_body.len())
                    }
                }),
                &mib_body,
            ),
            (
                "250 KiB Slack requests with a wrong signature (read before they can be verified)",
                &slack_secret,
                Box::new(|_| bad_slack(slack_sized.len())),
                &slack_sized,
            ),
            (
                "~1 MiB GitLab uploads with forged signature headers, signing-token-only setup (read before they can be verified)",
                &signing_only,
                Box::new(|i| forged(mib_body.len(), i)),
                &mib_body,
            ),
        ];
        for (what, env, heads, body) in bursts {
            let (mut idle, mut peak, mut after) =
                (Series::default(), Series::default(), Series::default());
            let mut answers = String::new();
            for _ in 0..self.args.reps {
                let bot = Bot::start(&self.armbot, "", env).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                idle.push(bot.memory_kib()?.0 as f64 / 1024.0);
                let counts = hostile::burst(bot.addr()?, n, &heads, body).await;
                peak.push(bot.memory_kib()?.1 as f64 / 1024.0);
                // What is left once the burst is over (freed memory given back).
                tokio::time::sleep(Duration::from_secs(2)).await;
                after.push(bot.memory_kib()?.0 as f64 / 1024.0);
                answers = counts
                    .iter()
                    .map(|(c, k)| format!("{k}×{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                bot.stop().await;
            }
            let growth = after.median() - idle.median();
            self.rows.push(Row {
                item: "H",
                what: format!(
                    "hostile: {n} concurrent {what}: resident set idle / peak / after ({answers})"
                ),
                bot: format!(
                    "{} / {} / {}",
                    idle.show(mib),
                    peak.show(mib),
                    after.show(mib)
                ),
                reference: "—".into(),
                ratio: format!("+{growth:.1} MB after"),
                target: "after ≤ idle + 64 MB".into(),
                met: Some(growth <= 64.0),
            });
        }

        // /healthz while 1,100 half-open connections are hoarded, at 1,024 open files.
        let hoarders = scale(quick, 1100, 200);
        let probes = scale(quick, 120, 20);
        let bot = Bot::start_limited(&self.armbot, "", &[], Some(1024)).await?;
        let addr = bot.addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let hoard = hostile::hoard(addr, hoarders, stop_rx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut latencies = Vec::new();
        let mut failed = 0;
        let mut failures = Vec::new();
        for _ in 0..probes {
            let (status, took) = hostile::timed_get(addr, "/healthz", Duration::from_secs(5)).await;
            if status == 200 {
                latencies.push(took);
            } else {
                failed += 1;
                failures.push(format!(
                    "{status} after {}",
                    ms(took.as_secs_f64() * 1000.0)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop_tx.send(true);
        let closed = hoard.await.unwrap_or(0);
        bot.stop().await;
        latencies.sort_unstable();
        self.rows.push(Row {
            item: "H",
            what: format!(
                "hostile: /healthz every 100 ms for {:.0} s while {hoarders} half-open connections are held (open-file limit 1,024; {closed} closed by the bot and reopened): p50 / p99 / max",
                probes as f64 / 10.0
            ),
            bot: format!(
                "{} / {} / {}, {failed} of {probes} failed{}",
                ms(percentile_ms(&latencies, 0.5)),
                ms(percentile_ms(&latencies, 0.99)),
                ms(percentile_ms(&latencies, 1.0)),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(" (status 0 = closed unanswered: {})", failures.join(", "))
                }
            ),
            reference: "—".into(),
            ratio: "—".into(),
            target: "every probe answered".into(),
            met: Some(failed == 0),
        });

        // SIGTERM with a half-sent request and a stalled body open.
        let mut exits = Series::default();
        let mut all_zero = true;
        for _ in 0..self.args.reps {
            let bot = Bot::start(&self.armbot, "", &[]).await?;
            let stalled = hostile::stalled_pair(bot.addr()?, "bench-token").await?;
            let (took, ok) = bot.terminate(Duration::from_secs(60)).await?;
            drop(stalled);
            exits.push(took.as_secs_f64());
            all_zero &= ok;
        }
        self.rows.push(Row {
            item: "H",
            what: "hostile: SIGTERM to exit with a half-sent request and a stalled body open (shutdown_timeout_secs 10)".into(),
            bot: format!("{}, exit 0: {}", exits.show(secs), if all_zero { "yes" } else { "**no**" }),
            reference: "—".into(),
            ratio: "—".into(),
            target: "≤ 10 s, exit 0".into(),
            met: Some(all_zero && exits.median() <= 10.5),
        });
        Ok(())
    }

    /// Item 7: the criterion table from `bench/micro`, row by row.
    fn micro(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.args.micro else {
            return Ok(());
        };
        let table = std::fs::read_to_string(path)?;
        for line in table.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() < 2 || cells[0] == "benchmark" || cells[0].starts_with("---") {
                continue;
            }
            // Criterion's figure is its estimate with a 95 % confidence interval,
            // not a median over repetitions.
            let throughput = cells.get(2).filter(|c| !c.is_empty() && **c != "—");
            self.rows.push(Row {
                item: "7",
                what: format!("micro (criterion): {}", cells[0]),
                bot: match throughput {
                    Some(t) => format!("{} (95 % CI); {t}", cells[1]),
                    None => format!("{} (95 % CI)", cells[1]),
                },
                reference: "—".into(),
                ratio: "—".into(),
                target: "—".into(),
                met: None,
            });
        }
        Ok(())
    }

    fn print(&self) {
        println!(
            "| # | measurement | armbot: median (min–max) | reference | ratio | target | met |"
        );
        println!("|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.item, r.what, r.bot, r.reference, r.ratio, r.target, met
            );
        }
    }
}

/// Which of `bots` holds the lease, if one says so.
async fn leader_of(bots: &[Bot]) -> Option<usize> {
    for (i, b) in bots.iter().enumerate() {
        if b.leads().await {
            return Some(i);
        }
    }
    None
}
