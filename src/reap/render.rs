//! Slack messages for `/arm reap`: the plan with its Confirm and Cancel buttons, the same
//! message updated with the outcome, and the one-line channel summary.
//!
//! Reasons in plans and reports are already mrkdwn (escaped where they quote values); names,
//! ids, zones and types are escaped here.

use serde_json::{Value, json};

use super::click::{ClickOutcome, Unclaimed};
use super::execute::{
    NO_STORE_NOTE, ReapReport, ResourceKind, ResourceOutcome, ServerOutcome, ServerResult,
    SlotOutcome,
};
use super::plan::{Plan, PlannedRemoval};
use super::{count, escape, minutes};
use crate::slack::{
    Message, Reply,
    blocks::{MAX_BLOCKS, MAX_TEXT_CHARS, actions, button, context, duration, plain, section},
    mrkdwn::truncate,
};

/// `action_id` of the Confirm button; its `value` is what the caller passed (the plan id).
pub const CONFIRM_ACTION_ID: &str = "reap_confirm";
/// `action_id` of the Cancel button; same `value` as Confirm.
pub const CANCEL_ACTION_ID: &str = "reap_cancel";

/// Block Kit: `block_id` is at most 255 characters.
const MAX_BLOCK_ID_CHARS: usize = 255;
/// Blocks reserved for the summary, lists, notes, actions and footer around the servers.
const FRAME_BLOCKS: usize = 8;
/// Servers left alone listed before "and N more".
const SKIPPED_SHOWN: usize = 15;
/// Server names are user-chosen; long ones would crowd out the rest.
const MAX_NAME_CHARS: usize = 80;
/// A confirm dialog's title, confirm and deny texts, and its body.
const MAX_DIALOG_TITLE: usize = 100;
const MAX_DIALOG_BUTTON: usize = 30;
const MAX_DIALOG_TEXT: usize = 300;
/// Failures named in the one-line summary.
const FAILURES_IN_SUMMARY: usize = 3;

/// The dry run: what Confirm would remove, what is left alone and why, and the buttons
/// (only when something is selected). `confirm_action_value` goes into both buttons' `value`.
pub fn plan_blocks(plan: &Plan, confirm_action_value: &str) -> Vec<Value> {
    let mut blocks = vec![section(&match plan_note_line(plan) {
        Some(note) => format!("{}\n{note}", plan_summary(plan)),
        None => plan_summary(plan),
    })];
    let room = MAX_BLOCKS - FRAME_BLOCKS;
    let (shown, rest) = plan.selected.split_at(plan.selected.len().min(room));
    for removal in shown {
        blocks.push(section(&removal_text(removal)));
    }
    if !rest.is_empty() {
        let names: Vec<String> = rest.iter().map(|r| code_name(&r.name)).collect();
        blocks.push(section(&format!(
            "…and {} more: {}",
            rest.len(),
            names.join(", ")
        )));
    }
    if let Some(text) = left_alone_text(plan) {
        blocks.push(section(&text));
    }
    if !plan.notes.is_empty() {
        blocks.push(context(&plan.notes.join("\n")));
    }
    if !plan.selected.is_empty() {
        let mut confirm = button(
            CONFIRM_ACTION_ID,
            "Confirm",
            confirm_action_value,
            Some("danger"),
        );
        confirm["confirm"] = confirm_dialog(plan);
        let cancel = button(CANCEL_ACTION_ID, "Cancel", confirm_action_value, None);
        blocks.push(actions(
            Some(&block_id("reap_actions", &plan.id)),
            vec![confirm, cancel],
        ));
    }
    blocks.push(context(&format!(
        "Plan `{}` · made {} UTC · expires {} UTC · grace {} · at most {} per run",
        escape(&plan.id),
        plan.created_at.format("%H:%M"),
        plan.expires_at.format("%H:%M"),
        minutes(plan.grace_minutes),
        plan.max_per_run
    )));
    blocks
}

/// The plan's fallback text (notifications, clients without Block Kit).
pub fn plan_text(plan: &Plan) -> String {
    plan_summary(plan)
}

/// The plan message after a run: no buttons, each server's outcome.
pub fn report_blocks(report: &ReapReport, plan: &Plan, confirmed_by_user_id: &str) -> Vec<Value> {
    let who = mention(confirmed_by_user_id);
    report_body(
        report,
        &format!("Reap confirmed by {who}"),
        &format!("Plan `{}` · confirmed by {who}", escape(&plan.id)),
    )
}

/// What the fleet watch's auto-reap did, for the incident's thread: every server's outcome,
/// as after a confirmed reap. `after` says which builders it takes ("stuck over 1h").
pub fn auto_report_blocks(report: &ReapReport, plan: &Plan, after: &str) -> Vec<Value> {
    report_body(
        report,
        &format!("Auto-reap of the builders stuck {after}"),
        &format!("Plan `{}` · run by the fleet watch", escape(&plan.id)),
    )
}

fn report_body(report: &ReapReport, headline_by: &str, footer: &str) -> Vec<Value> {
    let c = report.counts();
    let mut headline = format!(
        "{} {headline_by}: {} removed",
        if c.failed > 0 || report.stopped_early.is_some() {
            ":warning:"
        } else {
            ":broom:"
        },
        count(c.servers_removed, "server", "servers"),
    );
    let quota = report.quota_freed();
    if !quota.is_empty() {
        let types: Vec<String> = quota
            .iter()
            .map(|(t, n)| format!("{n} × `{}`", escape(t)))
            .collect();
        headline.push_str(&format!(" (quota freed: {})", types.join(", ")));
    }
    headline.push_str(&format!(
        ", {} and {} removed, {} freed",
        count(c.volumes_removed, "volume", "volumes"),
        count(c.ips_removed, "flexible IP", "flexible IPs"),
        count(c.slots_freed, "runner slot", "runner slots"),
    ));
    for (n, what) in [
        (c.already_gone, "already gone"),
        (c.skipped, "skipped"),
        (c.failed, "with failures"),
        (c.not_attempted, "not attempted"),
    ] {
        if n > 0 {
            headline.push_str(&format!("; {n} {what}"));
        }
    }
    headline.push('.');
    let mut blocks = vec![section(&headline)];
    if let Some(why) = &report.stopped_early {
        blocks.push(section(&format!(":octagonal_sign: {why}")));
    }
    let room = MAX_BLOCKS - FRAME_BLOCKS;
    let (shown, rest) = report.results.split_at(report.results.len().min(room));
    for result in shown {
        blocks.push(section(&result_text(result)));
    }
    if !rest.is_empty() {
        let lines: Vec<String> = rest
            .iter()
            .map(|r| format!("{} {}", outcome_emoji(r), code_name(&r.name)))
            .collect();
        blocks.push(section(&format!(
            "…and {} more: {}",
            rest.len(),
            lines.join(", ")
        )));
    }
    if report.no_store() {
        blocks.push(context(NO_STORE_NOTE));
    }
    blocks.push(context(&format!(
        "{footer} · ran {}–{} UTC",
        report.started_at.format("%H:%M:%S"),
        report.finished_at.format("%H:%M:%S")
    )));
    blocks
}

/// The plan message after Cancel: no buttons, who cancelled, nothing done.
pub fn cancelled_blocks(plan: &Plan, cancelled_by_user_id: &str) -> Vec<Value> {
    vec![
        section(&format!(
            ":no_entry_sign: {} cancelled this reap: nothing was removed.",
            mention(cancelled_by_user_id)
        )),
        context(&format!(
            "Plan `{}` · {} planned",
            escape(&plan.id),
            count(plan.selected.len(), "server", "servers")
        )),
    ]
}

/// The plan's message once Confirm or Cancel was clicked: the outcome replaces the plan, a
/// refusal is shown to the clicker alone and leaves the plan as it is.
pub fn click_reply(outcome: &ClickOutcome) -> Reply {
    match outcome {
        ClickOutcome::Refused(sentence) => Reply::aside(sentence.clone()),
        ClickOutcome::NotClaimed(why) => Reply::aside(match why {
            Unclaimed::NotFound => "I don't know that plan; run `/arm reap` again.".to_string(),
            Unclaimed::Expired => {
                "That plan has expired; run `/arm reap` again for a fresh one.".to_string()
            }
            Unclaimed::AlreadyHandled(state) => {
                format!("That plan is already {state}; nothing more to do.")
            }
            Unclaimed::Unreadable => {
                "That plan could not be read; run `/arm reap` again.".to_string()
            }
            Unclaimed::StoreUnavailable => {
                "The store is unavailable; try again in a moment.".to_string()
            }
        }),
        ClickOutcome::Cancelled { plan, user } => {
            Reply::ReplaceOriginal(Message::new("Reap cancelled", cancelled_blocks(plan, user)))
        }
        ClickOutcome::Executed { plan, report, user } => Reply::ReplaceOriginal(Message::new(
            summary_text(report, user),
            report_blocks(report, plan, user),
        )),
    }
}

/// A run the service's crash (or a vanished replica) cut short, as found again at start-up:
/// what Scaleway no longer has and what it still has, so nobody re-runs it blindly.
pub fn interrupted_text(
    plan: &Plan,
    confirmed_by: Option<&str>,
    gone: &[&PlannedRemoval],
    still_there: &[&PlannedRemoval],
) -> String {
    let names = |rs: &[&PlannedRemoval]| {
        rs.iter()
            .map(|r| code_name(&r.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let by = confirmed_by.map_or_else(String::new, |u| format!(" confirmed by {}", mention(u)));
    let mut text = format!(
        ":warning: The reap{by} (plan `{}`) was interrupted: the bot stopped while it ran.",
        escape(&plan.id)
    );
    if !gone.is_empty() {
        text.push_str(&format!(
            " Removed: {} ({}).",
            count(gone.len(), "server", "servers"),
            names(gone)
        ));
    }
    if !still_there.is_empty() {
        text.push_str(&format!(
            " Still there: {} ({}); run `/arm reap` again for a fresh plan.",
            count(still_there.len(), "server", "servers"),
            names(still_there)
        ));
    }
    if gone.is_empty() && still_there.is_empty() {
        text.push_str(" It had nothing to remove.");
    }
    text
}

/// The channel summary, e.g. "<@U123> reaped 3 stuck builders: 3 servers, 5 volumes, 3 IPs
/// removed, 3 runner slots freed; 1 failed: …".
pub fn summary_text(report: &ReapReport, user: &str) -> String {
    let c = report.counts();
    let total = report.results.len();
    let done = c.servers_removed + c.already_gone;
    let of = if done == total {
        String::new()
    } else {
        format!("{done} of ")
    };
    let mut text = format!(
        "{} reaped {of}{}: {}, {}, {} removed, {} freed",
        mention(user),
        count(total, "stuck builder", "stuck builders"),
        count(c.servers_removed, "server", "servers"),
        count(c.volumes_removed, "volume", "volumes"),
        count(c.ips_removed, "IP", "IPs"),
        count(c.slots_freed, "runner slot", "runner slots"),
    );
    if c.already_gone > 0 {
        text.push_str(&format!("; {} already gone", c.already_gone));
    }
    if c.skipped > 0 {
        text.push_str(&format!("; {} skipped", c.skipped));
    }
    if c.failed > 0 {
        let failures: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.has_failure())
            .take(FAILURES_IN_SUMMARY)
            .map(|r| {
                format!(
                    "{} ({})",
                    code_name(&r.name),
                    truncate(&first_failure(r), 150)
                )
            })
            .collect();
        let more = if c.failed > FAILURES_IN_SUMMARY {
            format!(" and {} more", c.failed - FAILURES_IN_SUMMARY)
        } else {
            String::new()
        };
        text.push_str(&format!(
            "; {} failed: {}{more}",
            c.failed,
            failures.join(", ")
        ));
    }
    if report.stopped_early.is_some() {
        text.push_str(&format!(
            "; the run stopped early ({} not attempted)",
            c.not_attempted
        ));
    }
    text
}

fn plan_summary(plan: &Plan) -> String {
    let n = plan.selected.len();
    if n == 0 {
        return match plan.skipped.len() {
            0 => ":white_check_mark: No ARM builder is stuck: nothing to remove.".to_owned(),
            left => format!(
                ":white_check_mark: Nothing to remove: {} shut down but left alone (below).",
                count(left, "server is", "servers are")
            ),
        };
    }
    let slots = if !plan.machines_known {
        "runner slots unknown: no docker-machine store was read".to_owned()
    } else {
        let held = plan.runner_slots();
        match (held, n) {
            (0, _) => "none of them holds a runner slot".to_owned(),
            (1, 1) => "it holds 1 runner slot".to_owned(),
            (h, _) => format!("they hold {}", count(h, "runner slot", "runner slots")),
        }
    };
    format!(
        ":broom: *{} can be removed* ({slots}).",
        count(n, "stuck ARM builder", "stuck ARM builders")
    )
}

/// What the reader should know before pressing Confirm.
fn plan_note_line(plan: &Plan) -> Option<String> {
    if plan.selected.is_empty() {
        return None;
    }
    Some(if plan.machines_known {
        "Confirm deletes the servers, their volumes and flexible IPs, then frees their runner \
         slots. Nothing happens until an allowed person confirms."
            .to_owned()
    } else {
        format!(
            "Confirm deletes the servers, their volumes and flexible IPs. {NO_STORE_NOTE} \
             Nothing happens until an allowed person confirms."
        )
    })
}

fn removal_text(r: &PlannedRemoval) -> String {
    let mut parts = vec!["the server".to_owned()];
    if !r.volumes.is_empty() {
        parts.push(count(r.volumes.len(), "volume", "volumes"));
    }
    if !r.flexible_ips.is_empty() {
        parts.push(count(r.flexible_ips.len(), "flexible IP", "flexible IPs"));
    }
    let machine = match &r.machine {
        Some(m) => format!("runner machine `{}`", escape(m)),
        None => "no runner machine found".to_owned(),
    };
    format!(
        "*{}* · `{}` · {} · {} for {}\nWill remove {}; {machine}.",
        code_name(&r.name),
        escape(&r.commercial_type),
        escape(&r.zone),
        escape(r.state.as_str()),
        duration(r.stuck_for.num_seconds()),
        parts.join(", ")
    )
}

fn left_alone_text(plan: &Plan) -> Option<String> {
    if plan.skipped.is_empty() && plan.running_left_alone == 0 {
        return None;
    }
    let mut text = "*Left alone*".to_owned();
    let mut shown = 0;
    for s in plan.skipped.iter().take(SKIPPED_SHOWN) {
        let line = format!(
            "\n• {} ({}): {}",
            code_name(&s.name),
            escape(&s.zone),
            s.reason
        );
        // Room for the "and N more" and running lines below.
        if text.chars().count() + line.chars().count() > MAX_TEXT_CHARS - 200 {
            break;
        }
        text.push_str(&line);
        shown += 1;
    }
    if plan.skipped.len() > shown {
        text.push_str(&format!("\n…and {} more", plan.skipped.len() - shown));
    }
    if plan.running_left_alone > 0 {
        text.push_str(&format!(
            "\n{} running, starting or stopping: the runner may be using them.",
            count(plan.running_left_alone, "builder", "builders")
        ));
    }
    Some(text)
}

fn result_text(r: &ServerResult) -> String {
    let head = format!(
        "{} *{}* · `{}` · {}",
        outcome_emoji(r),
        code_name(&r.name),
        escape(&r.commercial_type),
        escape(&r.zone)
    );
    let server = match &r.outcome {
        ServerOutcome::Removed => "server removed".to_owned(),
        ServerOutcome::AlreadyGone => "server already gone".to_owned(),
        ServerOutcome::Skipped { reason } => format!("skipped: {reason}"),
        ServerOutcome::Failed { reason } => format!("server not removed: {reason}"),
        ServerOutcome::NotAttempted { reason } => reason.clone(),
    };
    let mut lines = vec![server];
    let volumes_done = r
        .resources
        .iter()
        .filter(|x| matches!(x.kind, ResourceKind::Volume { .. }) && x.outcome.is_done())
        .count();
    let ips_done = r
        .resources
        .iter()
        .filter(|x| x.kind == ResourceKind::FlexibleIp && x.outcome.is_done())
        .count();
    if volumes_done > 0 || ips_done > 0 {
        lines.push(format!(
            "{} and {} removed",
            count(volumes_done, "volume", "volumes"),
            count(ips_done, "flexible IP", "flexible IPs")
        ));
    }
    for res in &r.resources {
        let what = match &res.kind {
            ResourceKind::Volume { volume_type } => {
                format!(
                    "volume `{}` ({})",
                    escape(&res.id),
                    escape(volume_type.as_str())
                )
            }
            ResourceKind::FlexibleIp => format!("flexible IP `{}`", escape(&res.id)),
        };
        match &res.outcome {
            ResourceOutcome::Failed { reason } => lines.push(format!("{what} failed: {reason}")),
            ResourceOutcome::LeftAlone { reason } => {
                lines.push(format!("{what} left: {reason}"));
            }
            ResourceOutcome::Removed | ResourceOutcome::AlreadyGone => {}
        }
    }
    let machine = r
        .machine
        .as_deref()
        .map(|m| format!("`{}`", escape(m)))
        .unwrap_or_default();
    match &r.slot {
        SlotOutcome::Freed => lines.push(format!("runner slot freed ({machine})")),
        SlotOutcome::Failed { reason } => {
            lines.push(format!("runner slot not freed ({machine}): {reason}"));
        }
        SlotOutcome::NoStore => lines.push("runner slot: see the note below".to_owned()),
        SlotOutcome::NoMachine => {
            lines.push("no runner machine found, so no slot to free".to_owned());
        }
        SlotOutcome::NotAttempted => {}
    }
    format!("{head}\n{}", lines.join("\n"))
}

fn outcome_emoji(r: &ServerResult) -> &'static str {
    if r.has_failure() {
        return ":x:";
    }
    match r.outcome {
        ServerOutcome::Removed | ServerOutcome::AlreadyGone => ":white_check_mark:",
        ServerOutcome::Skipped { .. } => ":leftwards_arrow_with_hook:",
        ServerOutcome::NotAttempted { .. } | ServerOutcome::Failed { .. } => {
            ":black_square_for_stop:"
        }
    }
}

fn first_failure(r: &ServerResult) -> String {
    if let ServerOutcome::Failed { reason } = &r.outcome {
        return reason.clone();
    }
    for res in &r.resources {
        if let ResourceOutcome::Failed { reason } = &res.outcome {
            return reason.clone();
        }
    }
    if let SlotOutcome::Failed { reason } = &r.slot {
        return format!("runner slot: {reason}");
    }
    String::new()
}

fn confirm_dialog(plan: &Plan) -> Value {
    let n = plan.selected.len();
    let volumes: usize = plan.selected.iter().map(|r| r.volumes.len()).sum();
    let ips: usize = plan.selected.iter().map(|r| r.flexible_ips.len()).sum();
    let slots = if plan.runner_slots() > 0 {
        format!(
            ", and frees {}",
            count(plan.runner_slots(), "runner slot", "runner slots")
        )
    } else {
        String::new()
    };
    let text = format!(
        "This deletes {}, {} and {}{slots}. It cannot be undone.",
        count(n, "server", "servers"),
        count(volumes, "volume", "volumes"),
        count(ips, "flexible IP", "flexible IPs"),
    );
    json!({
        "title": plain(&truncate(
            &format!("Remove {}?", count(n, "builder", "builders")),
            MAX_DIALOG_TITLE
        )),
        "text": plain(&truncate(&text, MAX_DIALOG_TEXT)),
        "confirm": plain(&truncate("Remove them", MAX_DIALOG_BUTTON)),
        "deny": plain(&truncate("Keep them", MAX_DIALOG_BUTTON)),
        "style": "danger",
    })
}

/// `<@U123>` for a Slack user id; anything else is shown as escaped text, never as markup.
fn mention(user: &str) -> String {
    if !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("<@{user}>")
    } else {
        escape(user)
    }
}

fn code_name(name: &str) -> String {
    if name.is_empty() {
        return "(unnamed)".to_owned();
    }
    // A backtick would end the code span early.
    format!(
        "`{}`",
        escape(&truncate(&name.replace('`', "'"), MAX_NAME_CHARS))
    )
}

fn block_id(prefix: &str, plan_id: &str) -> String {
    truncate(&format!("{prefix}:{plan_id}"), MAX_BLOCK_ID_CHARS)
}
