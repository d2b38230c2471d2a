//! The reap executor against a wiremock Scaleway that expects exact call counts, a temporary
//! docker-machine store holding a fake token, and a fake release command that logs its
//! arguments.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use armbot::fleet::{RetryPolicy, ScalewayClient, Server};
use armbot::reap::{
    MachineIndex, NO_STORE_NOTE, Plan, PlanContext, ReapReport, ReapSettings, ResourceKind,
    ResourceOutcome, ServerOutcome, SlotOutcome, SlotReleaser, execute, plan, plan_blocks,
    report_blocks, summary_text,
};
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

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

    fn json(&self) -> Value {
        let volumes: serde_json::Map<String, Value> = self
            .volumes
            .iter()
            .enumerate()
            .map(|(i, (id, kind))| {
                (
                    i.to_string(),
                    json!({"id": id, "volume_type": kind, "boot": i == 0, "zone": ZONE}),
                )
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|(id, dynamic)| json!({"id": id, "address": "51.15.0.1", "dynamic": dynamic}))
            .collect();
        json!({
            "id": self.id,
            "name": self.name(),
            "arch": "arm64",
            "commercial_type": "COPARM1-4C-16G",
            "project": "proj-1",
            "zone": ZONE,
            "state": self.state,
            "protected": false,
            "tags": [],
            "modification_date": (now() - TimeDelta::minutes(self.minutes_ago)).to_rfc3339(),
            "volumes": volumes,
            "public_ips": ips,
        })
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

    fn url(&self) -> String {
        format!("/instance/v1/zones/{ZONE}/servers/{}", self.id)
    }
}

fn volume_url(id: &str) -> String {
    format!("/instance/v1/zones/{ZONE}/volumes/{id}")
}

fn block_url(id: &str) -> String {
    format!("/block/v1alpha1/zones/{ZONE}/volumes/{id}")
}

fn ip_url(id: &str) -> String {
    format!("/instance/v1/zones/{ZONE}/ips/{id}")
}

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "type": "not_found", "message": "resource is not found",
        "resource": "instance_server", "resource_id": "x"
    }))
}

/// A wiremock Scaleway, a docker-machine store and a release command logging to a file.
struct Harness {
    scw: MockServer,
    dir: TempDir,
}

impl Harness {
    async fn new() -> Self {
        Harness {
            scw: MockServer::start().await,
            dir: tempfile::tempdir().expect("tempdir"),
        }
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

    async fn mock(&self, verb: &str, url: &str, answer: ResponseTemplate, times: u64) {
        Mock::given(method(verb))
            .and(path(url))
            .respond_with(answer)
            .expect(times)
            .mount(&self.scw)
            .await;
    }

    /// GET answers with `srv` as Scaleway would.
    async fn get(&self, srv: &Srv, times: u64) {
        self.mock(
            "GET",
            &srv.url(),
            ResponseTemplate::new(200).set_body_json(json!({"server": srv.json()})),
            times,
        )
        .await;
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
    execute(plan, &h.client(), Some(&releaser), settings, &ctx(), later).await
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
        h.get(srv, 1).await;
        h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 1)
            .await;
        h.mock(
            "DELETE",
            &ip_url(&srv.ips[0].0),
            ResponseTemplate::new(204),
            1,
        )
        .await;
    }
    h.mock(
        "DELETE",
        &volume_url("vol-a"),
        ResponseTemplate::new(204),
        1,
    )
    .await;
    h.mock("DELETE", &block_url("vol-b"), ResponseTemplate::new(204), 1)
        .await;
    // Scratch volumes go with their server: the 404 counts as done.
    h.mock("DELETE", &volume_url("vol-s"), not_found(), 1).await;
    // A dynamic IP is released by Scaleway itself.
    h.mock("DELETE", &ip_url("ip-dyn"), ResponseTemplate::new(204), 0)
        .await;

    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, &[a.clone(), b.clone()]);
    assert_eq!(plan.selected.len(), 2);
    assert_eq!(plan.runner_slots(), 2);
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;

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
        "<@U123> reaped 2 stuck builders: 2 servers, 3 volumes, 2 IPs removed, 2 runner slots freed"
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
    h.get(&srv.running(), 1).await;
    h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 0)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 0)
        .await;
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
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
    h.get(&grown, 1).await;
    h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 0)
        .await;
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
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
    h.get(&one, 1).await;
    h.mock("DELETE", &one.url(), not_found(), 1).await;
    h.mock("GET", &two.url(), not_found(), 1).await;
    h.mock("DELETE", &two.url(), ResponseTemplate::new(204), 0)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 1)
        .await;
    h.mock("DELETE", &ip_url("ip-2"), not_found(), 1).await;
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, &[one.clone(), two.clone()]);
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
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
        "<@U123> reaped 2 stuck builders: 0 servers, 0 volumes, 2 IPs removed, 2 runner slots \
         freed; 2 already gone"
    );
}

#[tokio::test]
async fn a_transient_state_is_retried_within_the_run() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.add_machine(&srv);
    h.get(&srv, 1).await;
    Mock::given(method("DELETE"))
        .and(path(srv.url()))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "type": "transient_state", "message": "resource is in a transient state",
            "resource": "instance_server", "resource_id": srv.id, "current_state": "stopping"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.scw)
        .await;
    h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 1)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 1)
        .await;
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
    assert_eq!(report.results[0].outcome, ServerOutcome::Removed);
    assert_eq!(report.results[0].slot, SlotOutcome::Freed);
}

#[tokio::test]
async fn a_transient_state_that_lasts_fails_that_server_only() {
    let h = Harness::new().await;
    let (one, two) = (Srv::new(1), Srv::new(2));
    for srv in [&one, &two] {
        h.add_machine(srv);
        h.get(srv, 1).await;
    }
    let busy = ResponseTemplate::new(409).set_body_json(json!({
        "type": "transient_state", "message": "resource is in a transient state",
        "current_state": "stopping"
    }));
    // transient_attempts = 3: three tries, then the server is reported failed.
    h.mock("DELETE", &one.url(), busy, 3).await;
    h.mock("DELETE", &two.url(), ResponseTemplate::new(204), 1)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 0)
        .await;
    h.mock("DELETE", &ip_url("ip-2"), ResponseTemplate::new(204), 1)
        .await;
    let settings = h.settings(false);
    let plan = make_plan(&h, &settings, &[one.clone(), two.clone()]);
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
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
        summary.starts_with("<@U123> reaped 1 of 2 stuck builders: 1 server,"),
        "{summary}"
    );
    assert!(
        summary.contains("; 1 failed: `runner-qasr7s6-arm-srv-1` (The server is changing state"),
        "{summary}"
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
    }
    h.get(&servers[0], 1).await;
    h.mock(
        "DELETE",
        &servers[0].url(),
        ResponseTemplate::new(403).set_body_json(
            json!({"type": "permissions_denied", "message": "insufficient permissions"}),
        ),
        1,
    )
    .await;
    // Nothing else is touched: not srv-1's volume or IP, not the later servers at all.
    h.mock(
        "DELETE",
        &volume_url("vol-1"),
        ResponseTemplate::new(204),
        0,
    )
    .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 0)
        .await;
    for srv in &servers[1..] {
        h.get(srv, 0).await;
        h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 0)
            .await;
    }
    let settings = ReapSettings {
        concurrency: 1,
        ..h.settings(false)
    };
    let plan = make_plan(&h, &settings, &servers);
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;

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
    h.add_machine(&one);
    h.add_machine(&two);
    h.mock(
        "GET",
        &one.url(),
        ResponseTemplate::new(401).set_body_json(json!({
            "type": "denied_authentication", "method": "api_key", "reason": "expired",
            "message": "authentication is denied"
        })),
        1,
    )
    .await;
    h.get(&two, 0).await;
    let settings = ReapSettings {
        concurrency: 1,
        ..h.settings(false)
    };
    let plan = make_plan(&h, &settings, &[one, two]);
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
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
    h.get(&srv, 1).await;
    h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 1)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 1)
        .await;
    let settings = h.settings(true);
    let plan = make_plan(&h, &settings, std::slice::from_ref(&srv));
    let report = run(&h, &settings, &plan).await;
    h.scw.verify().await;
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
    assert!(
        summary.contains("1 failed: `runner-qasr7s6-arm-srv-1` (runner slot: `/bin/sh` failed"),
        "{summary}"
    );
    assert_no_token("the summary", &summary);
}

#[tokio::test]
async fn without_a_store_the_report_says_how_the_slot_frees() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.get(&srv, 1).await;
    h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 1)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 1)
        .await;
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        transient_delay_ms: 1,
        ..ReapSettings::default()
    };
    assert_eq!(SlotReleaser::from_settings(&settings), None);
    let plan = plan(&[srv.server()], None, &settings, &ctx(), now());
    assert!(!plan.machines_known);
    let report = execute(&plan, &h.client(), None, &settings, &ctx(), later).await;
    h.scw.verify().await;
    assert_eq!(report.results[0].outcome, ServerOutcome::Removed);
    assert_eq!(report.results[0].slot, SlotOutcome::NoStore);
    assert!(report.no_store());
    assert!(NO_STORE_NOTE.contains(
        "the runner slot frees only when gitlab-runner gives up on the machine (about 30 \
         removal attempts on runner ≥ 19.1, never on older runners)"
    ));
    let blocks = Value::from(report_blocks(&report, &plan, "U123")).to_string();
    assert!(blocks.contains("gives up on the machine"), "{blocks}");
}

#[tokio::test]
async fn the_cap_holds_even_if_settings_shrank_since_the_plan() {
    let h = Harness::new().await;
    let (one, two) = (Srv::new(1), Srv::new(2));
    h.get(&one, 1).await;
    h.mock("DELETE", &one.url(), ResponseTemplate::new(204), 1)
        .await;
    h.mock("DELETE", &ip_url("ip-1"), ResponseTemplate::new(204), 1)
        .await;
    h.get(&two, 0).await;
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
    let report = execute(&plan, &h.client(), None, &tighter, &ctx(), later).await;
    h.scw.verify().await;
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
    let run = execute(&plan, &client, None, &settings, &ctx, Utc::now);
    assert_send(&run);
}

#[tokio::test]
async fn an_expired_plan_does_nothing() {
    let h = Harness::new().await;
    let srv = Srv::new(1);
    h.get(&srv, 0).await;
    h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 0)
        .await;
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        ..ReapSettings::default()
    };
    let plan = plan(&[srv.server()], None, &settings, &ctx(), now());
    let report = execute(&plan, &h.client(), None, &settings, &ctx(), || {
        now() + TimeDelta::minutes(11)
    })
    .await;
    h.scw.verify().await;
    assert!(
        report
            .stopped_early
            .as_deref()
            .is_some_and(|w| w.starts_with("This plan expired at 10:10 UTC"))
    );
    assert!(matches!(
        report.results[0].outcome,
        ServerOutcome::NotAttempted { .. }
    ));
}

/// Counts servers in flight: a GET starts one, the DELETE of its IP (its last Scaleway call)
/// ends it. A server's slot in the executor frees only after that DELETE's answer, so the
/// observed maximum can only exceed the bound if the bound is broken; the GET delay makes
/// the executor fill every slot it has, so the maximum reaches the bound.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

struct Start(Arc<InFlight>, Vec<Srv>);

impl Respond for Start {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let current = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max.fetch_max(current, Ordering::SeqCst);
        let srv = self
            .1
            .iter()
            .find(|s| request.url.path() == s.url())
            .expect("a known server");
        ResponseTemplate::new(200)
            .set_body_json(json!({"server": srv.json()}))
            .set_delay(Duration::from_millis(30))
    }
}

struct End(Arc<InFlight>);

impl Respond for End {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        ResponseTemplate::new(204)
    }
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let h = Harness::new().await;
    let servers: Vec<Srv> = (1..=6).map(Srv::new).collect();
    let gauge = Arc::new(InFlight::default());
    for srv in &servers {
        Mock::given(method("GET"))
            .and(path(srv.url()))
            .respond_with(Start(gauge.clone(), servers.clone()))
            .expect(1)
            .mount(&h.scw)
            .await;
        h.mock("DELETE", &srv.url(), ResponseTemplate::new(204), 1)
            .await;
        Mock::given(method("DELETE"))
            .and(path(ip_url(&srv.ips[0].0)))
            .respond_with(End(gauge.clone()))
            .expect(1)
            .mount(&h.scw)
            .await;
    }
    let settings = ReapSettings {
        name_prefix: Some(PREFIX.into()),
        concurrency: 2,
        ..ReapSettings::default()
    };
    let all: Vec<Server> = servers.iter().map(Srv::server).collect();
    let plan = plan(&all, None, &settings, &ctx(), now());
    let report = execute(&plan, &h.client(), None, &settings, &ctx(), later).await;
    h.scw.verify().await;
    assert_eq!(report.counts().servers_removed, 6);
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
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
