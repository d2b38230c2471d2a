//! The reap executor against the fake Scaleway, checked for exact call counts, a temporary
//! docker-machine store holding a fake token, and a fake release command that logs its
//! arguments.

use std::path::{Path, PathBuf};
use std::time::Duration;

use armbot::fleet::{RetryPolicy, ScalewayClient, Server};
use armbot::reap::{
    MachineIndex, Plan, PlanContext, ReapReport, ReapSettings, ResourceKind, ResourceOutcome,
    ServerOutcome, SlotOutcome, SlotReleaser, execute, plan, plan_blocks, report_blocks,
    summary_text,
};
use armbot_fakes::{FakeScaleway, ScwFailure, ScwOp, ScwServer, ScwTarget};
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// A run the service never asks to stop.
fn go() -> CancellationToken {
    CancellationToken::new()
}
const KEY: &str = "scw-secret-9c1f2e3d-aaaa-bbbb-cccc-123456789abc";
/// `Driver.Token` in `tests/data/reap/machine-config.json`.
const STORE_TOKEN: &str = "e0c4a1d7-53f2-4b9e-8c6a-7f1d2e3b4a5c";
const ZONE: &str = "fr-par-1";
const PREFIX: &str = "runner-qasr7s6-arm-";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-08-25T10:00:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

/// The confirmation comes two minutes after the plan.
fn later() -> DateTime<Utc> {
    now() + TimeDelta::minutes(2)
}

/// A test server: what Scaleway returns for it, and the `Server` the planner sees.
#[derive(Clone)]
struct Srv {
    id: String,
    minutes_ago: i64,
    state: &'static str,
    /// (id, volume_type)
    volumes: Vec<(String, &'static str)>,
    /// (id, dynamic)
    ips: Vec<(String, bool)>,
}

impl Srv {
    fn new(n: usize) -> Self {
        Srv {
            id: format!("srv-{n}"),
            // Older servers first in the plan: srv-1 before srv-2…
            minutes_ago: 1000 - i64::try_from(n).expect("small"),
            state: "stopped in place",
            volumes: Vec::new(),
            ips: vec![(format!("ip-{n}"), false)],
        }
    }

    fn name(&self) -> String {
        format!("{PREFIX}{}", self.id)
    }

    fn machine(&self) -> String {
        format!("runner-qasr7s6-gitlab-runner-{}", self.id)
    }

    /// What Scaleway returns for it: an arm64 `COPARM1-4C-16G` in `proj-1`, the first volume
    /// booting.
    fn json(&self) -> Value {
        let mut server = ScwServer::new(ZONE, &self.id, self.name())
            .state(self.state)
            .modified(now() - TimeDelta::minutes(self.minutes_ago));
        for (i, (id, kind)) in self.volumes.iter().enumerate() {
            server = if i == 0 {
                server.boot_volume(id, kind)
            } else {
                server.volume(id, kind)
            };
        }
        for (id, dynamic) in &self.ips {
            server = server.ip(id, *dynamic);
        }
        server.json()
    }

    fn server(&self) -> Server {
        serde_json::from_value(self.json()).expect("server JSON")
    }

    fn running(&self) -> Self {
        Srv {
            state: "running",
            minutes_ago: 1,
            ..self.clone()
        }
    }

    fn get(&self) -> ScwTarget {
        ScwOp::GetServer.on(&self.id)
    }

    fn delete(&self) -> ScwTarget {
        ScwOp::DeleteServer.on(&self.id)
    }
}

fn volume(id: &str) -> ScwTarget {
    ScwOp::DeleteVolume.on(id)
}

fn block(id: &str) -> ScwTarget {
    ScwOp::DeleteBlockVolume.on(id)
}

fn ip(id: &str) -> ScwTarget {
    ScwOp::DeleteIp.on(id)
}

/// The fake Scaleway, a docker-machine store and a release command logging to a file.
struct Harness {
    scw: FakeScaleway,
    dir: TempDir,
}

impl Harness {
    async fn new() -> Self {
        let scw = FakeScaleway::start().await;
        scw.require_key(KEY);
        Harness {
            scw,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Scaleway has `srv` (as `srv.json()` says), its volumes and its IPs.
    fn exists(&self, srv: &Srv) {
        self.scw.add_server(ZONE, srv.json());
    }

    /// Scaleway received exactly these calls, each this many times, and no other.
    fn verify(&self, expected: &[(ScwTarget, usize)]) {
        for (target, times) in expected {
            assert_eq!(self.scw.count(target.clone()), *times, "{target:?}");
        }
        let all: usize = expected.iter().map(|(_, n)| n).sum();
        assert_eq!(self.scw.calls().len(), all, "{:#?}", self.scw.calls());
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("docker-machine")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("released.log")
    }

    /// A store entry from the recorded shape, pointing at `srv`.
    fn add_machine(&self, srv: &Srv) {
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reap/machine-config.json"
        ))
        .expect("template");
        let mut config: Value = serde_json::from_str(&template).expect("template JSON");
        config["Name"] = json!(srv.machine());
        config["Driver"]["MachineName"] = json!(srv.machine());
        config["Driver"]["ServerID"] = json!(srv.id);
        let dir = self.store().join("machines").join(srv.machine());
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("config.json"), config.to_string()).expect("write");
    }

    /// A shell script standing in for `docker-machine rm -f`, run as argv (no shell parses
    /// the machine name). `fail` makes it complain on stderr, quoting the token, and exit 1.
    fn script(&self, fail: bool) -> PathBuf {
        let script = self.dir.path().join("release.sh");
        let body = if fail {
            format!("echo \"Error removing host $3: token {STORE_TOKEN} rejected\" >&2\nexit 1\n")
        } else {
            format!("echo \"$1 $2 $3\" >> '{}'\n", self.log().display())
        };
        std::fs::write(&script, body).expect("script");
        script
    }

    fn settings(&self, fail_release: bool) -> ReapSettings {
        ReapSettings {
            name_prefix: Some(PREFIX.into()),
            machine_store: Some(self.store()),
            release_command: vec![
                "/bin/sh".into(),
                self.script(fail_release).display().to_string(),
                "rm".into(),
                "-f".into(),
                "{machine}".into(),
            ],
            release_timeout_secs: 10,
            transient_delay_ms: 1,
            ..ReapSettings::default()
        }
    }

    fn client(&self) -> ScalewayClient {
        ScalewayClient::new(
            &self.scw.uri(),
            SecretString::from(KEY),
            Duration::from_secs(5),
        )
        .with_retry_policy(RetryPolicy {
            max_attempts: 2,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(5),
        })
    }

    /// The lines the fake release command logged, sorted (runs are concurrent).
    fn released(&self) -> Vec<String> {
        let mut lines: Vec<String> = std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }
}

fn ctx() -> PlanContext {
    PlanContext {
        zones: vec![ZONE.into()],
        project: Some("proj-1".into()),
    }
}

/// Plan over `servers` with the store as the harness left it.
fn make_plan(h: &Harness, settings: &ReapSettings, servers: &[Srv]) -> Plan {
    let index = MachineIndex::read(&h.store()).expect("store readable");
    let servers: Vec<Server> = servers.iter().map(Srv::server).collect();
    plan(&servers, Some(&index), settings, &ctx(), now())
}

async fn run(h: &Harness, settings: &ReapSettings, plan: &Plan) -> ReapReport {
    let releaser = SlotReleaser::from_settings(settings).expect("store configured");
    execute(
        plan,
        &h.client(),
        Some(&releaser),
        settings,
        &ctx(),
        later,
        &go(),
    )
    .await
}

fn assert_no_token(what: &str, text: &str) {
    assert!(
        !text.contains(STORE_TOKEN),
        "the store token leaked into {what}"
    );
    assert!(!text.contains(KEY), "the API key leaked into {what}");
}

#[tokio::test]
async fn happy_path_removes_two_servers_and_frees_their_slots() {
    let h = Harness::new().await;
    let mut a = Srv::new(1);
    a.volumes = vec![("vol-a".into(), "l_ssd")];
    let mut b = Srv::new(2);
    b.volumes = vec![("vol-b".into(), "sbs_volume"), ("vol-s".into(), "scratch")];
    b.ips.push(("ip-dyn".into(), true));
    for srv in [&a, &b] {
        h.add_machine(srv);
        h.exists(srv);
    }

    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, &[a.clone(), b.clone()]);
    assert_eq!(plan.selected.len(), 2);
    assert_eq!(plan.runner_slots(), 2);
    let report = run(&h, &settings, &plan).await;
    h.verify(&[
        (a.get(), 1),
        (a.delete(), 1),
        (ip("ip-1"), 1),
        (volume("vol-a"), 1),
        (b.get(), 1),
        (b.delete(), 1),
        (ip("ip-2"), 1),
        (block("vol-b"), 1),
        // Scratch volumes go with their server: the 404 counts as done.
        (volume("vol-s"), 1),
        // A dynamic IP is released by Scaleway itself.
        (ip("ip-dyn"), 0),
    ]);
    assert!(!h.scw.has_volume(ZONE, "vol-a") && !h.scw.has_volume(ZONE, "vol-b"));
    assert!(!h.scw.has_ip(ZONE, "ip-1") && !h.scw.has_ip(ZONE, "ip-2"));

    assert_eq!(report.plan_id, plan.id);
    assert_eq!(report.stopped_early, None);
    assert_eq!(report.started_at, later());
    let c = report.counts();
    assert_eq!(
        (
            c.servers_removed,
            c.volumes_removed,
            c.ips_removed,
            c.slots_freed,
            c.failed
        ),
        (2, 3, 2, 2, 0)
    );
    assert_eq!(
        report.quota_freed().into_iter().collect::<Vec<_>>(),
        [("COPARM1-4C-16G".to_owned(), 2)]
    );
    assert_eq!(
        h.released(),
        [
            format!("rm -f {}", a.machine()),
            format!("rm -f {}", b.machine())
        ]
    );
    let scratch = report.results[1]
        .resources
        .iter()
        .find(|r| r.id == "vol-s")
        .expect("scratch volume reported");
    assert_eq!(scratch.outcome, ResourceOutcome::AlreadyGone);
    assert!(matches!(scratch.kind, ResourceKind::Volume { .. }));
    assert_eq!(
        summary_text(&report, "U123"),
        "<@U123> removed 2 stuck builders."
    );

    // The store token appears nowhere the bot could show or log.
    let index = MachineIndex::read(&h.store()).expect("store");
    assert_no_token("the index", &format!("{index:?}"));
    assert_no_token("the plan", &format!("{plan:?}"));
    assert_no_token(
        "the stored plan",
        &serde_json::to_string(&plan).expect("json"),
    );
    assert_no_token("the report", &format!("{report:?}"));
    assert_no_token(
        "the plan blocks",
        &Value::from(plan_blocks(&plan, &plan.id)).to_string(),
    );
    assert_no_token(
        "the report blocks",
        &Value::from(report_blocks(&report, &plan, "U123")).to_string(),
    );
}

#[tokio::test]
async fn a_server_started_again_is_skipped_untouched() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.add_machine(&srv);
    h.exists(&srv.running());
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.verify(&[(srv.get(), 1), (srv.delete(), 0), (ip("ip-1"), 0)]);
    assert_eq!(
        report.results[0].outcome,
        ServerOutcome::Skipped {
            reason: "started again since the plan (now `running`)".into()
        }
    );
    assert_eq!(report.results[0].slot, SlotOutcome::NotAttempted);
    assert!(h.released().is_empty());
    assert_eq!(report.counts().skipped, 1);
}

#[tokio::test]
async fn a_server_whose_resources_changed_is_skipped() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    let mut grown = srv.clone();
    grown.volumes.push(("vol-new".into(), "sbs_volume"));
    h.add_machine(&srv);
    h.exists(&grown);
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.verify(&[(srv.get(), 1), (srv.delete(), 0)]);
    assert_eq!(
        report.results[0].outcome,
        ServerOutcome::Skipped {
            reason: "its volumes or flexible IPs changed since the plan".into()
        }
    );
}

#[tokio::test]
async fn gone_servers_still_get_their_resources_and_slots_cleaned() {
    let h = Harness::new().await;
    // srv-1 disappears between the re-read and the delete; srv-2 is gone before the re-read.
    let one = Srv::new(1);
    let two = Srv::new(2);
    h.add_machine(&one);
    h.add_machine(&two);
    h.exists(&one);
    h.scw.fail_next(
        one.delete(),
        1,
        ScwFailure::not_found("instance_server", &one.id),
    );
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, &[one.clone(), two.clone()]);
    let report = run(&h, &settings, &plan).await;
    h.verify(&[
        (one.get(), 1),
        (one.delete(), 1),
        (ip("ip-1"), 1),
        (two.get(), 1),
        (two.delete(), 0),
        // Gone with its server: 404.
        (ip("ip-2"), 1),
    ]);
    assert_eq!(h.scw.deleted(ScwOp::DeleteIp), ["ip-1"]);
    for result in &report.results {
        assert_eq!(result.outcome, ServerOutcome::AlreadyGone);
        assert_eq!(result.slot, SlotOutcome::Freed);
    }
    let c = report.counts();
    assert_eq!(
        (c.already_gone, c.servers_removed, c.ips_removed),
        (2, 0, 2)
    );
    assert!(report.quota_freed().is_empty(), "someone else freed it");
    assert_eq!(h.released().len(), 2);
    assert_eq!(
        summary_text(&report, "U123"),
        "<@U123> removed 2 stuck builders."
    );
}

#[tokio::test]
async fn a_transient_state_is_retried_within_the_run() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.add_machine(&srv);
    h.exists(&srv);
    // Busy once (409), then deleted (204).
    h.scw.fail_next(
        srv.delete(),
        1,
        ScwFailure::transient_state(&srv.id, "stopping"),
    );
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.verify(&[(srv.get(), 1), (srv.delete(), 2), (ip("ip-1"), 1)]);
    assert_eq!(report.results[0].outcome, ServerOutcome::Removed);
    assert_eq!(report.results[0].slot, SlotOutcome::Freed);
}

#[tokio::test]
async fn a_transient_state_that_lasts_fails_that_server_only() {
    let h = Harness::new().await;
    let (one, two) = (Srv::new(1), Srv::new(2));
    for srv in [&one, &two] {
        h.add_machine(srv);
        h.exists(srv);
    }
    let busy = ScwFailure::error(
        409,
        json!({
            "type": "transient_state", "message": "resource is in a transient state",
            "current_state": "stopping"
        }),
    );
    h.scw.fail_always(one.delete(), busy);
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, &[one.clone(), two.clone()]);
    let report = run(&h, &settings, &plan).await;
    h.verify(&[
        (one.get(), 1),
        // transient_attempts = 3: three tries, then the server is reported failed.
        (one.delete(), 3),
        (ip("ip-1"), 0),
        (two.get(), 1),
        (two.delete(), 1),
        (ip("ip-2"), 1),
    ]);
    assert!(matches!(
        &report.results[0].outcome,
        ServerOutcome::Failed { reason } if reason.contains("changing state (`stopping`)")
    ));
    assert_eq!(report.results[0].slot, SlotOutcome::NotAttempted);
    assert_eq!(report.results[1].outcome, ServerOutcome::Removed);
    assert_eq!(report.stopped_early, None);
    assert_eq!(h.released(), [format!("rm -f {}", two.machine())]);
    let summary = summary_text(&report, "U123");
    assert!(
        summary == "<@U123> removed 1 of 2 stuck builders; 1 with a failure.",
        "{summary}"
    );
    let blocks = Value::from(report_blocks(&report, &plan, "U123")).to_string();
    assert!(
        blocks.contains(":x: `srv-1` · fr-par-1: not removed: The server is changing state"),
        "{blocks}"
    );
}

#[tokio::test]
async fn permission_denied_stops_the_run() {
    let h = Harness::new().await;
    let servers: Vec<Srv> = (1..=3)
        .map(|n| {
            let mut s = Srv::new(n);
            s.volumes = vec![(format!("vol-{n}"), "l_ssd")];
            s
        })
        .collect();
    for srv in &servers {
        h.add_machine(srv);
        h.exists(srv);
    }
    h.scw.fail_always(
        servers[0].delete(),
        ScwFailure::error(
            403,
            json!({"type": "permissions_denied", "message": "insufficient permissions"}),
        ),
    );
    let settings = ReapSettings {
        concurrency: 1,
        ..h.settings(false)
    };
    let plan = make_plan(&h, &settings, &servers);
    let report = run(&h, &settings, &plan).await;
    h.verify(&[
        (servers[0].get(), 1),
        (servers[0].delete(), 1),
        // Nothing else is touched: not srv-1's volume or IP, not the later servers at all.
        (volume("vol-1"), 0),
        (ip("ip-1"), 0),
        (servers[1].get(), 0),
        (servers[1].delete(), 0),
        (servers[2].get(), 0),
        (servers[2].delete(), 0),
    ]);

    let why = report.stopped_early.as_deref().expect("stopped early");
    assert_eq!(
        why,
        "Scaleway refused to delete server `runner-qasr7s6-arm-srv-1`: The Scaleway key lacks \
         permission to delete a server in project `proj-1`: give it InstancesFullAccess in \
         that project. The run stopped: servers not yet started were left alone."
    );
    assert!(matches!(
        report.results[0].outcome,
        ServerOutcome::Failed { .. }
    ));
    for result in &report.results[1..] {
        assert!(matches!(result.outcome, ServerOutcome::NotAttempted { .. }));
        assert_eq!(result.slot, SlotOutcome::NotAttempted);
    }
    assert!(h.released().is_empty());
    let c = report.counts();
    assert_eq!((c.failed, c.not_attempted), (1, 2));
    let blocks = Value::from(report_blocks(&report, &plan, "U123")).to_string();
    assert!(
        blocks.contains(":octagonal_sign: Scaleway refused"),
        "{blocks}"
    );
}

#[tokio::test]
async fn an_invalid_key_on_the_reread_stops_the_run_too() {
    let h = Harness::new().await;
    let (one, two) = (Srv::new(1), Srv::new(2));
    for srv in [&one, &two] {
        h.add_machine(srv);
        h.exists(srv);
    }
    h.scw
        .fail_always(one.get(), ScwFailure::denied_authentication("expired"));
    let settings = ReapSettings {
        concurrency: 1,
        ..h.settings(false)
    };
    let plan = make_plan(&h, &settings, &[one.clone(), two.clone()]);
    let report = run(&h, &settings, &plan).await;
    h.verify(&[(one.get(), 1), (two.get(), 0)]);
    assert!(
        report
            .stopped_early
            .as_deref()
            .is_some_and(|w| w.contains("SCW_SECRET_KEY"))
    );
    assert!(matches!(
        report.results[1].outcome,
        ServerOutcome::NotAttempted { .. }
    ));
}

#[tokio::test]
async fn a_failing_slot_release_is_recorded_without_the_token() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.add_machine(&srv);
    h.exists(&srv);
    let settings = h.settings(true);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.verify(&[(srv.get(), 1), (srv.delete(), 1), (ip("ip-1"), 1)]);
    let result = &report.results[0];
    assert_eq!(result.outcome, ServerOutcome::Removed);
    let SlotOutcome::Failed { reason } = &result.slot else {
        panic!("expected a failed release, got {:?}", result.slot);
    };
    assert_eq!(
        reason,
        &format!(
            "`/bin/sh` failed (exit status: 1): Error removing host {}: token [redacted] rejected",
            srv.machine()
        )
    );
    let c = report.counts();
    assert_eq!((c.servers_removed, c.slots_freed, c.failed), (1, 0, 1));
    assert_no_token("the report", &format!("{report:?}"));
    let summary = summary_text(&report, "U123");
    assert_eq!(
        summary,
        "<@U123> removed 1 stuck builder; 1 with a failure."
    );
    let blocks = Value::from(report_blocks(&report, &plan, "U123")).to_string();
    assert!(
        blocks.contains(&format!(
            ":x: `srv-1` · fr-par-1: removed, but runner slot (`{}`) not freed: `/bin/sh` failed",
            srv.machine()
        )),
        "{blocks}"
    );
    assert_no_token("the report", &blocks);
}

#[tokio::test]
async fn without_a_store_the_report_says_how_the_slot_frees() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.exists(&srv);
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        transient_delay_ms: 1,
        ..ReapSettings::default()
    };
    assert_eq!(SlotReleaser::from_settings(&settings), None);
    let plan = plan(&[srv.server()], None, &settings, &ctx(), now());
    assert!(!plan.machines_known);
    let report = execute(&plan, &h.client(), None, &settings, &ctx(), later, &go()).await;
    h.verify(&[(srv.get(), 1), (srv.delete(), 1), (ip("ip-1"), 1)]);
    assert_eq!(report.results[0].outcome, ServerOutcome::Removed);
    assert_eq!(report.results[0].slot, SlotOutcome::NoStore);
    assert!(report.no_store());
    let blocks = Value::from(report_blocks(&report, &plan, "U123")).to_string();
    assert!(
        blocks.contains(
            "Runner slots were not freed (no docker-machine store): run `docker-machine rm -f \
             &lt;machine&gt;` on the runner manager."
        ),
        "{blocks}"
    );
}

#[tokio::test]
async fn the_cap_holds_even_if_settings_shrank_since_the_plan() {
    let h = Harness::new().await;
    let (one, two) = (Srv::new(1), Srv::new(2));
    h.exists(&one);
    h.exists(&two);
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        ..ReapSettings::default()
    };
    let plan = plan(
        &[one.server(), two.server()],
        None,
        &settings,
        &ctx(),
        now(),
    );
    let tighter = ReapSettings {
        max_per_run: 1,
        ..settings
    };
    let report = execute(&plan, &h.client(), None, &tighter, &ctx(), later, &go()).await;
    h.verify(&[
        (one.get(), 1),
        (one.delete(), 1),
        (ip("ip-1"), 1),
        (two.get(), 0),
    ]);
    assert_eq!(report.results[0].outcome, ServerOutcome::Removed);
    assert_eq!(
        report.results[1].outcome,
        ServerOutcome::NotAttempted {
            reason: "over the per-run cap of 1".into()
        }
    );
}

/// The wiring spawns the run on the runtime: its future must be `Send`.
#[test]
fn the_run_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let client = ScalewayClient::new(
        "http://127.0.0.1:9",
        SecretString::from(KEY),
        Duration::ZERO,
    );
    let settings = ReapSettings::default();
    let ctx = ctx();
    let plan = plan(&[], None, &settings, &ctx, now());
    let halt = go();
    let run = execute(&plan, &client, None, &settings, &ctx, Utc::now, &halt);
    assert_send(&run);
}

#[tokio::test]
async fn an_expired_plan_does_nothing() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.exists(&srv);
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        ..ReapSettings::default()
    };
    let plan = plan(&[srv.server()], None, &settings, &ctx(), now());
    let report = execute(
        &plan,
        &h.client(),
        None,
        &settings,
        &ctx(),
        || now() + TimeDelta::minutes(11),
        &go(),
    )
    .await;
    h.verify(&[(srv.get(), 0), (srv.delete(), 0)]);
    // The time as each reader's local time, with UTC for clients that cannot.
    assert_eq!(
        report.stopped_early.as_deref(),
        Some(
            format!(
                "This plan expired at <!date^{}^{{time}}|10:10 UTC>, so nothing was done: run \
                 `/arm reap` again for a fresh one.",
                plan.expires_at.timestamp()
            )
            .as_str()
        )
    );
    assert!(matches!(
        report.results[0].outcome,
        ServerOutcome::NotAttempted { .. }
    ));
}

/// The most servers in flight at once, read from the order Scaleway received the calls in: a
/// GET starts one, the DELETE of its IP (its last Scaleway call) ends it. A server's slot in the
/// executor frees only after that DELETE's answer, so the observed maximum can only exceed the
/// bound if the bound is broken; the answers' delay makes the executor fill every slot it has,
/// so the maximum reaches the bound.
fn most_in_flight(scw: &FakeScaleway) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for call in scw.calls() {
        match call.op {
            ScwOp::GetServer => {
                now += 1;
                max = max.max(now);
            }
            ScwOp::DeleteIp => now -= 1,
            _ => {}
        }
    }
    max
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let h = Harness::new().await;
    let servers: Vec<Srv> = (1..=6).map(Srv::new).collect();
    for srv in &servers {
        h.exists(srv);
    }
    h.scw.set_latency(Duration::from_millis(30));
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        concurrency: 2,
        ..ReapSettings::default()
    };
    let all: Vec<Server> = servers.iter().map(Srv::server).collect();
    let plan = plan(&all, None, &settings, &ctx(), now());
    let report = execute(&plan, &h.client(), None, &settings, &ctx(), later, &go()).await;
    let expected: Vec<(ScwTarget, usize)> = servers
        .iter()
        .flat_map(|srv| [(srv.get(), 1), (srv.delete(), 1), (ip(&srv.ips[0].0), 1)])
        .collect();
    h.verify(&expected);
    assert_eq!(report.counts().servers_removed, 6);
    assert_eq!(most_in_flight(&h.scw), 2);
    // The report keeps the plan's order whatever order the servers finished in.
    let ids: Vec<&str> = report
        .results
        .iter()
        .map(|r| r.server_id.as_str())
        .collect();
    assert_eq!(ids, ["srv-1", "srv-2", "srv-3", "srv-4", "srv-5", "srv-6"]);
}

#[tokio::test]
async fn the_releaser_passes_the_name_as_one_argument_and_refuses_odd_names() {
    let h = Harness::new().await;
    let settings = h.settings(false);
    let releaser = SlotReleaser::from_settings(&settings).expect("configured");
    releaser.release("runner-a.b-1").await.expect("released");
    assert_eq!(h.released(), ["rm -f runner-a.b-1"]);
    let err = releaser
        .release("x; touch /tmp/pwned")
        .await
        .expect_err("refused");
    assert!(err.user_message().contains("not a docker-machine name"));

    let missing = SlotReleaser::new(
        vec!["/nonexistent/docker-machine".into(), "{machine}".into()],
        Duration::from_secs(5),
    );
    let err = missing.release("m1").await.expect_err("cannot spawn");
    assert_eq!(
        err.user_message(),
        "could not run `/nonexistent/docker-machine`: entity not found"
    );

    let empty = SlotReleaser::new(Vec::new(), Duration::from_secs(5));
    let err = empty.release("m1").await.expect_err("nothing to run");
    assert_eq!(
        err.user_message(),
        "`release_command` under `[reap]` is empty"
    );

    let slow = SlotReleaser::new(
        vec!["/bin/sh".into(), "-c".into(), "sleep 5 # {machine}".into()],
        Duration::from_millis(50),
    );
    let err = slow.release("m1").await.expect_err("times out");
    assert!(
        err.user_message().contains("did not finish within"),
        "{err}"
    );
}

#[test]
fn the_store_index_reads_only_what_it_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path();
    let write = |name: &str, body: &str| {
        let d = store.join("machines").join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("config.json"), body).expect("write");
    };
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/reap/machine-config.json"
    ))
    .expect("template");
    write("runner-good", &template);
    write("runner-dup", &template);
    write(
        "runner-creating",
        r#"{"Driver": {"ServerID": "", "Token": "x"}}"#,
    );
    write("runner-broken", "{\"Driver\": ");
    write("-rf", &template);
    std::fs::create_dir_all(store.join("machines").join("runner-empty")).expect("mkdir");
    let index = MachineIndex::read(store).expect("readable");
    assert_eq!(index.len(), 1);
    assert!(!index.is_empty());
    // Sorted: runner-dup wins the shared ServerID; runner-good is the duplicate.
    assert_eq!(
        index.machine_for("3b1f6c2e-9d47-4a8b-b5e0-2c7d9f4a1e36"),
        Some("runner-dup")
    );
    // broken, no config.json, bad name, duplicate; a machine still being created is fine.
    assert_eq!(index.skipped(), 4);
    assert_no_token("the index", &format!("{index:?}"));

    let err = MachineIndex::read(Path::new("/nonexistent/store")).expect_err("no store");
    assert_no_token("the error", &err.to_string());
    assert_eq!(
        err.user_message(),
        "The bot cannot read the docker-machine store `/nonexistent/store/machines` (entity not \
         found), so it cannot tell which runner machines hold the stuck servers. Check \
         `machine_store` under `[reap]` and the bot's access to it."
    );
    assert!(MachineIndex::default().is_empty());
}
