//! The reap messages, each as a snapshot of its Block Kit JSON plus the facts a reader needs:
//! the plan and its confirm dialog, the report (all well, and with failures), cancel, the
//! refusals, the no-op plan, the no-docker-machine-store warning; Block Kit limits on oversized
//! plans and escaping.

use armbot::fleet::{ServerState, VolumeType};
use armbot::reap::{
    CANCEL_ACTION_ID, CONFIRM_ACTION_ID, ClickOutcome, Plan, PlannedRemoval, PlannedVolume,
    ReapReport, ResourceKind, ResourceOutcome, ResourceResult, ServerOutcome, ServerResult,
    Skipped, SlotOutcome, auto_report_blocks, cancelled_blocks, click_reply, group_unchecked,
    plan_blocks, plan_text, refusal, report_blocks, report_message, summary_text,
};
use armbot::slack::{Message, mrkdwn::problem};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

const PLAN_ID: &str = "5f0c2d3e-8a41-4b7f-9c2e-1d0a6b7c8e9f";
const PREFIX: &str = "runner-qasr7s6-arm-";

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
            removal(1, Some("runner-qasr7s6-arm-1")),
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
                "stopped in place for only 4 min (grace period 15 min)",
            ),
        ],
        running_left_alone: 12,
        notes: vec![
            "1 entry of the docker-machine store could not be read and was ignored.".into(),
        ],
        name_prefix: Some(PREFIX.into()),
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

/// A message as Slack receives it: snapshotted, and within Slack's limits with every literal
/// `<`, `>` and `&` escaped (`problems` finds a bare one or an unknown `<…>`).
fn check(name: &str, message: &Message) -> String {
    assert_eq!(message.problems(), Vec::<String>::new(), "{name}");
    snapshot(name, &serde_json::to_value(message).expect("json"));
    texts(&message.blocks).join("\n")
}

fn plan_message(plan: &Plan) -> Message {
    Message::new(plan_text(plan), plan_blocks(plan, &plan.id))
}

fn buttons(blocks: &[Value]) -> Option<&Value> {
    blocks.iter().find(|b| b["type"] == "actions")
}

#[test]
fn plan_message_snapshot() {
    let plan = sample_plan();
    let message = plan_message(&plan);
    let all = check("plan", &message);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        lines[..5],
        [
            ":broom: *3 stuck ARM builders can be removed*, holding 2 runner slots.",
            "Removing one deletes its server, volumes and flexible IPs, and frees its runner slot:",
            // One line per server: short name, zone, how long; the runner machine only when
            // it is not the server's namesake, or missing.
            "• `&lt;!channel&gt; &amp; co` · fr-par-1 · stopped for 2 d 5 h · runner machine \
             `runner-qasr7s6-gitlab-runner-3`",
            "• `1` · fr-par-1 · stopped in place for 3 h 20 min",
            "• `2` · fr-par-1 · stopped in place for 3 h 20 min · no runner machine, so no slot \
             to free",
        ]
    );
    assert!(!all.contains("<!channel>"), "unescaped name");
    assert!(
        all.contains("• `5` · fr-par-1: locked: needs a human"),
        "{all}"
    );
    assert!(
        all.contains("12 builders are running, starting or stopping"),
        "{all}"
    );
    assert!(
        all.ends_with(&format!(
            "Expires in 10 min, at <!date^{}^{{time}}|10:10 UTC> · names without \
             `runner-qasr7s6-arm-` · plan {PLAN_ID}",
            (now() + TimeDelta::minutes(10)).timestamp()
        )),
        "{all}"
    );
    let actions = buttons(&message.blocks).expect("buttons");
    assert_eq!(actions["elements"][0]["action_id"], CONFIRM_ACTION_ID);
    assert_eq!(actions["elements"][0]["text"]["text"], "Remove 3 builders");
    assert_eq!(actions["elements"][0]["value"], PLAN_ID);
    assert_eq!(actions["elements"][0]["style"], "danger");
    assert_eq!(actions["elements"][1]["action_id"], CANCEL_ACTION_ID);
    assert_eq!(actions["elements"][1]["text"]["text"], "Cancel");
    assert!(
        actions["block_id"]
            .as_str()
            .is_some_and(|id| id.contains(PLAN_ID))
    );
    assert_eq!(message.text, "3 stuck ARM builders can be removed.");
}

#[test]
fn the_confirm_dialog_names_the_zones_and_the_age_range() {
    let mut plan = sample_plan();
    plan.selected[1].zone = "nl-ams-1".into();
    let blocks = plan_blocks(&plan, PLAN_ID);
    let dialog = &buttons(&blocks).expect("buttons")["elements"][0]["confirm"];
    snapshot("confirm_dialog", dialog);
    assert_eq!(dialog["style"], "danger");
    assert_eq!(dialog["title"]["text"], "Remove 3 builders?");
    assert_eq!(
        dialog["text"]["text"],
        "Deletes 3 servers in fr-par-1 and nl-ams-1 (shut down for 3 h 20 min to 2 d 5 h) with \
         4 volumes and 3 flexible IPs, and frees 2 runner slots. This cannot be undone."
    );
    assert_eq!(dialog["confirm"]["text"], "Remove 3 builders");
    assert_eq!(dialog["deny"]["text"], "Keep them");

    // One server: one zone, one age, no slot.
    let one = Plan {
        selected: vec![removal(7, None)],
        ..sample_plan()
    };
    let blocks = plan_blocks(&one, PLAN_ID);
    let dialog = &buttons(&blocks).expect("buttons")["elements"][0]["confirm"];
    assert_eq!(
        dialog["text"]["text"],
        "Deletes 1 server in fr-par-1 (shut down for 3 h 20 min) with 1 volume and 1 flexible \
         IP. This cannot be undone."
    );
    assert_eq!(dialog["title"]["text"], "Remove 1 builder?");
}

#[test]
fn a_report_with_failures_details_only_them() {
    let plan = sample_plan();
    let report = sample_report(&plan);
    let all = check(
        "report_with_failures",
        &report_message(&report, &plan, "U123ABC"),
    );
    let blocks = report_blocks(&report, &plan, "U123ABC");
    assert!(buttons(&blocks).is_none(), "buttons gone");
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            ":warning: <@U123ABC> removed *2 of 3 stuck builders*; 1 with a failure, 1 skipped.",
            ":white_check_mark: `1` was already gone.",
            ":x: `&lt;!channel&gt; &amp; co` · fr-par-1: removed, but volume `vol-3b` \
             (sbs_volume) not removed: Scaleway answered with an error (HTTP 412: resource \
             still in use).",
            ":leftwards_arrow_with_hook: `2` · fr-par-1: skipped: started again since the plan \
             (now `running`)",
            "2 volumes and 2 flexible IPs removed · 2 runner slots freed · quota freed: 1 × \
             `COPARM1-4C-16G` · names without `runner-qasr7s6-arm-` · plan \
             5f0c2d3e-8a41-4b7f-9c2e-1d0a6b7c8e9f",
        ]
    );
    assert!(!all.contains("ran "), "no run times: {all}");
    assert_eq!(
        summary_text(&report, "U123ABC"),
        "<@U123ABC> removed 2 of 3 stuck builders; 1 with a failure, 1 skipped."
    );
    // Something that is not a user id is shown, escaped, never turned into markup.
    assert!(summary_text(&report, "<!here>").starts_with("&lt;!here&gt; removed"));
}

#[test]
fn a_report_where_all_went_well_is_one_line_of_names() {
    let plan = sample_plan();
    let report = ReapReport {
        results: vec![
            result(
                &plan.selected[0],
                ServerOutcome::Removed,
                SlotOutcome::Freed,
            ),
            result(
                &plan.selected[1],
                ServerOutcome::Removed,
                SlotOutcome::Freed,
            ),
            result(
                &plan.selected[2],
                ServerOutcome::AlreadyGone,
                SlotOutcome::NoMachine,
            ),
        ],
        ..sample_report(&plan)
    };
    let all = check(
        "report_all_well",
        &report_message(&report, &plan, "U123ABC"),
    );
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            ":broom: <@U123ABC> removed *3 stuck builders*.",
            ":white_check_mark: Removed `&lt;!channel&gt; &amp; co` and `1`; `2` was already \
             gone.",
            "4 volumes and 3 flexible IPs removed · 2 runner slots freed · quota freed: 2 × \
             `COPARM1-4C-16G` · names without `runner-qasr7s6-arm-` · plan \
             5f0c2d3e-8a41-4b7f-9c2e-1d0a6b7c8e9f",
        ]
    );

    // The fleet watch's auto-reap reads the same, said by the watch.
    let auto = Message::new(
        summary_text(&report, "The fleet watch"),
        auto_report_blocks(&report, &plan, "over 1 h"),
    );
    let all = check("auto_report", &auto);
    assert!(
        all.starts_with(":broom: The fleet watch removed *3 builders stuck over 1 h*."),
        "{all}"
    );
}

#[test]
fn a_run_stopped_early_groups_what_it_did_not_reach() {
    let plan = sample_plan();
    let stopped = |r: &PlannedRemoval| {
        result(
            r,
            ServerOutcome::NotAttempted {
                reason: "not attempted: the run stopped early".into(),
            },
            SlotOutcome::NotAttempted,
        )
    };
    let report = ReapReport {
        results: vec![
            result(
                &plan.selected[0],
                ServerOutcome::Failed {
                    reason: "The Scaleway key lacks permission.".into(),
                },
                SlotOutcome::NotAttempted,
            ),
            stopped(&plan.selected[1]),
            stopped(&plan.selected[2]),
        ],
        stopped_early: Some("Scaleway refused to delete a server. The run stopped.".into()),
        ..sample_report(&plan)
    };
    let all = check(
        "report_stopped_early",
        &report_message(&report, &plan, "U01"),
    );
    assert_eq!(
        all.lines().take(4).collect::<Vec<_>>(),
        [
            ":warning: <@U01> removed *0 of 3 stuck builders*; 1 with a failure, 2 not attempted.",
            ":octagonal_sign: Scaleway refused to delete a server. The run stopped.",
            ":x: `&lt;!channel&gt; &amp; co` · fr-par-1: not removed: The Scaleway key lacks \
             permission.",
            ":black_square_for_stop: `1` and `2`: not attempted: the run stopped early",
        ]
    );
}

#[test]
fn cancelling_says_who_and_drops_the_buttons() {
    let reply = click_reply(&ClickOutcome::Cancelled {
        plan: sample_plan(),
        user: "U42".into(),
    });
    let message = reply.message().expect("a message");
    let all = check("cancelled", message);
    assert!(buttons(&message.blocks).is_none());
    assert_eq!(reply.body().expect("body")["replace_original"], true);
    assert_eq!(
        texts(&cancelled_blocks(&sample_plan(), "U42")),
        [
            ":no_entry_sign: <@U42> cancelled the reap: nothing was removed, the 3 stuck \
             builders are still there."
                .to_owned(),
            format!("plan {PLAN_ID}"),
        ]
    );
    assert!(all.contains("<@U42>"));
}

#[test]
fn refusals_name_who_can_not_the_settings() {
    let users = ["U0OPS1".to_owned()];
    let refused = click_reply(&ClickOutcome::Refused(refusal(
        true,
        &users,
        Some("S0REAPERS"),
    )));
    let body = refused.body().expect("body");
    snapshot("refusal", &body);
    assert_eq!(body["response_type"], "ephemeral");
    assert_eq!(body["replace_original"], false, "the plan stays");
    assert_eq!(
        body["text"],
        "Only <@U0OPS1> or members of <!subteam^S0REAPERS> can confirm this reap; nothing \
         changed."
    );
    let cases = [
        (
            refusal(false, &users, None),
            "Only <@U0OPS1> can cancel this reap; nothing changed.",
        ),
        (
            refusal(true, &[], None),
            "Nobody may confirm a reap yet: an admin has to allow people first. Nothing changed.",
        ),
        (
            refusal(
                true,
                &[
                    "U01".into(),
                    "U02".into(),
                    "U03".into(),
                    "U04".into(),
                    "U05".into(),
                    "U06".into(),
                ],
                Some("S01"),
            ),
            "Only <@U01>, <@U02>, <@U03>, <@U04>, <@U05>, 1 others or members of <!subteam^S01> can \
             confirm this reap; nothing changed.",
        ),
        (
            group_unchecked(
                true,
                &users,
                "Slack did not answer in time; try again in a minute",
            ),
            "I couldn't check whether you are in the reap group: Slack did not answer in time; \
             try again in a minute. <@U0OPS1> can confirm meanwhile. Nothing changed.",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
        assert!(!got.contains("allowed_"), "{got}");
        assert_eq!(problem(&got), None, "{got}");
    }
}

#[test]
fn nothing_stuck_means_no_buttons_and_no_plan_id() {
    let plan = Plan {
        selected: Vec::new(),
        skipped: Vec::new(),
        running_left_alone: 0,
        notes: Vec::new(),
        ..sample_plan()
    };
    let message = plan_message(&plan);
    assert!(buttons(&message.blocks).is_none());
    assert_eq!(
        texts(&message.blocks),
        [
            ":white_check_mark: *Nothing to remove*: no ARM builder is stuck shut down.",
            "A builder counts as stuck after 15 min shut down",
        ]
    );
    let busy = Plan {
        running_left_alone: 5,
        skipped: vec![skipped("runner-qasr7s6-arm-5", "locked: needs a human")],
        ..plan
    };
    let all = check("nothing_to_remove", &plan_message(&busy));
    assert!(!all.contains(PLAN_ID), "no plan id: {all}");
    assert!(!all.contains("plan "), "{all}");
    assert!(
        all.contains(
            "*Left alone*\n• `5` · fr-par-1: locked: needs a human\n5 builders are running"
        ),
        "{all}"
    );
}

#[test]
fn without_a_store_one_line_says_slots_stay_and_what_to_run() {
    let plan = Plan {
        machines_known: false,
        selected: vec![removal(1, None), removal(2, None)],
        skipped: Vec::new(),
        running_left_alone: 0,
        notes: Vec::new(),
        ..sample_plan()
    };
    let all = check("plan_without_store", &plan_message(&plan));
    let warning = ":warning: Runner slots will not be freed (no docker-machine store): afterwards \
                   run `docker-machine rm -f &lt;machine&gt;` on the runner manager.";
    assert_eq!(
        all.lines().take(5).collect::<Vec<_>>(),
        [
            ":broom: *2 stuck ARM builders can be removed*.",
            "Removing one deletes its server, volumes and flexible IPs:",
            "• `1` · fr-par-1 · stopped in place for 3 h 20 min",
            "• `2` · fr-par-1 · stopped in place for 3 h 20 min",
            warning,
        ]
    );
    assert_eq!(all.matches("docker-machine").count(), 2, "said once: {all}");
    assert!(
        !all.contains("machine_store") && !all.contains("[reap]"),
        "{all}"
    );

    let report = ReapReport {
        results: plan
            .selected
            .iter()
            .map(|r| result(r, ServerOutcome::Removed, SlotOutcome::NoStore))
            .collect(),
        ..sample_report(&sample_plan())
    };
    let all = check(
        "report_without_store",
        &report_message(&report, &plan, "U01"),
    );
    assert!(
        all.contains(
            "\n:warning: Runner slots were not freed (no docker-machine store): run \
             `docker-machine rm -f &lt;machine&gt;` on the runner manager.\n"
        ),
        "{all}"
    );
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
    // The list is cut between lines, and says how many it left out.
    let servers = &texts(&blocks)[0];
    let shown = servers.lines().filter(|l| l.starts_with('•')).count();
    assert!(
        servers.ends_with(&format!("\n…and {} more", 200 - shown)),
        "{servers}"
    );
    assert_eq!(
        Message::new("plan", blocks.clone()).problems(),
        Vec::<String>::new()
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
    let blocks = report_blocks(&report, &plan, "U01");
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    assert_eq!(
        Message::new("report", blocks.clone()).problems(),
        Vec::<String>::new()
    );
    for text in texts(&blocks) {
        assert!(text.chars().count() <= 3000);
    }
}

#[test]
fn something_left_on_purpose_is_a_warning_not_a_failure() {
    let plan = sample_plan();
    let mut left = result(
        &plan.selected[1],
        ServerOutcome::Removed,
        SlotOutcome::Freed,
    );
    left.resources[0].outcome = ResourceOutcome::LeftAlone {
        reason: "volume type `weird` is unknown to reap: delete it by hand".into(),
    };
    let report = ReapReport {
        results: vec![left],
        ..sample_report(&plan)
    };
    let blocks = report_blocks(&report, &plan, "U01");
    assert_eq!(
        texts(&blocks)[0],
        ":broom: <@U01> removed *1 stuck builder*.\n:warning: `1` · fr-par-1: removed, but volume \
         `vol-1` (l_ssd) left: volume type `weird` is unknown to reap: delete it by hand"
    );
}

/// A name made to end the code span and fake a line of its own stays inside its line.
#[test]
fn a_name_with_a_line_break_and_a_backtick_stays_in_its_line() {
    let mut plan = sample_plan();
    plan.selected[0].name = "x`\n• *all 40 builders removed* `y".into();
    let message = plan_message(&plan);
    assert_eq!(message.problems(), Vec::<String>::new());
    let all = texts(&message.blocks).join("\n");
    assert!(
        all.contains("\n• `xˋ • *all 40 builders removed* ˋy` · fr-par-1 · "),
        "{all}"
    );
    assert!(!all.contains("\n• *all"), "{all}");
}

#[test]
fn the_footer_names_what_was_stripped_from_the_names() {
    let mut plan = sample_plan();
    // A prefix written without its separator: the names lose the separator too, and the
    // footer says so.
    plan.name_prefix = Some("runner-qasr7s6-arm".into());
    let all = texts(&plan_message(&plan).blocks).join("\n");
    assert!(all.contains("\n• `1` · fr-par-1 · "), "{all}");
    assert!(all.contains("names without `runner-qasr7s6-arm-`"), "{all}");
}
