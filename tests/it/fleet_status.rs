//! `/arm status`: the pure report on a synthetic fleet, its Slack rendering, and the gathering
//! end to end against wiremock Scaleway and runner servers.

use std::time::{Duration, Instant};

use armbot::fleet::status::{CapStatus, QuotaLine, QuotaStatus, StateCounts};
use armbot::fleet::{
    FleetContext, FleetSettings, Operation, Quotum, QuotumLimit, RetryPolicy, ScalewayEnv,
    ScwError, Server, ServerState, StatusReport, gather_status,
};
use armbot::runner::{MachineStates, RunnerMetricsError};
use armbot_fakes::{FakeScaleway, ScwFailure, ScwOp, ScwServer};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-08-25T10:00:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

fn builder(name: &str, state: ServerState, minutes_ago: i64) -> Server {
    Server {
        id: format!("id-{name}"),
        name: name.to_owned(),
        arch: "arm64".to_owned(),
        commercial_type: "BASIC2-A4C-8G".to_owned(),
        state,
        modification_date: Some(now() - TimeDelta::minutes(minutes_ago)),
        ..Server::default()
    }
}

fn settings() -> FleetSettings {
    FleetSettings {
        zones: vec!["fr-par-1".into(), "fr-par-2".into(), "nl-ams-1".into()],
        name_prefix: Some("runner-qasr7s6-arm-".into()),
        tags: vec!["arm-builder".into()],
        project_id: Some("proj-1".into()),
        runner_cap: Some(30),
        ..FleetSettings::default()
    }
}

/// fr-par-1: 3 running, 3 shut down (one fresh, one protected), and servers that are not
/// builders; fr-par-2: a locked builder and an end-of-service one; nl-ams-1: unreadable.
fn synthetic_zones() -> Vec<(String, Result<Vec<Server>, ScwError>)> {
    let p = "runner-qasr7s6-arm-";
    let mut protected = builder(&format!("{p}4"), ServerState::Stopped, 120);
    protected.protected = true;
    let mut tagged = builder("elegant-shirley", ServerState::Running, 10);
    tagged.tags = vec!["arm-builder".into()];
    let mut x86 = builder(&format!("{p}x86"), ServerState::Stopped, 600);
    x86.arch = "x86_64".into();
    let other = builder("someone-elses-arm", ServerState::StoppedInPlace, 600);
    let mut eos = builder(&format!("{p}old"), ServerState::Running, 5);
    eos.commercial_type = "AMP2-C4".into();
    eos.end_of_service = true;
    vec![
        (
            "fr-par-1".into(),
            Ok(vec![
                builder(&format!("{p}1"), ServerState::Running, 30),
                builder(&format!("{p}2"), ServerState::Running, 30),
                tagged,
                builder(&format!("{p}3"), ServerState::StoppedInPlace, 192),
                protected,
                builder(&format!("{p}5"), ServerState::Stopped, 5),
                x86,
                other,
            ]),
        ),
        (
            "fr-par-2".into(),
            Ok(vec![
                builder(&format!("{p}6"), ServerState::Locked, 50),
                builder(&format!("{p}7"), ServerState::Starting, 1),
                eos,
            ]),
        ),
        (
            "nl-ams-1".into(),
            Err(ScwError::PermissionDenied {
                operation: Operation::ListServers,
                action: Some("read".into()),
                resource: Some("instance_server".into()),
            }),
        ),
    ]
}

fn runner_states() -> MachineStates {
    MachineStates {
        idle: 1,
        acquired: 0,
        creating: 2,
        used: 18,
        removing: 4,
        stuck_on_removing: 2,
        limit: Some(30),
        seen: true,
    }
}

fn quotas() -> Vec<Quotum> {
    let zone_limit = |zone: &str, limit: u64| QuotumLimit {
        zone: Some(zone.into()),
        limit: Some(limit),
        ..QuotumLimit::default()
    };
    vec![
        Quotum {
            name: "instances_basic2_a4c_8g".into(),
            pretty_name: "Instances BASIC2-A4C-8G".into(),
            locality_type: "zone".into(),
            limits: vec![
                zone_limit("fr-par-1", 8),
                zone_limit("fr-par-2", 20),
                zone_limit("pl-waw-1", 20),
                QuotumLimit {
                    zone: Some("nl-ams-1".into()),
                    unlimited: Some(true),
                    ..QuotumLimit::default()
                },
            ],
            ..Quotum::default()
        },
        Quotum {
            name: "instances_basic2_a4c_16g".into(),
            pretty_name: "Instances BASIC2-A4C-16G".into(),
            limits: vec![zone_limit("fr-par-1", 5)],
            ..Quotum::default()
        },
    ]
}

fn synthetic_report() -> StatusReport {
    StatusReport::build(
        synthetic_zones(),
        &settings(),
        Some(Ok(runner_states())),
        Some(Ok(quotas())),
        now(),
    )
}

#[test]
fn report_numbers_for_a_synthetic_fleet() {
    let report = synthetic_report();
    assert_eq!(report.builders(), 9);
    assert_eq!(report.stuck(), 3);
    // The fresh one is inside the grace period and the protected one is never reapable.
    assert_eq!(report.reapable(), 1);

    let par1 = report.zones[0].fleet.as_ref().expect("fr-par-1 read");
    assert_eq!(
        par1.counts,
        StateCounts {
            running: 3,
            stopped: 2,
            stopped_in_place: 1,
            ..StateCounts::default()
        }
    );
    let stuck: Vec<(&str, bool)> = par1
        .stuck
        .iter()
        .map(|s| (s.name.as_str(), s.reapable))
        .collect();
    assert_eq!(
        stuck,
        vec![
            ("runner-qasr7s6-arm-3", true),
            ("runner-qasr7s6-arm-4", false),
            ("runner-qasr7s6-arm-5", false),
        ]
    );
    assert_eq!(par1.stuck[0].stuck_for, Some(TimeDelta::minutes(192)));

    let par2 = report.zones[1].fleet.as_ref().expect("fr-par-2 read");
    assert_eq!(par2.locked, vec!["runner-qasr7s6-arm-6"]);
    assert_eq!(par2.end_of_service.get("AMP2-C4"), Some(&1));
    assert!(report.zones[2].fleet.is_err());

    assert_eq!(
        report.cap,
        Some(CapStatus::Runner {
            states: runner_states(),
            limit: Some(30)
        })
    );
    assert_eq!(
        report.quotas,
        QuotaStatus::Read {
            lines: vec![
                QuotaLine {
                    commercial_type: "BASIC2-A4C-8G".into(),
                    quotum: "Instances BASIC2-A4C-8G".into(),
                    scope: "fr-par-1".into(),
                    limit: 8,
                    // All six builders plus the two non-fleet servers of that type.
                    used: 8,
                },
                QuotaLine {
                    commercial_type: "BASIC2-A4C-8G".into(),
                    quotum: "Instances BASIC2-A4C-8G".into(),
                    scope: "fr-par-2".into(),
                    limit: 20,
                    used: 2,
                },
            ],
            unmatched_types: vec!["AMP2-C4".into()],
            partial: true,
        }
    );
}

#[test]
fn summary_line_first() {
    assert_eq!(
        synthetic_report().summary_text(),
        "ARM fleet: 9 builders in 3 zones, 3 shut down, 1 reapable (nl-ams-1 could not be read)"
    );
    let calm = StatusReport::build(
        vec![(
            "fr-par-1".into(),
            Ok(vec![builder("b", ServerState::Running, 1)]),
        )],
        &FleetSettings::default(),
        None,
        None,
        now(),
    );
    assert_eq!(
        calm.summary_text(),
        "ARM fleet: 1 builder in 1 zone, none shut down"
    );
    let fresh = StatusReport::build(
        vec![(
            "fr-par-1".into(),
            Ok(vec![
                builder("a", ServerState::Stopped, 300),
                builder("b", ServerState::StoppedInPlace, 200),
            ]),
        )],
        &FleetSettings::default(),
        None,
        None,
        now(),
    );
    assert_eq!(
        fresh.summary_text(),
        "ARM fleet: 2 builders in 1 zone, 2 shut down, 2 reapable"
    );
}

#[test]
fn blocks_of_a_representative_report() {
    let blocks = synthetic_report().to_blocks();
    insta::assert_json_snapshot!("status_representative", blocks);
    let texts: Vec<&str> = blocks
        .as_array()
        .expect("an array")
        .iter()
        .map(block_text)
        .collect();
    assert_eq!(
        texts[0],
        "*ARM fleet: 9 builders in 3 zones, 3 shut down, 1 reapable (nl-ams-1 could not be \
         read)*\nNot reapable: 1 protected, 1 in the 15 min grace period."
    );
    // Names without the fleet's prefix, which the footer states; the one age format.
    assert_eq!(
        texts[3],
        "*fr-par-1* · 6 builders: 3 running, 2 stopped, 1 stopped in place\n\
         • `3` · stopped in place for 3 h 12 min\n\
         • `4` · stopped for 2 h · protected\n\
         • `5` · stopped for 5 min · in grace period"
    );
    assert!(texts[4].contains("• `6` · locked"), "{}", texts[4]);
    // The zone where the fleet has nothing and the quota is far from full is left out.
    assert!(!texts[7].contains("pl-waw-1"), "{}", texts[7]);
    assert!(texts[7].contains("• BASIC2-A4C-8G in fr-par-1: 8 of 8 :warning: full"));
    let footer = texts.last().expect("a footer");
    assert!(
        footer.contains("named `runner-qasr7s6-arm-`… (listed without it) or tagged"),
        "{footer}"
    );
    assert!(footer.contains("as of <!date^1787652000^"), "{footer}");
    assert!(!footer.contains("proj-1"), "no project id: {footer}");
}

/// A section's text or a context's first element.
fn block_text(block: &Value) -> &str {
    block
        .pointer("/text/text")
        .or_else(|| block.pointer("/elements/0/text"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// 360 builders: few states and ages, so they read in a few grouped lines per zone.
fn big_fleet() -> Vec<(String, Result<Vec<Server>, ScwError>)> {
    let p = "runner-qasr7s6-arm-";
    let mut servers = Vec::new();
    let mut add = |n: usize, state: ServerState, minutes: &dyn Fn(usize) -> i64| {
        for i in 0..n {
            let k = servers.len();
            let mut s = builder(
                &format!("{p}{}-{k:04}", 1_756_000_000 + k),
                state.clone(),
                minutes(i),
            );
            s.id = format!("id-{k}");
            servers.push(s);
        }
    };
    add(300, ServerState::Running, &|_| 10);
    add(30, ServerState::Stopped, &|i| 90 + i as i64);
    add(12, ServerState::StoppedInPlace, &|i| 185 + 5 * i as i64);
    add(4, ServerState::Stopped, &|i| 2 + 2 * i as i64);
    add(14, ServerState::StoppedInPlace, &|i| 20 + 2 * i as i64);
    if let Some(s) = servers.get_mut(330) {
        s.protected = true;
    }
    vec![("fr-par-1".into(), Ok(servers))]
}

#[test]
fn many_builders_alike_share_a_line() {
    let report = StatusReport::build(big_fleet(), &settings(), None, None, now());
    assert_eq!(report.builders(), 360);
    assert_eq!(report.reapable(), 55);
    let blocks = report.to_blocks();
    insta::assert_json_snapshot!("status_360_builders_report", blocks);
    let zone = block_text(&blocks[3]);
    assert_eq!(
        zone,
        "*fr-par-1* · 360 builders: 300 running, 34 stopped, 26 stopped in place\n\
         • 11 stopped in place for 3 h 10 min to 4 h\n\
         • `1756000330-0330` · stopped in place for 3 h 5 min · protected\n\
         • 30 stopped for 1 h 30 min to 1 h 59 min\n\
         • 14 stopped in place for 20 min to 46 min\n\
         • 4 stopped for 2 min to 8 min · in grace period"
    );
}

#[test]
fn configured_cap_is_the_fallback_and_runner_errors_are_shown() {
    let report = StatusReport::build(
        synthetic_zones(),
        &settings(),
        Some(Err(RunnerMetricsError::Timeout)),
        None,
        now(),
    );
    assert_eq!(
        report.cap,
        Some(CapStatus::Configured {
            cap: 30,
            builders: 9,
            stuck: 3
        })
    );
    assert_eq!(report.runner_error, Some(RunnerMetricsError::Timeout));
    let text = report.to_blocks().to_string();
    assert!(text.contains("9 of 30 slots used, 3 by builders that are shut down"));
    assert!(text.contains("listen_address"));
    assert!(text.contains("set SCW_DEFAULT_ORGANIZATION_ID to see quotas"));

    let full = StatusReport::build(
        synthetic_zones(),
        &settings(),
        Some(Ok(MachineStates {
            used: 28,
            stuck_on_removing: 2,
            seen: true,
            ..MachineStates::default()
        })),
        Some(Err(ScwError::RateLimited)),
        now(),
    );
    let text = full.to_blocks().to_string();
    assert!(text.contains("30 of 30 slots used, 2 by machines that do no work"));
    assert!(text.contains("The cap is reached"));
    assert!(text.contains("Scaleway is rate-limiting us"));
}

#[test]
fn values_from_scaleway_are_escaped() {
    let mut evil = builder("<!channel> & <http://x|y>", ServerState::Stopped, 100);
    evil.commercial_type = "A&B<C>".into();
    // Types are listed when a zone has more than one.
    let plain = builder("plain", ServerState::Stopped, 100);
    let report = StatusReport::build(
        vec![("fr-par-1".into(), Ok(vec![evil, plain]))],
        &FleetSettings::default(),
        None,
        None,
        now(),
    );
    let text = report.to_blocks().to_string();
    assert!(!text.contains("<!channel>"));
    assert!(text.contains("&lt;!channel&gt; &amp; &lt;http://x|y&gt;"));
    assert!(text.contains("A&amp;B&lt;C&gt;"));
}

#[test]
fn long_lists_are_truncated_within_block_kit_limits() {
    let locked: Vec<Server> = (0..30)
        .map(|i| {
            builder(
                &format!("b{i:02}-{}", "x".repeat(300)),
                ServerState::Locked,
                100 + i,
            )
        })
        .collect();
    let mut zones = vec![("fr-par-1".to_owned(), Ok(locked))];
    for i in 0..60 {
        zones.push((format!("zz-zone-{i}"), Ok(Vec::new())));
    }
    let report = StatusReport::build(zones, &FleetSettings::default(), None, None, now());
    let blocks = report.to_blocks();
    let blocks = blocks.as_array().expect("an array");
    assert_eq!(blocks.len(), 50);
    assert!(section_text(&blocks[48]).contains("more sections not shown"));
    assert_eq!(blocks[49]["type"], "context", "the footer stays");
    let zone = section_text(&blocks[2]);
    let shown = zone.lines().filter(|l| l.starts_with('•')).count();
    assert!(
        zone.ends_with(&format!("…and {} more", 30 - shown)),
        "{zone}"
    );
    for block in blocks {
        if let Some(text) = block.pointer("/text/text").and_then(Value::as_str) {
            assert!(text.chars().count() <= 3000);
        }
    }
}

/// Blocks a caller adds (buttons, "shared by") go above the footer, and the line saying how many
/// of the report's sections were left out counts those they displaced too.
#[test]
fn blocks_added_above_the_footer_keep_the_count_of_what_is_left_out() {
    let zones: Vec<_> = (0..60)
        .map(|i| (format!("zz-zone-{i}"), Ok(Vec::new())))
        .collect();
    let report = StatusReport::build(zones, &FleetSettings::default(), None, None, now());
    let extra = vec![
        serde_json::json!({"type": "actions", "elements": []}),
        serde_json::json!({"type": "context", "elements": []}),
    ];
    let blocks = report.to_blocks_with(extra.clone());
    let blocks = blocks.as_array().expect("an array");
    assert_eq!(blocks.len(), 50);
    assert_eq!(blocks[49]["type"], "context", "the footer stays last");
    assert_eq!(blocks[47..49], extra[..]);
    // The report's own blocks are its head, a divider and 60 zones: 46 fit.
    assert_eq!(
        section_text(&blocks[46]),
        "…and 16 more sections not shown."
    );
}

fn section_text(block: &Value) -> &str {
    block
        .pointer("/text/text")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

proptest! {
    /// Any names, states and dates: building and rendering never panics and stays in limits.
    #[test]
    fn any_fleet_renders_within_limits(
        servers in proptest::collection::vec(
            ("\\PC{0,200}", "[a-z ]{0,20}", -100_000i64..100_000, any::<bool>(), any::<bool>()),
            0..40,
        ),
        grace in 0u32..10_000,
    ) {
        let servers: Vec<Server> = servers
            .into_iter()
            .map(|(name, state, minutes, protected, eos)| {
                let mut s = builder(&name, ServerState::from(state.as_str()), minutes);
                s.protected = protected;
                s.end_of_service = eos;
                s
            })
            .collect();
        let settings = FleetSettings { reap_grace_minutes: grace, ..FleetSettings::default() };
        let report = StatusReport::build(
            vec![("fr-par-1".into(), Ok(servers))], &settings, None, Some(Ok(quotas())), now(),
        );
        let blocks = report.to_blocks();
        let blocks = blocks.as_array().expect("an array");
        prop_assert!(blocks.len() <= 50);
        for block in blocks {
            prop_assert!(section_text(block).chars().count() <= 3000);
        }
        prop_assert!(report.reapable() <= report.stuck());
        // Whatever the names, the mrkdwn stays well formed (escaped, nothing left open).
        let message = armbot::slack::Message::new(report.summary_text(), blocks.clone());
        prop_assert_eq!(message.problems(), Vec::<String>::new());
    }
}

// ---------------------------------------------------------------------------------------
// End to end: FleetContext from settings + env, gather_status against the fake Scaleway and a
// wiremock runner.

const KEY: &str = "scw-secret-key-for-tests";

fn api_server(zone: &str, i: usize, name: &str, state: &str, minutes_ago: i64) -> ScwServer {
    ScwServer::new(zone, format!("00000000-0000-0000-0000-{i:012}"), name)
        .commercial_type("BASIC2-A4C-8G")
        .state(state)
        .modified(now() - TimeDelta::minutes(minutes_ago))
}

fn context(scaleway: &FakeScaleway, runner: Option<&MockServer>) -> FleetContext {
    let env = ScalewayEnv::from_lookup(|name| match name {
        "SCW_SECRET_KEY" => Some(KEY.to_owned()),
        "SCW_DEFAULT_PROJECT_ID" => Some("proj-1".to_owned()),
        "SCW_DEFAULT_ORGANIZATION_ID" => Some("org-1".to_owned()),
        "SCW_DEFAULT_ZONE" => Some("fr-par-1".to_owned()),
        "SCW_API_URL" => Some(scaleway.uri()),
        _ => None,
    });
    let settings = FleetSettings {
        zones: vec!["fr-par-1".into(), "fr-par-2".into(), "nl-ams-1".into()],
        runner_metrics_url: runner.map(MockServer::uri),
        ..FleetSettings::default()
    };
    let mut ctx = FleetContext::new(&settings, &env, Duration::from_secs(5)).expect("configured");
    ctx.scaleway = ctx.scaleway.with_retry_policy(RetryPolicy {
        max_attempts: 2,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_retry_after: Duration::from_millis(2),
    });
    ctx
}

#[tokio::test]
async fn gathers_three_zones_concurrently_runner_and_quotas() {
    let scaleway = FakeScaleway::start().await;
    scaleway.require_key(KEY);
    let runner = MockServer::start().await;
    scaleway.set_latency(Duration::from_millis(400));
    scaleway.set_zone(
        "fr-par-1",
        [
            api_server("fr-par-1", 1, "b1", "running", 10),
            api_server("fr-par-1", 2, "b2", "stopped in place", 200),
        ],
    );
    scaleway.set_zone("fr-par-2", [api_server("fr-par-2", 3, "b3", "stopped", 60)]);
    scaleway.fail_always(
        ScwOp::ListServers.in_zone("nl-ams-1"),
        ScwFailure::permissions_denied("read", "instance_server"),
    );
    scaleway.set_quotas(
        "org-1",
        vec![json!({
            "name": "instances_basic2_a4c_8g", "pretty_name": "Instances BASIC2-A4C-8G",
            "locality_type": "zone",
            "limits": [{"zone": "fr-par-1", "limit": 6}, {"zone": "fr-par-2", "limit": 6}]
        })],
    );
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"used\"} 2\n\
             gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"stuck-on-removing\"} 2\n\
             gitlab_runner_limit{runner=\"abc\"} 4\n",
        ))
        .expect(1)
        .mount(&runner)
        .await;

    let ctx = context(&scaleway, Some(&runner));
    let started = Instant::now();
    let report = gather_status(&ctx, now()).await;
    // Three zones at 400 ms each: sequential would take 1.2 s.
    assert!(
        started.elapsed() < Duration::from_millis(1100),
        "{:?}",
        started.elapsed()
    );

    assert_eq!(report.builders(), 3);
    assert_eq!(report.stuck(), 2);
    assert_eq!(report.reapable(), 2);
    assert!(matches!(
        report.zones[2].fleet,
        Err(ScwError::PermissionDenied { .. })
    ));
    assert!(matches!(
        report.cap,
        Some(CapStatus::Runner { limit: Some(4), .. })
    ));
    let text = report.to_blocks().to_string();
    assert!(text.contains("4 of 4 slots used, 2 by machines that do no work"));
    assert!(text.contains(
        "lacks permission to list servers (`read` on `instance_server`) in project `proj-1`"
    ));
    assert!(text.contains("BASIC2-A4C-8G in fr-par-1: 2 of 6"));
    assert!(!text.contains(KEY));
    // One list per zone, for the project, with the key (4xx are not retried); one quota list.
    for zone in ["fr-par-1", "fr-par-2", "nl-ams-1"] {
        let lists = scaleway.calls_to(ScwOp::ListServers.in_zone(zone));
        assert_eq!(lists.len(), 1, "{zone}: {lists:?}");
        assert_eq!(lists[0].query("project"), Some("proj-1"), "{zone}");
        assert_eq!(lists[0].auth_token.as_deref(), Some(KEY), "{zone}");
    }
    let quotas = scaleway.calls_to(ScwOp::ListQuotas);
    assert_eq!(quotas.len(), 1, "{quotas:?}");
    assert_eq!(quotas[0].query("organization_id"), Some("org-1"));
}

#[tokio::test]
async fn every_zone_failing_still_gives_a_report() {
    let scaleway = FakeScaleway::start().await;
    for op in [ScwOp::ListServers, ScwOp::ListQuotas] {
        scaleway.fail_always(op, ScwFailure::denied_authentication("expired"));
    }
    let report = gather_status(&context(&scaleway, None), now()).await;
    assert_eq!(report.zones.len(), 3);
    assert!(report.zones.iter().all(|z| z.fleet.is_err()));
    assert!(matches!(
        report.quotas,
        QuotaStatus::Failed(ScwError::InvalidKey { .. })
    ));
    assert_eq!(
        report.summary_text(),
        "ARM fleet: 0 builders in 3 zones, none shut down (fr-par-1, fr-par-2, nl-ams-1 could not be read)"
    );
    assert!(
        report
            .to_blocks()
            .to_string()
            .contains("ask an admin to set a new SCW_SECRET_KEY")
    );
}

/// A name made to end the code span and fake a line of its own stays inside its line.
#[test]
fn a_name_with_a_line_break_and_a_backtick_stays_in_its_line() {
    let forged = builder(
        "x`\n• *fr-par-2* · 40 builders `y",
        ServerState::Stopped,
        120,
    );
    let report = StatusReport::build(
        vec![("fr-par-1".into(), Ok(vec![forged]))],
        &FleetSettings::default(),
        None,
        None,
        now(),
    );
    let blocks = report.to_blocks();
    let zone = blocks
        .as_array()
        .into_iter()
        .flatten()
        .map(section_text)
        .find(|t| t.starts_with("*fr-par-1*"))
        .expect("the zone's section");
    assert_eq!(zone.lines().count(), 2, "{zone}");
    assert!(
        zone.contains("\n• `xˋ • *fr-par-2* · 40 builders ˋy` · stopped for 2 h"),
        "{zone}"
    );
}
