//! One membership rule and one grace period for `/arm status` and `/arm reap`: with the
//! settings as a team writes them (`[fleet]` names the builders, `[reap]` its own limits), the
//! status report's "reapable" count is exactly what the reap plan would select.

use armbot::config::FileSettings;
use armbot::fleet::{Server, ServerState, StatusReport};
use armbot::reap::{PlanContext, plan};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use crate::common::settings_with_file;

const PREFIX: &str = "runner-qasr7s6-arm-";
const ZONES: [&str; 2] = ["fr-par-1", "nl-ams-1"];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-08-25T10:00:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

fn file(extra_reap: &str) -> FileSettings {
    toml::from_str(&format!(
        r#"
        [fleet]
        zones = ["fr-par-1", "nl-ams-1"]
        name_prefix = "{PREFIX}"
        tags = ["arm-builder"]
        project_id = "proj-1"

        [reap]
        allowed_users = ["U0REAPER"]
        grace_minutes = 30
        max_per_run = 1000
        {extra_reap}
        "#
    ))
    .expect("valid settings file")
}

#[test]
fn reap_takes_the_fleet_membership_and_status_takes_the_reap_grace() {
    let s = settings_with_file(file(""), &[]);
    assert_eq!(s.reap.name_prefix.as_deref(), Some(PREFIX));
    assert_eq!(s.reap.tags, ["arm-builder"]);
    assert_eq!(s.fleet.reap_grace_minutes, 30);

    // A narrower rule of reap's own is kept.
    let s = settings_with_file(file(r#"name_prefix = "runner-qasr7s6-arm-big-""#), &[]);
    assert_eq!(
        s.reap.name_prefix.as_deref(),
        Some("runner-qasr7s6-arm-big-")
    );
    assert!(s.reap.tags.is_empty());
}

#[test]
fn the_grace_period_is_not_a_fleet_key() {
    let parsed = toml::from_str::<FileSettings>("[fleet]\nreap_grace_minutes = 20\n");
    assert!(parsed.is_err(), "the grace period lives in [reap] only");
}

fn server_strategy() -> impl Strategy<Value = Server> {
    let states = prop_oneof![
        Just(ServerState::Running),
        Just(ServerState::Starting),
        Just(ServerState::Stopping),
        Just(ServerState::Stopped),
        Just(ServerState::StoppedInPlace),
        Just(ServerState::Locked),
    ];
    (
        0usize..2,
        0u8..4,
        states,
        0i64..120,
        any::<bool>(),
        any::<bool>(),
        0u32..10_000,
    )
        .prop_map(|(zone, naming, state, age, protected, arm, n)| Server {
            id: format!("id-{n}"),
            name: match naming {
                0 | 1 => format!("{PREFIX}{n}"),
                _ => format!("someone-else-{n}"),
            },
            tags: if naming == 2 {
                vec!["arm-builder".into()]
            } else {
                vec![]
            },
            project: "proj-1".into(),
            zone: ZONES[zone].into(),
            arch: if arm { "arm64" } else { "x86_64" }.into(),
            commercial_type: "COPARM1-4C-16G".into(),
            state,
            protected,
            modification_date: Some(now() - TimeDelta::minutes(age)),
            ..Server::default()
        })
}

proptest! {
    #[test]
    fn status_reapable_equals_the_plan(servers in proptest::collection::vec(server_strategy(), 0..40)) {
        // Ids must be unique, as Scaleway's are.
        let mut servers = servers;
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers.dedup_by(|a, b| a.id == b.id);
        let s = settings_with_file(file(""), &[]);
        let zones: Vec<(String, Result<Vec<Server>, _>)> = ZONES
            .iter()
            .map(|z| (z.to_string(), Ok(servers.iter().filter(|s| s.zone == *z).cloned().collect())))
            .collect();
        let report = StatusReport::build(zones, &s.fleet, None, None, now());
        let planned = plan(&servers, None, &s.reap, &PlanContext::from(&s.fleet), now());
        prop_assert_eq!(report.reapable(), planned.selected.len());
    }
}
