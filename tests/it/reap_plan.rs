//! The reap planner: each selection rule with its reason, and a property test over generated
//! fleets that it never selects a server any rule excludes.

use std::collections::{BTreeMap, HashSet};

use armbot::fleet::{FleetSettings, Ip, Server, ServerState, Volume, VolumeType};
use armbot::reap::{
    Assessment, MachineIndex, Plan, PlanContext, ReapSettings, Skipped, assess, plan,
};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

const PREFIX: &str = "runner-qasr7s6-arm-";
const TAG: &str = "arm-builder";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-08-25T10:00:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

fn settings() -> ReapSettings {
    ReapSettings {
        name_prefix: Some(PREFIX.into()),
        tags: vec![TAG.into()],
        grace_minutes: 15,
        max_per_run: 3,
        ..ReapSettings::default()
    }
}

fn ctx() -> PlanContext {
    PlanContext {
        zones: vec!["fr-par-1".into(), "fr-par-2".into()],
        project: Some("proj-1".into()),
    }
}

/// A builder shut down long ago: passes every rule.
fn stuck(name: &str, minutes_ago: i64) -> Server {
    Server {
        id: format!("id-{name}"),
        name: name.to_owned(),
        project: "proj-1".into(),
        zone: "fr-par-1".into(),
        arch: "arm64".into(),
        commercial_type: "COPARM1-4C-16G".into(),
        state: ServerState::StoppedInPlace,
        modification_date: Some(now() - TimeDelta::minutes(minutes_ago)),
        ..Server::default()
    }
}

fn reason_for(server: &Server) -> String {
    match assess(server, None, &settings(), &ctx(), now()) {
        Assessment::LeftAlone(reason) => reason,
        other => panic!("expected a reason, got {other:?}"),
    }
}

#[test]
fn a_stuck_builder_is_selected_with_its_resources() {
    let mut server = stuck(&format!("{PREFIX}1"), 60);
    server.volumes = BTreeMap::from([
        (
            "0".to_owned(),
            Volume {
                id: "vol-local".into(),
                volume_type: VolumeType::LSsd,
                ..Volume::default()
            },
        ),
        (
            "1".to_owned(),
            Volume {
                id: "vol-block".into(),
                volume_type: VolumeType::SbsVolume,
                ..Volume::default()
            },
        ),
    ]);
    server.public_ips = vec![
        Ip {
            id: "ip-flex".into(),
            address: "51.15.0.1".into(),
            dynamic: false,
        },
        Ip {
            id: "ip-dyn".into(),
            address: "51.15.0.2".into(),
            dynamic: true,
        },
    ];
    let index: MachineIndex = [(server.id.clone(), "runner-machine-1".to_owned())]
        .into_iter()
        .collect();
    let plan = plan(&[server], Some(&index), &settings(), &ctx(), now());
    assert_eq!(plan.selected.len(), 1);
    let removal = &plan.selected[0];
    assert_eq!(removal.stuck_for, TimeDelta::minutes(60));
    assert_eq!(removal.machine.as_deref(), Some("runner-machine-1"));
    assert_eq!(removal.flexible_ips, ["ip-flex"]);
    let volumes: Vec<(&str, &VolumeType)> = removal
        .volumes
        .iter()
        .map(|v| (v.id.as_str(), &v.volume_type))
        .collect();
    assert_eq!(
        volumes,
        [
            ("vol-local", &VolumeType::LSsd),
            ("vol-block", &VolumeType::SbsVolume)
        ]
    );
    assert!(plan.machines_known);
    assert_eq!(plan.runner_slots(), 1);
    assert!(plan.notes.is_empty());
    assert_eq!(plan.expires_at, now() + TimeDelta::minutes(10));
    assert!(!plan.is_expired(now() + TimeDelta::minutes(9)));
    assert!(plan.is_expired(now() + TimeDelta::minutes(10)));
    assert!(uuid::Uuid::parse_str(&plan.id).is_ok());
}

#[test]
fn membership_by_store_prefix_or_tag() {
    let settings = settings();
    let by_prefix = stuck(&format!("{PREFIX}a"), 60);
    let mut by_tag = stuck("elegant-shirley", 60);
    by_tag.tags = vec!["other".into(), TAG.into()];
    let by_store = stuck("random-name", 60);
    for (server, machine) in [
        (&by_prefix, None),
        (&by_tag, None),
        (&by_store, Some("runner-x")),
    ] {
        assert!(
            matches!(
                assess(server, machine, &settings, &ctx(), now()),
                Assessment::Reapable { .. }
            ),
            "{}",
            server.name
        );
    }
    assert_eq!(
        reason_for(&by_store),
        "not a runner machine: no docker-machine entry, name prefix or fleet tag matches"
    );
    // An empty prefix or tag would match everything: it counts as unset.
    let loose = ReapSettings {
        name_prefix: Some(String::new()),
        tags: vec![String::new()],
        ..ReapSettings::default()
    };
    let mut empty_tag = stuck("x", 60);
    empty_tag.tags = vec![String::new()];
    assert!(matches!(
        assess(&empty_tag, None, &loose, &ctx(), now()),
        Assessment::LeftAlone(_)
    ));
    let p = plan(&[empty_tag], None, &loose, &ctx(), now());
    assert!(p.selected.is_empty());
    assert!(
        p.notes[0].contains("No fleet filter is set"),
        "{:?}",
        p.notes
    );
}

#[test]
fn unrelated_and_running_servers_are_not_listed() {
    let mut not_arm = stuck("web-1", 600);
    not_arm.arch = "x86_64".into();
    let mut running_other = stuck("db-1", 600);
    running_other.state = ServerState::Running;
    let mut running = stuck(&format!("{PREFIX}run"), 600);
    running.state = ServerState::Running;
    let mut starting = stuck(&format!("{PREFIX}start"), 600);
    starting.state = ServerState::Starting;
    let mut stopping = stuck(&format!("{PREFIX}stop"), 600);
    stopping.state = ServerState::Stopping;
    for server in [&not_arm, &running_other] {
        assert_eq!(
            assess(server, None, &settings(), &ctx(), now()),
            Assessment::Unrelated
        );
    }
    let plan = plan(
        &[not_arm, running_other, running, starting, stopping],
        None,
        &settings(),
        &ctx(),
        now(),
    );
    assert!(plan.selected.is_empty());
    assert!(plan.skipped.is_empty());
    assert_eq!(plan.running_left_alone, 3);
    assert!(!plan.machines_known);
}

#[test]
fn each_rule_says_why() {
    let name = format!("{PREFIX}r");
    let cases: Vec<(Server, &str)> = vec![
        (
            Server {
                state: ServerState::Locked,
                ..stuck(&name, 600)
            },
            "locked: needs a human",
        ),
        (
            Server {
                state: ServerState::Other("hibernating".into()),
                ..stuck(&name, 600)
            },
            "in state `hibernating`, which reap does not act on",
        ),
        (
            Server {
                zone: "nl-ams-1".into(),
                ..stuck(&name, 600)
            },
            "zone `nl-ams-1` is not allowed for reap",
        ),
        (
            Server {
                project: "proj-other".into(),
                ..stuck(&name, 600)
            },
            "project `proj-other` is not allowed for reap",
        ),
        (
            Server {
                arch: "x86_64".into(),
                ..stuck(&name, 600)
            },
            "not arm64 (`x86_64`)",
        ),
        (
            Server {
                protected: true,
                ..stuck(&name, 600)
            },
            "protected: Scaleway refuses to delete it until the protection is removed",
        ),
        (
            Server {
                modification_date: None,
                ..stuck(&name, 600)
            },
            "unknown modification date",
        ),
        (
            stuck(&name, 14),
            "stopped in place for only 14 min (grace period 15 min)",
        ),
        (
            Server {
                state: ServerState::Stopped,
                ..stuck(&name, -3)
            },
            "stopped for only 0 s (grace period 15 min)",
        ),
    ];
    for (server, reason) in cases {
        assert_eq!(reason_for(&server), reason);
    }
    // The grace boundary itself is reapable.
    assert_eq!(
        assess(&stuck(&name, 15), None, &settings(), &ctx(), now()),
        Assessment::Reapable {
            stuck_for: TimeDelta::minutes(15)
        }
    );
    // A grace beyond what time can hold never elapses, without a panic.
    let huge = ReapSettings {
        grace_minutes: u64::MAX,
        plan_ttl_minutes: u64::MAX,
        ..settings()
    };
    let p = plan(&[stuck(&name, 600_000)], None, &huge, &ctx(), now());
    assert!(p.selected.is_empty());
    assert!(p.expires_at > now());
}

#[test]
fn allow_lists_override_the_context() {
    let settings = ReapSettings {
        allowed_zones: vec!["nl-ams-1".into()],
        allowed_projects: vec!["proj-2".into()],
        ..settings()
    };
    let name = format!("{PREFIX}z");
    let ok = Server {
        zone: "nl-ams-1".into(),
        project: "proj-2".into(),
        ..stuck(&name, 600)
    };
    assert!(matches!(
        assess(&ok, None, &settings, &ctx(), now()),
        Assessment::Reapable { .. }
    ));
    let queried_zone = Server {
        project: "proj-2".into(),
        ..stuck(&name, 600)
    };
    assert!(matches!(
        assess(&queried_zone, None, &settings, &ctx(), now()),
        Assessment::LeftAlone(r) if r.contains("zone `fr-par-1`")
    ));
    // No project configured and no allow-list: nothing is allowed, rather than everything.
    let no_project = PlanContext {
        project: None,
        ..ctx()
    };
    assert!(matches!(
        assess(&stuck(&name, 600), None, &self::settings(), &no_project, now()),
        Assessment::LeftAlone(r) if r.contains("project")
    ));
}

#[test]
fn the_cap_keeps_the_oldest_and_lists_the_rest() {
    let servers: Vec<Server> = [30, 600, 90, 6000, 45]
        .iter()
        .enumerate()
        .map(|(i, minutes)| stuck(&format!("{PREFIX}{i}"), *minutes))
        .collect();
    let plan = plan(&servers, None, &settings(), &ctx(), now());
    let selected: Vec<&str> = plan.selected.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        selected,
        [
            format!("{PREFIX}3"),
            format!("{PREFIX}1"),
            format!("{PREFIX}2")
        ]
    );
    let capped: Vec<(&str, &str)> = plan
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        capped,
        [
            (format!("{PREFIX}4").as_str(), "over the per-run cap of 3"),
            (format!("{PREFIX}0").as_str(), "over the per-run cap of 3"),
        ]
    );
}

#[test]
fn a_server_listed_twice_is_planned_once_and_the_plan_round_trips() {
    let server = stuck(&format!("{PREFIX}dup"), 60);
    let plan = plan(&[server.clone(), server], None, &settings(), &ctx(), now());
    assert_eq!(plan.selected.len(), 1);
    let json = serde_json::to_string(&plan).expect("serializes");
    let back: Plan = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, plan);
}

#[test]
fn store_problems_are_noted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("machines").join("runner-broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("config.json"), "{not json").expect("write");
    let index = MachineIndex::read(dir.path()).expect("store readable");
    let plan = plan(&[], Some(&index), &settings(), &ctx(), now());
    assert_eq!(
        plan.notes,
        ["1 entry of the docker-machine store could not be read and was ignored."]
    );
}

#[test]
fn context_from_the_fleet_settings() {
    let fleet = FleetSettings {
        zones: vec!["fr-par-2".into()],
        project_id: Some("proj-9".into()),
        ..FleetSettings::default()
    };
    assert_eq!(
        PlanContext::from(&fleet),
        PlanContext {
            zones: vec!["fr-par-2".into()],
            project: Some("proj-9".into())
        }
    );
}

// ---- property test over generated fleets ----

#[derive(Debug, Clone)]
struct Spec {
    prefixed: bool,
    tagged: bool,
    in_store: bool,
    arm64: bool,
    state: ServerState,
    /// Minutes since the last state change; `None`: no usable date.
    minutes_ago: Option<i64>,
    protected: bool,
    zone: &'static str,
    project: &'static str,
}

fn spec() -> impl Strategy<Value = Spec> {
    let state = prop_oneof![
        Just(ServerState::Running),
        Just(ServerState::Stopped),
        Just(ServerState::StoppedInPlace),
        Just(ServerState::Starting),
        Just(ServerState::Stopping),
        Just(ServerState::Locked),
        Just(ServerState::Other("weird".into())),
    ];
    // Dense around the 15 min grace boundary, plus far past and future (clock skew).
    let minutes = prop_oneof![
        3 => (10i64..20).prop_map(Some),
        2 => (-5i64..100_000).prop_map(Some),
        1 => Just(None),
    ];
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        state,
        minutes,
        any::<bool>(),
        prop::sample::select(vec!["fr-par-1", "fr-par-2", "nl-ams-1", ""]),
        prop::sample::select(vec!["proj-1", "proj-2", ""]),
    )
        .prop_map(
            |(
                (prefixed, tagged, in_store, arm64),
                state,
                minutes_ago,
                protected,
                zone,
                project,
            )| {
                Spec {
                    prefixed,
                    tagged,
                    in_store,
                    arm64,
                    state,
                    minutes_ago,
                    protected,
                    zone,
                    project,
                }
            },
        )
}

fn build(i: usize, spec: &Spec) -> Server {
    Server {
        id: format!("srv-{i}"),
        name: if spec.prefixed {
            format!("{PREFIX}{i}")
        } else {
            format!("other-{i}")
        },
        tags: if spec.tagged {
            vec![TAG.into()]
        } else {
            vec!["unrelated".into()]
        },
        arch: if spec.arm64 { "arm64" } else { "x86_64" }.into(),
        state: spec.state.clone(),
        modification_date: spec.minutes_ago.map(|m| now() - TimeDelta::minutes(m)),
        protected: spec.protected,
        zone: spec.zone.into(),
        project: spec.project.into(),
        commercial_type: "COPARM1-4C-16G".into(),
        ..Server::default()
    }
}

/// The rules, restated independently of the planner.
fn eligible(spec: &Spec, zones: &[&str], projects: &[&str], grace: i64) -> bool {
    (spec.prefixed || spec.tagged || spec.in_store)
        && spec.arm64
        && spec.state.is_shut_down()
        && !spec.protected
        && zones.contains(&spec.zone)
        && projects.contains(&spec.project)
        && spec.minutes_ago.is_some_and(|m| m >= grace)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn never_selects_outside_the_rules(
        specs in prop::collection::vec(spec(), 0..40),
        max_per_run in 1usize..8,
        grace in 0u64..30,
        allow_listed in any::<bool>(),
    ) {
        let settings = ReapSettings {
            max_per_run,
            grace_minutes: grace,
            allowed_zones: if allow_listed { vec!["nl-ams-1".into()] } else { Vec::new() },
            allowed_projects: if allow_listed { vec!["proj-2".into()] } else { Vec::new() },
            ..settings()
        };
        let (zones, projects): (&[&str], &[&str]) = if allow_listed {
            (&["nl-ams-1"], &["proj-2"])
        } else {
            (&["fr-par-1", "fr-par-2"], &["proj-1"])
        };
        let servers: Vec<Server> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
        let index: MachineIndex = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_store)
            .map(|(i, _)| (format!("srv-{i}"), format!("machine-{i}")))
            .collect();
        let plan = plan(&servers, Some(&index), &settings, &ctx(), now());

        prop_assert!(plan.selected.len() <= max_per_run);
        let grace = i64::try_from(grace).expect("small");
        let expected = specs.iter().filter(|s| eligible(s, zones, projects, grace)).count();
        prop_assert_eq!(plan.selected.len(), expected.min(max_per_run));
        for removal in &plan.selected {
            let i: usize = removal.server_id["srv-".len()..].parse().expect("our id");
            let s = &specs[i];
            prop_assert!(eligible(s, zones, projects, grace), "selected {:?}", s);
            prop_assert!(removal.stuck_for >= TimeDelta::minutes(grace));
            prop_assert_eq!(removal.machine.is_some(), s.in_store);
        }
        // Each server at most once, and the over-cap ones are the most recently stuck.
        let mut seen = HashSet::new();
        let selected_ids = plan.selected.iter().map(|r| &r.server_id);
        for id in selected_ids.chain(plan.skipped.iter().map(|s| &s.server_id)) {
            prop_assert!(seen.insert(id.clone()), "{} twice", id);
        }
        let capped: Vec<&Skipped> = plan
            .skipped
            .iter()
            .filter(|s| s.reason.starts_with("over the per-run cap"))
            .collect();
        prop_assert_eq!(capped.len(), expected.saturating_sub(max_per_run));
        if let Some(youngest) = plan.selected.iter().map(|r| r.stuck_for).min() {
            for c in capped {
                let i: usize = c.server_id["srv-".len()..].parse().expect("our id");
                let m = specs[i].minutes_ago.expect("eligible has a date");
                prop_assert!(TimeDelta::minutes(m) <= youngest);
            }
        }
        // Running builders are counted, never listed one by one.
        for s in &plan.skipped {
            let i: usize = s.server_id["srv-".len()..].parse().expect("our id");
            prop_assert!(!matches!(
                specs[i].state,
                ServerState::Running | ServerState::Starting | ServerState::Stopping
            ));
        }
    }
}
