//! The reap messages: a snapshot of a representative plan and its report, Block Kit limits on
//! oversized plans, escaping, and the no-op plan.

use armbot::fleet::{ServerState, VolumeType};
use armbot::reap::{
    CANCEL_ACTION_ID, CONFIRM_ACTION_ID, Plan, PlannedRemoval, PlannedVolume, ReapReport,
    ResourceKind, ResourceOutcome, ResourceResult, ServerOutcome, ServerResult, Skipped,
    SlotOutcome, cancelled_blocks, plan_blocks, plan_text, report_blocks, summary_text,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

const PLAN_ID: &str = "5f0c2d3e-8a41-4b7f-9c2e-1d0a6b7c8e9f";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-08-25T10:00:00Z")
        .expect("valid date")
        .with_timezone(&Utc)
}

fn removal(n: usize, machine: Option<&str>) -> PlannedRemoval {
    PlannedRemoval {
        server_id: format!("srv-{n}"),
        name: format!("runner-qasr7s6-arm-{n}"),
        zone: "fr-par-1".into(),
        commercial_type: "COPARM1-4C-16G".into(),
        state: ServerState::StoppedInPlace,
        stuck_for: TimeDelta::minutes(200),
        volumes: vec![PlannedVolume {
            id: format!("vol-{n}"),
            volume_type: VolumeType::LSsd,
        }],
        flexible_ips: vec![format!("ip-{n}")],
        machine: machine.map(str::to_owned),
    }
}

fn skipped(name: &str, reason: &str) -> Skipped {
    Skipped {
        server_id: format!("id-{name}"),
        name: name.into(),
        zone: "fr-par-1".into(),
        reason: reason.into(),
    }
}

/// Three stuck builders (one unknown to the store, one with a hostile name), four left alone.
fn sample_plan() -> Plan {
    let mut odd = removal(3, Some("runner-qasr7s6-gitlab-runner-3"));
    odd.name = "<!channel> & co".into();
    odd.state = ServerState::Stopped;
    odd.stuck_for = TimeDelta::minutes(3180);
    odd.volumes.push(PlannedVolume {
        id: "vol-3b".into(),
        volume_type: VolumeType::SbsVolume,
    });
    Plan {
        id: PLAN_ID.into(),
        created_at: now(),
        expires_at: now() + TimeDelta::minutes(10),
        grace_minutes: 15,
        max_per_run: 3,
        machines_known: true,
        selected: vec![
            odd,
            removal(1, Some("runner-qasr7s6-gitlab-runner-1")),
            removal(2, None),
        ],
        skipped: vec![
            skipped("runner-qasr7s6-arm-4", "over the per-run cap of 3"),
            skipped("runner-qasr7s6-arm-5", "locked: needs a human"),
            skipped(
                "runner-qasr7s6-arm-6",
                "protected: Scaleway refuses to delete it until the protection is removed",
            ),
            skipped(
                "runner-qasr7s6-arm-7",
                "stopped in place for only 4m (grace period 15m)",
            ),
        ],
        running_left_alone: 12,
        notes: vec![
            "1 entry of the docker-machine store could not be read and was ignored.".into(),
        ],
    }
}

fn result(r: &PlannedRemoval, outcome: ServerOutcome, slot: SlotOutcome) -> ServerResult {
    let done = matches!(outcome, ServerOutcome::Removed | ServerOutcome::AlreadyGone);
    ServerResult {
        server_id: r.server_id.clone(),
        name: r.name.clone(),
        zone: r.zone.clone(),
        commercial_type: r.commercial_type.clone(),
        machine: r.machine.clone(),
        outcome,
        resources: if done {
            r.volumes
                .iter()
                .map(|v| ResourceResult {
                    kind: ResourceKind::Volume {
                        volume_type: v.volume_type.clone(),
                    },
                    id: v.id.clone(),
                    outcome: ResourceOutcome::Removed,
                })
                .chain(r.flexible_ips.iter().map(|ip| ResourceResult {
                    kind: ResourceKind::FlexibleIp,
                    id: ip.clone(),
                    outcome: ResourceOutcome::Removed,
                }))
                .collect()
        } else {
            Vec::new()
        },
        slot,
    }
}

fn sample_report(plan: &Plan) -> ReapReport {
    let mut failed_volume = result(
        &plan.selected[0],
        ServerOutcome::Removed,
        SlotOutcome::Freed,
    );
    failed_volume.resources[1].outcome = ResourceOutcome::Failed {
        reason: "Scaleway answered with an error (HTTP 412: resource still in use).".into(),
    };
    ReapReport {
        plan_id: plan.id.clone(),
        started_at: now() + TimeDelta::minutes(1),
        finished_at: now() + TimeDelta::seconds(75),
        results: vec![
            failed_volume,
            result(
                &plan.selected[1],
                ServerOutcome::AlreadyGone,
                SlotOutcome::Freed,
            ),
            result(
                &plan.selected[2],
                ServerOutcome::Skipped {
                    reason: "started again since the plan (now `running`)".into(),
                },
                SlotOutcome::NotAttempted,
            ),
        ],
        stopped_early: None,
    }
}

fn snapshot(name: &str, value: &Value) {
    insta::with_settings!({
        snapshot_path => "../data/reap/snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_json_snapshot!(name, value);
    });
}

fn texts(blocks: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for block in blocks {
        if let Some(t) = block["text"]["text"].as_str() {
            out.push(t.to_owned());
        }
        for element in block["elements"].as_array().into_iter().flatten() {
            if let Some(t) = element["text"].as_str() {
                out.push(t.to_owned());
            }
        }
    }
    out
}

#[test]
fn plan_message_snapshot() {
    let plan = sample_plan();
    let blocks = plan_blocks(&plan, PLAN_ID);
    snapshot("plan_blocks", &Value::from(blocks.clone()));
    let all = Value::from(blocks.clone()).to_string();
    assert!(!all.contains("<!channel>"), "unescaped name");
    assert!(all.contains("&lt;!channel&gt; &amp; co"));
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    assert_eq!(actions["elements"][0]["action_id"], CONFIRM_ACTION_ID);
    assert_eq!(actions["elements"][0]["value"], PLAN_ID);
    assert_eq!(actions["elements"][0]["style"], "danger");
    assert_eq!(actions["elements"][0]["confirm"]["style"], "danger");
    assert_eq!(actions["elements"][1]["action_id"], CANCEL_ACTION_ID);
    assert!(
        actions["block_id"]
            .as_str()
            .is_some_and(|id| id.contains(PLAN_ID))
    );
    assert_eq!(
        plan_text(&plan),
        ":broom: *3 stuck ARM builders can be removed* (they hold 2 runner slots)."
    );
}

#[test]
fn report_message_snapshot() {
    let plan = sample_plan();
    let report = sample_report(&plan);
    let blocks = report_blocks(&report, &plan, "U123ABC");
    snapshot("report_blocks", &Value::from(blocks.clone()));
    assert!(
        !blocks.iter().any(|b| b["type"] == "actions"),
        "buttons gone"
    );
    assert_eq!(
        summary_text(&report, "U123ABC"),
        "<@U123ABC> reaped 2 of 3 stuck builders: 1 server, 2 volumes, 2 IPs removed, 2 \
         runner slots freed; 1 already gone; 1 skipped; 1 failed: `&lt;!channel&gt; &amp; co` \
         (Scaleway answered with an error (HTTP 412: resource still in use).)"
    );
    // Something that is not a user id is shown, escaped, never turned into markup.
    assert!(summary_text(&report, "<!here>").starts_with("&lt;!here&gt; reaped"));
}

#[test]
fn cancelling_says_who_and_drops_the_buttons() {
    let blocks = cancelled_blocks(&sample_plan(), "U42");
    assert!(!blocks.iter().any(|b| b["type"] == "actions"));
    assert_eq!(
        texts(&blocks),
        [
            ":no_entry_sign: <@U42> cancelled this reap: nothing was removed.".to_owned(),
            format!("Plan `{PLAN_ID}` · 3 servers planned"),
        ]
    );
}

#[test]
fn nothing_stuck_means_no_buttons() {
    let plan = Plan {
        selected: Vec::new(),
        skipped: Vec::new(),
        running_left_alone: 0,
        notes: Vec::new(),
        ..sample_plan()
    };
    let blocks = plan_blocks(&plan, PLAN_ID);
    assert!(!blocks.iter().any(|b| b["type"] == "actions"));
    assert_eq!(
        texts(&blocks)[0],
        ":white_check_mark: No ARM builder is stuck: nothing to remove."
    );
    let busy = Plan {
        running_left_alone: 5,
        skipped: vec![skipped("runner-qasr7s6-arm-5", "locked: needs a human")],
        ..plan
    };
    let texts = texts(&plan_blocks(&busy, PLAN_ID));
    assert_eq!(
        texts[0],
        ":white_check_mark: Nothing to remove: 1 server is shut down but left alone (below)."
    );
    assert!(texts[1].contains("5 builders running, starting or stopping"));
}

#[test]
fn unknown_runner_slots_are_said() {
    let plan = Plan {
        machines_known: false,
        selected: vec![removal(1, None)],
        ..sample_plan()
    };
    let first = &texts(&plan_blocks(&plan, PLAN_ID))[0];
    assert!(
        first.starts_with(
            ":broom: *1 stuck ARM builder can be removed* (runner slots unknown: no \
             docker-machine store was read)."
        ),
        "{first}"
    );
    assert!(first.contains("gives up on the machine"), "{first}");
}

#[test]
fn block_kit_limits_hold_for_huge_plans() {
    let long = "x".repeat(500);
    let mut plan = sample_plan();
    plan.id = "p".repeat(400);
    plan.selected = (0..200)
        .map(|n| PlannedRemoval {
            name: format!("{long}-{n}"),
            machine: Some(format!("{long}-{n}")),
            ..removal(n, None)
        })
        .collect();
    plan.skipped = (0..300)
        .map(|n| skipped(&format!("{long}-{n}"), &long))
        .collect();
    let blocks = plan_blocks(&plan, "p");
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    for text in texts(&blocks) {
        assert!(
            text.chars().count() <= 3000,
            "{} chars",
            text.chars().count()
        );
    }
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    assert!(actions["block_id"].as_str().expect("id").chars().count() <= 255);
    for button in actions["elements"].as_array().expect("buttons") {
        assert!(
            button["text"]["text"]
                .as_str()
                .expect("text")
                .chars()
                .count()
                <= 75
        );
    }
    let dialog = &actions["elements"][0]["confirm"];
    assert!(dialog["title"]["text"].as_str().expect("t").chars().count() <= 100);
    assert!(dialog["text"]["text"].as_str().expect("t").chars().count() <= 300);
    assert!(
        dialog["confirm"]["text"]
            .as_str()
            .expect("t")
            .chars()
            .count()
            <= 30
    );
    assert!(dialog["deny"]["text"].as_str().expect("t").chars().count() <= 30);
    assert!(
        texts(&blocks)
            .iter()
            .any(|t| t.starts_with("…and 158 more"))
    );

    let report = ReapReport {
        plan_id: plan.id.clone(),
        started_at: now(),
        finished_at: now(),
        results: plan
            .selected
            .iter()
            .map(|r| result(r, ServerOutcome::Removed, SlotOutcome::NoStore))
            .collect(),
        stopped_early: Some(long.clone()),
    };
    let blocks = report_blocks(&report, &plan, "U1");
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    for text in texts(&blocks) {
        assert!(text.chars().count() <= 3000);
    }
}
