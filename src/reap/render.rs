//! Slack messages for `/arm reap`: the plan with its Remove and Cancel buttons, the same
//! message updated with the outcome (also posted in the channel, in full, when only the
//! clicker saw the plan), refusals, and the fleet watch's auto-reap report.
//!
//! Reasons in plans and reports are already mrkdwn (escaped where they quote values); names,
//! ids, zones and types are escaped here.

use serde_json::{Value, json};

use super::click::{ClickOutcome, Unclaimed};
use super::execute::{
    ReapReport, ResourceKind, ResourceOutcome, ResourceResult, ServerOutcome, ServerResult,
    SlotOutcome,
};
use super::plan::{Plan, PlannedRemoval};
use super::{count, escape, minutes};
use crate::fleet::short_name;
use crate::notify::settings::is_slack_user_id;
use crate::slack::{
    Message, Reply,
    blocks::{
        MAX_BUTTON_LABEL, MAX_ID_CHARS, MAX_TEXT_CHARS, actions, button, context, duration,
        fit_lines, plain, section, time,
    },
    mrkdwn::{code_name, truncate},
};

/// `action_id` of the Confirm button; its `value` is what the caller passed (the plan id).
pub const CONFIRM_ACTION_ID: &str = "reap_confirm";
/// `action_id` of the Cancel button; same `value` as Confirm.
pub const CANCEL_ACTION_ID: &str = "reap_cancel";

/// Server names are user-chosen; long ones would crowd out the rest.
const MAX_NAME_CHARS: usize = 80;
/// A confirm dialog's title, confirm and deny texts, and its body.
const MAX_DIALOG_TITLE: usize = 100;
const MAX_DIALOG_BUTTON: usize = 30;
const MAX_DIALOG_TEXT: usize = 300;
/// Names in a report's one line of successes, and in a line of servers not attempted.
const NAMES_IN_A_LINE: usize = 20;
/// Allowed people named in a refusal before "and N others".
const PEOPLE_NAMED: usize = 5;

/// Without a docker-machine store the bot cannot free a slot: one line, with what to run.
const NO_STORE_PLAN: &str = ":warning: Runner slots will not be freed (no docker-machine store): \
    afterwards run `docker-machine rm -f &lt;machine&gt;` on the runner manager.";
const NO_STORE_REPORT: &str = ":warning: Runner slots were not freed (no docker-machine store): \
    run `docker-machine rm -f &lt;machine&gt;` on the runner manager.";

/// The dry run: one line per server that Confirm would remove, what is left alone and why,
/// and the buttons (only when something is selected). `confirm_action_value` goes into both
/// buttons' `value`.
pub fn plan_blocks(plan: &Plan, confirm_action_value: &str) -> Vec<Value> {
    let names = Names::of(plan);
    if plan.selected.is_empty() {
        return nothing_to_remove(plan, &names);
    }
    let lines: Vec<String> = plan
        .selected
        .iter()
        .map(|r| removal_line(r, plan.machines_known, &names))
        .collect();
    let head = format!("{}\n{}", plan_summary(plan), what_goes(plan));
    let mut blocks = vec![section(&fit_lines(
        &head,
        &lines,
        0,
        |n| format!("…and {n} more"),
        None,
        MAX_TEXT_CHARS,
    ))];
    if !plan.machines_known {
        blocks.push(section(NO_STORE_PLAN));
    }
    if let Some(text) = left_alone_text(plan, &names) {
        blocks.push(section(&text));
    }
    if !plan.notes.is_empty() {
        blocks.push(context(&plan.notes.join("\n")));
    }
    let label = truncate(
        &format!(
            "Remove {}",
            count(plan.selected.len(), "builder", "builders")
        ),
        MAX_BUTTON_LABEL,
    );
    let mut confirm = button(
        CONFIRM_ACTION_ID,
        &label,
        confirm_action_value,
        Some("danger"),
    );
    confirm["confirm"] = confirm_dialog(plan);
    let cancel = button(CANCEL_ACTION_ID, "Cancel", confirm_action_value, None);
    blocks.push(actions(
        Some(&block_id("reap_actions", &plan.id)),
        vec![confirm, cancel],
    ));
    let mut footer = vec![format!(
        "Expires in {}, at {}",
        duration((plan.expires_at - plan.created_at).num_seconds()),
        time(plan.expires_at)
    )];
    footer.extend(names.note());
    footer.push(plan_ref(plan));
    blocks.push(context(&footer.join(" · ")));
    blocks
}

/// The plan's fallback text (notifications, clients without Block Kit).
pub fn plan_text(plan: &Plan) -> String {
    if plan.selected.is_empty() {
        "Nothing to remove: no ARM builder is stuck shut down.".to_owned()
    } else {
        format!(
            "{} can be removed.",
            count(
                plan.selected.len(),
                "stuck ARM builder",
                "stuck ARM builders"
            )
        )
    }
}

/// The plan message after a run: no buttons, what went wrong in detail, the rest in a line.
pub fn report_blocks(report: &ReapReport, plan: &Plan, confirmed_by_user_id: &str) -> Vec<Value> {
    report_body(report, plan, &mention(confirmed_by_user_id), None)
}

/// What the fleet watch's auto-reap did, for the incident's thread, as after a confirmed reap.
/// `after` says which builders it takes ("over 1 h").
pub fn auto_report_blocks(report: &ReapReport, plan: &Plan, after: &str) -> Vec<Value> {
    report_body(report, plan, "The fleet watch", Some(after))
}

/// `who removed 2 of 3 stuck builders`: the headline of a report and its fallback text.
fn removed(report: &ReapReport, who: &str, after: Option<&str>, bold: bool) -> String {
    let c = report.counts();
    let total = report.results.len();
    let gone = c.servers_removed + c.already_gone;
    let builders = match after {
        Some(after) => format!(
            "{} stuck {}",
            count(total, "builder", "builders"),
            escape(after)
        ),
        None => count(total, "stuck builder", "stuck builders"),
    };
    let what = if gone == total {
        builders
    } else {
        format!("{gone} of {builders}")
    };
    let mut text = if bold {
        format!("{who} removed *{what}*")
    } else {
        format!("{who} removed {what}")
    };
    let mut rest = Vec::new();
    for (n, one, many) in [
        (c.failed, "with a failure", "with failures"),
        (c.skipped, "skipped", "skipped"),
        (c.not_attempted, "not attempted", "not attempted"),
    ] {
        if n > 0 {
            rest.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    if !rest.is_empty() {
        text.push_str("; ");
        text.push_str(&rest.join(", "));
    }
    text.push('.');
    text
}

fn report_body(report: &ReapReport, plan: &Plan, who: &str, after: Option<&str>) -> Vec<Value> {
    let names = Names::of(plan);
    let c = report.counts();
    let emoji = if c.failed > 0 || report.stopped_early.is_some() {
        ":warning:"
    } else {
        ":broom:"
    };
    let mut head = format!("{emoji} {}", removed(report, who, after, true));
    if let Some(why) = &report.stopped_early {
        head.push_str(&format!("\n:octagonal_sign: {why}"));
    }
    let mut lines: Vec<String> = successes_line(report, &names).into_iter().collect();
    lines.extend(
        report
            .results
            .iter()
            .filter_map(|r| problem_line(r, &names)),
    );
    lines.extend(not_attempted_lines(report, &names));
    let mut blocks = vec![section(&fit_lines(
        &head,
        &lines,
        0,
        |n| format!("…and {n} more"),
        None,
        MAX_TEXT_CHARS,
    ))];
    if report.no_store() {
        blocks.push(section(NO_STORE_REPORT));
    }
    let mut footer = Vec::new();
    let mut gone_with = Vec::new();
    if c.volumes_removed > 0 {
        gone_with.push(count(c.volumes_removed, "volume", "volumes"));
    }
    if c.ips_removed > 0 {
        gone_with.push(count(c.ips_removed, "flexible IP", "flexible IPs"));
    }
    if !gone_with.is_empty() {
        footer.push(format!("{} removed", gone_with.join(" and ")));
    }
    if c.slots_freed > 0 {
        footer.push(format!(
            "{} freed",
            count(c.slots_freed, "runner slot", "runner slots")
        ));
    }
    let quota = report.quota_freed();
    if !quota.is_empty() {
        let types: Vec<String> = quota
            .iter()
            .map(|(t, n)| format!("{n} × `{}`", escape(t)))
            .collect();
        footer.push(format!("quota freed: {}", types.join(", ")));
    }
    footer.extend(names.note());
    footer.push(plan_ref(plan));
    blocks.push(context(&footer.join(" · ")));
    blocks
}

/// The servers that went as planned, in one line: removed, or found already gone.
fn successes_line(report: &ReapReport, names: &Names) -> Option<String> {
    let clean = |want: &ServerOutcome| -> Vec<&ServerResult> {
        report
            .results
            .iter()
            .filter(|r| &r.outcome == want && is_clean(r))
            .collect()
    };
    let (removed, gone) = (
        clean(&ServerOutcome::Removed),
        clean(&ServerOutcome::AlreadyGone),
    );
    let mut parts = Vec::new();
    if !removed.is_empty() {
        parts.push(format!("Removed {}", names.list(&removed)));
    }
    if !gone.is_empty() {
        let were = if gone.len() == 1 { "was" } else { "were" };
        parts.push(format!("{} {were} already gone", names.list(&gone)));
    }
    (!parts.is_empty()).then(|| format!(":white_check_mark: {}.", parts.join("; ")))
}

/// Gone, with everything that went with it, as planned.
fn is_clean(r: &ServerResult) -> bool {
    matches!(
        r.outcome,
        ServerOutcome::Removed | ServerOutcome::AlreadyGone
    ) && !r.has_failure()
        && r.resources.iter().all(|x| x.outcome.is_done())
}

/// One line for a server that did not go as planned (not attempted ones are grouped apart).
fn problem_line(r: &ServerResult, names: &Names) -> Option<String> {
    if is_clean(r) {
        return None;
    }
    // What the server came to; a server that went has only its leftovers to tell.
    let (emoji, server) = match &r.outcome {
        ServerOutcome::Failed { reason } => (":x:", format!("not removed: {reason}")),
        ServerOutcome::Skipped { reason } => {
            (":leftwards_arrow_with_hook:", format!("skipped: {reason}"))
        }
        ServerOutcome::Removed => (":x:", "removed, but".to_owned()),
        ServerOutcome::AlreadyGone => (":x:", "already gone, but".to_owned()),
        // Grouped by reason instead (see `not_attempted_lines`).
        ServerOutcome::NotAttempted { .. } => return None,
    };
    let slot = match &r.slot {
        SlotOutcome::Failed { reason } => Some(format!(
            "runner slot{} not freed: {reason}",
            other_machine(&r.name, r.machine.as_deref())
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )),
        _ => None,
    };
    let left: Vec<String> = r
        .resources
        .iter()
        .filter_map(resource_problem)
        .chain(slot)
        .collect();
    // Gone with nothing failed: only something left on purpose (a volume type reap does not
    // know), a warning rather than a failure.
    let emoji = if r.has_failure() || left.is_empty() {
        emoji
    } else {
        ":warning:"
    };
    let mut line = format!(
        "{emoji} {} · {}: {server}",
        names.code(&r.name),
        escape(&r.zone)
    );
    if !left.is_empty() {
        line.push(' ');
        line.push_str(&left.join("; "));
    }
    Some(line)
}

fn resource_problem(res: &ResourceResult) -> Option<String> {
    let what = match &res.kind {
        ResourceKind::Volume { volume_type } => format!(
            "volume `{}` ({})",
            escape(&res.id),
            escape(volume_type.as_str())
        ),
        ResourceKind::FlexibleIp => format!("flexible IP `{}`", escape(&res.id)),
    };
    match &res.outcome {
        ResourceOutcome::Failed { reason } => Some(format!("{what} not removed: {reason}")),
        ResourceOutcome::LeftAlone { reason } => Some(format!("{what} left: {reason}")),
        ResourceOutcome::Removed | ResourceOutcome::AlreadyGone => None,
    }
}

/// Servers the run did not reach, one line per reason ("the run stopped early", the cap).
fn not_attempted_lines(report: &ReapReport, names: &Names) -> Vec<String> {
    let mut by_reason: Vec<(&str, Vec<&ServerResult>)> = Vec::new();
    for r in &report.results {
        if let ServerOutcome::NotAttempted { reason } = &r.outcome {
            match by_reason.iter_mut().find(|(why, _)| *why == reason) {
                Some((_, rs)) => rs.push(r),
                None => by_reason.push((reason, vec![r])),
            }
        }
    }
    by_reason
        .into_iter()
        .map(|(why, rs)| format!(":black_square_for_stop: {}: {why}", names.list(&rs)))
        .collect()
}

/// The plan message after Cancel: no buttons, who cancelled, nothing done.
pub fn cancelled_blocks(plan: &Plan, cancelled_by_user_id: &str) -> Vec<Value> {
    vec![
        section(&format!(
            ":no_entry_sign: {} cancelled the reap: nothing was removed, the {} still there.",
            mention(cancelled_by_user_id),
            count(
                plan.selected.len(),
                "stuck builder is",
                "stuck builders are"
            )
        )),
        context(&plan_ref(plan)),
    ]
}

/// Why a click was refused, naming who can: the allowed users and the user group's members
/// as Slack mentions (shown as names; an ephemeral reply notifies nobody).
pub fn refusal(confirm: bool, users: &[String], group: Option<&str>) -> String {
    let verb = if confirm { "confirm" } else { "cancel" };
    match allowed_people(users, group) {
        Some(who) => format!("Only {who} can {verb} this reap; nothing changed."),
        None => format!(
            "Nobody may {verb} a reap yet: an admin has to allow people first. Nothing changed."
        ),
    }
}

/// A refusal because the user group's members could not be asked of Slack. `reason` is
/// mrkdwn.
pub fn group_unchecked(confirm: bool, users: &[String], reason: &str) -> String {
    let verb = if confirm { "confirm" } else { "cancel" };
    let others = allowed_people(users, None)
        .map(|who| format!(" {who} can {verb} meanwhile."))
        .unwrap_or_default();
    format!(
        "I couldn't check whether you are in the reap group: {reason}.{others} Nothing changed."
    )
}

/// "<@U1>, <@U2> or members of <!subteam^S1>"; `None` when nobody is allowed.
fn allowed_people(users: &[String], group: Option<&str>) -> Option<String> {
    let mut who: Vec<String> = users
        .iter()
        .take(PEOPLE_NAMED)
        .map(|u| allowed_user(u))
        .collect();
    if users.len() > PEOPLE_NAMED {
        who.push(format!("{} others", users.len() - PEOPLE_NAMED));
    }
    if let Some(group) = group {
        who.push(format!("members of {}", group_mention(group)));
    }
    match who.split_last() {
        None => None,
        Some((last, [])) => Some(last.clone()),
        Some((last, rest)) => Some(format!("{} or {last}", rest.join(", "))),
    }
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
                format!(
                    "That plan is already {}; nothing more to do.",
                    escape(state)
                )
            }
            Unclaimed::Unreadable => {
                "That plan could not be read; run `/arm reap` again.".to_string()
            }
            Unclaimed::StoreUnavailable => {
                "The store is unavailable; try again in a moment.".to_string()
            }
        }),
        ClickOutcome::Cancelled { plan, user } => Reply::ReplaceOriginal(Message::new(
            format!("{} cancelled the reap: nothing was removed.", mention(user)),
            cancelled_blocks(plan, user),
        )),
        ClickOutcome::Executed { plan, report, user } => {
            Reply::ReplaceOriginal(report_message(report, plan, user))
        }
    }
}

/// A confirmed run's report, as the plan's message becomes and as a channel post.
pub fn report_message(report: &ReapReport, plan: &Plan, user: &str) -> Message {
    Message::new(
        summary_text(report, user),
        report_blocks(report, plan, user),
    )
}

/// A run the service's crash (or a vanished replica) cut short, as found again at start-up:
/// what Scaleway no longer has and what it still has, so nobody re-runs it blindly.
pub fn interrupted_text(
    plan: &Plan,
    confirmed_by: Option<&str>,
    gone: &[&PlannedRemoval],
    still_there: &[&PlannedRemoval],
) -> String {
    let names = Names::of(plan);
    let list = |rs: &[&PlannedRemoval]| {
        rs.iter()
            .map(|r| names.code(&r.name))
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
            list(gone)
        ));
    }
    if !still_there.is_empty() {
        text.push_str(&format!(
            " Still there: {} ({}); run `/arm reap` again for a fresh plan.",
            count(still_there.len(), "server", "servers"),
            list(still_there)
        ));
    }
    if gone.is_empty() && still_there.is_empty() {
        text.push_str(" It had nothing to remove.");
    }
    text
}

/// A run's outcome in one sentence, e.g. "<@U123> removed 2 of 3 stuck builders; 1 with a
/// failure.": the fallback text of the report.
pub fn summary_text(report: &ReapReport, user: &str) -> String {
    removed(report, &mention(user), None, false)
}

fn plan_summary(plan: &Plan) -> String {
    let n = plan.selected.len();
    let slots = if plan.machines_known {
        match plan.runner_slots() {
            0 => ", holding no runner slot".to_owned(),
            h => format!(", holding {}", count(h, "runner slot", "runner slots")),
        }
    } else {
        String::new()
    };
    format!(
        ":broom: *{} can be removed*{slots}.",
        count(n, "stuck ARM builder", "stuck ARM builders")
    )
}

/// What goes with each server, said once for all of them.
fn what_goes(plan: &Plan) -> &'static str {
    if plan.machines_known {
        "Removing one deletes its server, volumes and flexible IPs, and frees its runner slot:"
    } else {
        "Removing one deletes its server, volumes and flexible IPs:"
    }
}

/// The no-op plan: no id (nothing can be confirmed), what is left alone and why.
fn nothing_to_remove(plan: &Plan, names: &Names) -> Vec<Value> {
    let mut blocks = vec![section(if plan.skipped.is_empty() {
        ":white_check_mark: *Nothing to remove*: no ARM builder is stuck shut down."
    } else {
        ":white_check_mark: *Nothing to remove*: the shut-down servers below are left alone."
    })];
    if let Some(text) = left_alone_text(plan, names) {
        blocks.push(section(&text));
    }
    if !plan.notes.is_empty() {
        blocks.push(context(&plan.notes.join("\n")));
    }
    let mut footer = vec![format!(
        "A builder counts as stuck after {} shut down",
        minutes(plan.grace_minutes)
    )];
    if !plan.skipped.is_empty() {
        footer.extend(names.note());
    }
    blocks.push(context(&footer.join(" · ")));
    blocks
}

/// `• name · zone · stopped for 2 h`, and the runner machine when it is not the server's
/// namesake or is missing (then the server holds no slot).
fn removal_line(r: &PlannedRemoval, machines_known: bool, names: &Names) -> String {
    let machine = match r.machine.as_deref() {
        None if machines_known => " · no runner machine, so no slot to free".to_owned(),
        None => String::new(),
        Some(m) => other_machine(&r.name, Some(m))
            .map(|m| format!(" · runner machine {m}"))
            .unwrap_or_default(),
    };
    format!(
        "• {} · {} · {} for {}{machine}",
        names.code(&r.name),
        escape(&r.zone),
        escape(r.state.as_str()),
        duration(r.stuck_for.num_seconds()),
    )
}

fn left_alone_text(plan: &Plan, names: &Names) -> Option<String> {
    if plan.skipped.is_empty() && plan.running_left_alone == 0 {
        return None;
    }
    let lines: Vec<String> = plan
        .skipped
        .iter()
        .map(|s| {
            format!(
                "• {} · {}: {}",
                names.code(&s.name),
                escape(&s.zone),
                s.reason
            )
        })
        .collect();
    let running = (plan.running_left_alone > 0).then(|| {
        format!(
            "{} running, starting or stopping: the runner may be using them.",
            count(plan.running_left_alone, "builder is", "builders are")
        )
    });
    Some(fit_lines(
        "*Left alone*",
        &lines,
        0,
        |n| format!("…and {n} more"),
        running.as_deref(),
        MAX_TEXT_CHARS,
    ))
}

/// The dialog before anything is deleted: how many, where, how long they have been stuck,
/// and everything that goes with them.
fn confirm_dialog(plan: &Plan) -> Value {
    let n = plan.selected.len();
    let volumes: usize = plan.selected.iter().map(|r| r.volumes.len()).sum();
    let ips: usize = plan.selected.iter().map(|r| r.flexible_ips.len()).sum();
    let mut zones: Vec<&str> = plan.selected.iter().map(|r| r.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    let ages: Vec<i64> = plan
        .selected
        .iter()
        .map(|r| r.stuck_for.num_seconds())
        .collect();
    let (least, most) = (
        ages.iter().min().copied().unwrap_or(0),
        ages.iter().max().copied().unwrap_or(0),
    );
    let age = if duration(least) == duration(most) {
        duration(most)
    } else {
        format!("{} to {}", duration(least), duration(most))
    };
    let slots = match plan.runner_slots() {
        0 => String::new(),
        h => format!(", and frees {}", count(h, "runner slot", "runner slots")),
    };
    // Plain text: Slack shows it as is, so nothing is escaped.
    let text = format!(
        "Deletes {} in {} (shut down for {age}) with {} and {}{slots}. This cannot be undone.",
        count(n, "server", "servers"),
        and_list(&zones),
        count(volumes, "volume", "volumes"),
        count(ips, "flexible IP", "flexible IPs"),
    );
    let builders = count(n, "builder", "builders");
    json!({
        "title": plain(&truncate(&format!("Remove {builders}?"), MAX_DIALOG_TITLE)),
        "text": plain(&truncate(&text, MAX_DIALOG_TEXT)),
        "confirm": plain(&truncate(&format!("Remove {builders}"), MAX_DIALOG_BUTTON)),
        "deny": plain(&truncate("Keep them", MAX_DIALOG_BUTTON)),
        "style": "danger",
    })
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Server names as the messages show them: without the prefix every builder's name starts
/// with, so each line leads with what tells builders apart.
struct Names<'a> {
    prefix: Option<&'a str>,
    /// What the names are shown without: the prefix and the separators that follow it in
    /// them (`runner-arm-` for a `runner-arm` prefix), as [`short_name`] strips them.
    stripped: Option<String>,
}

impl<'a> Names<'a> {
    fn of(plan: &'a Plan) -> Self {
        let prefix = plan.name_prefix.as_deref().filter(|p| !p.is_empty());
        let stripped = prefix.map(|p| {
            // `short_name` returns the end of the name: what precedes it was stripped.
            plan.selected
                .iter()
                .map(|r| r.name.as_str())
                .chain(plan.skipped.iter().map(|s| s.name.as_str()))
                .find_map(|name| {
                    let short = short_name(name, p);
                    (short.len() < name.len()).then(|| name[..name.len() - short.len()].to_owned())
                })
                .unwrap_or_else(|| p.to_owned())
        });
        Names { prefix, stripped }
    }

    /// The name without the prefix, as inline code.
    fn code(&self, name: &str) -> String {
        code(short_name(name, self.prefix.unwrap_or_default()))
    }

    /// Up to [`NAMES_IN_A_LINE`] names, then how many more.
    fn list(&self, results: &[&ServerResult]) -> String {
        let mut shown: Vec<String> = results
            .iter()
            .take(NAMES_IN_A_LINE)
            .map(|r| self.code(&r.name))
            .collect();
        if results.len() > NAMES_IN_A_LINE {
            shown.push(format!("{} more", results.len() - NAMES_IN_A_LINE));
        }
        and_list(&shown.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Says what was left out of the names, so a reader can find the full ones.
    fn note(&self) -> Option<String> {
        self.stripped
            .as_deref()
            .map(|p| format!("names without {}", code(p)))
    }
}

/// The runner machine, as inline code, when it is not named as its server: only then does it
/// tell the reader something.
fn other_machine(server: &str, machine: Option<&str>) -> Option<String> {
    machine.filter(|m| *m != server).map(code)
}

/// Who did something: `<@U123>` for a Slack user id; an actor's name ("The fleet watch") is
/// shown as escaped text, never as markup.
fn mention(user: &str) -> String {
    if is_slack_user_id(user) {
        format!("<@{user}>")
    } else {
        escape(user)
    }
}

/// Someone `allowed_users` names: a mention, or what a misconfiguration put there (`dana`)
/// as inline code, which reads as a setting rather than a person.
fn allowed_user(user: &str) -> String {
    if is_slack_user_id(user) {
        mention(user)
    } else {
        code(user)
    }
}

/// `<!subteam^S123>` for a user group id, which Slack shows as the group's handle.
fn group_mention(group: &str) -> String {
    if is_user_group_id(group) {
        format!("<!subteam^{group}>")
    } else {
        format!("the user group {}", code(group))
    }
}

/// A Slack user group id as Slack writes them: `S`, then capitals and digits.
fn is_user_group_id(id: &str) -> bool {
    (3..=32).contains(&id.len())
        && id.starts_with('S')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A server, machine or group name as inline code, clipped so a long one leaves room.
fn code(name: &str) -> String {
    code_name(name, MAX_NAME_CHARS)
}

/// The plan's id, for the audit log; plain text, so the long id wraps like words.
fn plan_ref(plan: &Plan) -> String {
    format!("plan {}", escape(&plan.id))
}

fn block_id(prefix: &str, plan_id: &str) -> String {
    truncate(&format!("{prefix}:{plan_id}"), MAX_ID_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_a_sentence() {
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&["a"]), "a");
        assert_eq!(and_list(&["a", "b", "c"]), "a, b and c");
        assert_eq!(
            allowed_people(&["U01".into(), "<!here>".into()], Some("S01")).as_deref(),
            Some("<@U01>, `&lt;!here&gt;` or members of <!subteam^S01>")
        );
        assert_eq!(allowed_people(&[], None), None);
    }

    #[test]
    fn only_slack_ids_become_mentions() {
        // Names where ids belong (a misconfiguration) show as themselves, pinging no one.
        assert_eq!(allowed_user("dana"), "`dana`");
        assert_eq!(allowed_user("U1"), "`U1`");
        assert_eq!(allowed_user("W0DANA"), "<@W0DANA>");
        assert_eq!(mention("The fleet watch"), "The fleet watch");
        assert_eq!(mention("<!here>"), "&lt;!here&gt;");
        assert_eq!(group_mention("S0ARM"), "<!subteam^S0ARM>");
        for group in ["dist", "U0ARM", "s0arm", "S", "S0-ARM"] {
            assert_eq!(
                group_mention(group),
                format!("the user group `{group}`"),
                "{group}"
            );
        }
    }
}
