//! The fleet watch's Slack messages: the incident's root (open and resolved), its thread
//! replies, and the warning when Scaleway cannot be read. Values from Scaleway are escaped.

use chrono::DateTime;

use super::incident::{AutoReap, Incident, Stuck, Trouble};
use crate::{
    fleet::{ScwError, short_name, status::CapStatus},
    reap::{self, count, minutes},
    slack::{
        blocks::{
            MAX_TEXT_CHARS, Message, actions, button, context, date, duration, fit_lines, section,
            time,
        },
        mrkdwn::{code_name, escape, name},
    },
};

/// `action_id` of "Plan a reap", on the incident's root and on `/arm status` reports.
pub const PLAN_REAP_ACTION_ID: &str = "watch_plan_reap";
/// Names in the notification text before "and N more".
const NAMES_IN_TEXT: usize = 5;
/// Server names are user-chosen; long ones would crowd out the list.
const MAX_NAME_CHARS: usize = 80;
/// The actor of the watch's reaps in the audit log.
pub const ACTOR: &str = "fleet watch";

/// What every message needs besides its subject.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Unix seconds.
    pub now: i64,
    /// `[reap] grace_minutes`: shut down longer than this is stuck.
    pub grace_minutes: u64,
    pub interval_secs: u64,
    /// Minutes after which the auto-reap takes a builder; `None` when it is off.
    pub auto_reap_after: Option<u64>,
    /// The Scaleway project, for error sentences.
    pub project: Option<String>,
    /// How full the runner's cap is, when known.
    pub cap: Option<CapStatus>,
    /// What builder names are listed without (the fleet's common prefix, as `/arm status`
    /// shows them); empty for whole names.
    pub shown_without: String,
}

impl View {
    /// A builder's name as the watch lists it: without the fleet's common prefix.
    fn builder(&self, name: &str) -> String {
        code(short_name(name, &self.shown_without))
    }

    /// `names without `runner-arm-``, when names are listed without a prefix.
    fn names_note(&self) -> Option<String> {
        (!self.shown_without.is_empty())
            .then(|| format!("names without {}", code(&self.shown_without)))
    }
}

/// The incident's root while builders are stuck: who, where, for how long, what they hold,
/// and the "Plan a reap" button.
pub fn root(stuck: &[Stuck], opened_at: i64, view: &View) -> Message {
    let n = stuck.len();
    let mut head = format!(
        ":rotating_light: *{} stuck shut down* for longer than the {} grace period. {} no \
         work but {} against the runner cap, so pipelines may queue as pending.",
        count(n, "ARM builder is", "ARM builders are"),
        minutes(view.grace_minutes),
        if n == 1 { "It does" } else { "They do" },
        if n == 1 { "counts" } else { "count" },
    );
    if let Some(cap) = cap_text(view.cap.as_ref()) {
        head.push('\n');
        head.push_str(&cap);
    }
    let lines: Vec<String> = stuck.iter().map(|s| line(s, view)).collect();
    let list = fit_lines(
        "*Stuck:*",
        &lines,
        0,
        |k| format!("…and {k} more"),
        None,
        MAX_TEXT_CHARS,
    );
    let reap_note = match view.auto_reap_after {
        Some(after) => format!("auto-reap after {}", minutes(after)),
        None => "auto-reap off: a person confirms each reap".to_owned(),
    };
    let blocks = vec![
        section(&head),
        section(&list),
        actions(
            Some("watch_actions"),
            vec![button(
                PLAN_REAP_ACTION_ID,
                "Plan a reap",
                "fleet",
                Some("primary"),
            )],
        ),
        context(&format!(
            "Fleet watch · checks every {} · opened {} · as of {} · {reap_note}{}",
            duration(i64::try_from(view.interval_secs).unwrap_or(i64::MAX)),
            moment(opened_at, view.now),
            moment(view.now, view.now),
            view.names_note()
                .map(|n| format!(" · {n}"))
                .unwrap_or_default(),
        )),
    ];
    let names: Vec<&str> = stuck
        .iter()
        .take(NAMES_IN_TEXT)
        .map(|s| s.name.as_str())
        .collect();
    let more = n.saturating_sub(NAMES_IN_TEXT);
    let text = format!(
        "{} stuck shut down: {}{}",
        count(n, "ARM builder", "ARM builders"),
        name(&names.join(", "), 400),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    Message::new(text, blocks)
}

/// The root once no builder is stuck: what the incident was, without the button.
pub fn resolved_root(incident: &Incident, view: &View) -> Message {
    let mut head = format!(
        ":white_check_mark: *Resolved: no ARM builder is stuck any more.* Up to {} stuck at \
         once",
        count(incident.peak, "was", "were"),
    );
    if incident.reaped > 0 {
        head.push_str(&format!(
            "; the fleet watch removed {}",
            count(incident.reaped, "builder", "builders")
        ));
    }
    head.push('.');
    let text = "Resolved: no ARM builder is stuck any more.".to_owned();
    Message::new(
        text,
        vec![
            section(&head),
            context(&format!(
                "Fleet watch · opened {} · resolved {}, after {}",
                moment(incident.opened_at, view.now),
                moment(view.now, view.now),
                duration(view.now - incident.opened_at)
            )),
        ],
    )
}

/// The thread reply naming builders that were running at the last poll and are shut down.
pub fn by_itself(stopped: &[Stuck], view: &View) -> Message {
    let lines: Vec<String> = stopped
        .iter()
        .map(|s| {
            format!(
                "• {} · {} · was running, now {}",
                view.builder(&s.name),
                escape(&s.zone),
                escape(s.state.as_str())
            )
        })
        .collect();
    let head = format!(
        ":eyes: *{} shut down by itself since the last check* — a known issue of the ARM \
         builders: {} a runner slot until {} removed.",
        count(stopped.len(), "builder", "builders"),
        if stopped.len() == 1 {
            "it keeps"
        } else {
            "each keeps"
        },
        if stopped.len() == 1 {
            "it is"
        } else {
            "they are"
        },
    );
    let names: Vec<&str> = stopped.iter().map(|s| s.name.as_str()).collect();
    Message::new(
        format!(
            "Shut down by itself since the last check: {}",
            name(&names.join(", "), 400)
        ),
        std::iter::once(section(&fit_lines(
            &head,
            &lines,
            0,
            |k| format!("…and {k} more"),
            None,
            MAX_TEXT_CHARS,
        )))
        .chain(view.names_note().map(|n| context(&n)))
        .collect(),
    )
}

/// The thread reply saying exactly what the auto-reap removed.
pub fn reaped(r: &AutoReap, view: &View) -> Message {
    let after = format!(
        "over {}",
        minutes(view.auto_reap_after.unwrap_or(r.plan.grace_minutes))
    );
    Message::new(
        reap::summary_text(&r.report, "The fleet watch"),
        reap::auto_report_blocks(&r.report, &r.plan, &after),
    )
}

/// The reply that closes the incident.
pub fn all_clear(incident: &Incident, view: &View) -> Message {
    let text = format!(
        ":white_check_mark: All clear: no ARM builder is stuck any more ({} after this \
         started). The next stuck builder opens a new thread.",
        duration(view.now - incident.opened_at)
    );
    Message::new(
        "All clear: no ARM builder is stuck any more.",
        vec![section(&text)],
    )
}

/// The one warning when Scaleway could not be read for several polls in a row: the sentence
/// `/arm status` would give, per zone.
pub fn warning(failed: &[(String, ScwError)], polls: u32, since: i64, view: &View) -> Message {
    // Zones with the same trouble share a line.
    let mut sentences: Vec<(String, Vec<String>)> = Vec::new();
    for (zone, e) in failed {
        let sentence = e.user_message(view.project.as_deref());
        match sentences.iter_mut().find(|(s, _)| *s == sentence) {
            Some((_, zones)) => zones.push(escape(zone)),
            None => sentences.push((sentence, vec![escape(zone)])),
        }
    }
    let mut text = format!(
        ":warning: *The fleet watch cannot read Scaleway:* {polls} checks in a row have failed, \
         since {}.",
        moment(since, view.now)
    );
    for (sentence, zones) in &sentences {
        text.push_str(&format!("\n*{}*: {sentence}", zones.join(", ")));
    }
    text.push_str(
        "\nStuck builders go unnoticed until it can; a reply here will say when Scaleway \
         answers again.",
    );
    let first = sentences
        .first()
        .map(|(s, _)| s.as_str())
        .unwrap_or_default();
    Message::new(
        format!("The fleet watch cannot read Scaleway: {first}"),
        vec![section(&text)],
    )
}

/// The reply to the warning once every zone can be read again.
pub fn recovered(trouble: &Trouble, view: &View) -> Message {
    let after = trouble
        .since
        .map(|s| format!(" after {}", duration(view.now - s)))
        .unwrap_or_default();
    let text = format!(
        ":white_check_mark: Scaleway answers again: the fleet watch sees the fleet{after} \
         ({} failed in a row).",
        count(trouble.failed_polls as usize, "check", "checks")
    );
    Message::new(
        "Scaleway answers again: the fleet watch sees the fleet.",
        vec![section(&text)],
    )
}

/// "• `runner-7` · fr-par-1 · stopped in place for 2 h 5 min (since 09:12) · protected"
fn line(s: &Stuck, view: &View) -> String {
    let now = view.now;
    let mut l = format!(
        "• {} · {} · {} for {} (since {})",
        view.builder(&s.name),
        escape(&s.zone),
        escape(s.state.as_str()),
        duration(now - s.since),
        moment(s.since, now),
    );
    if s.by_itself {
        l.push_str(" · shut down by itself");
    }
    if s.protected {
        l.push_str(" · protected: reap leaves it alone");
    }
    l
}

/// How much of the runner cap is used, and by what, as `/arm status` counts it.
fn cap_text(cap: Option<&CapStatus>) -> Option<String> {
    const REACHED: &str = " :warning: The cap is reached: jobs stay pending.";
    match cap? {
        CapStatus::Runner { states, limit } => {
            let used = states.total();
            let idle = states.not_working();
            Some(match limit {
                Some(limit) => format!(
                    "*Runner cap:* {used} of {limit} slots used, {idle} by machines the runner \
                     cannot remove.{}",
                    if used >= *limit { REACHED } else { "" }
                ),
                None => format!("*Runner:* {used} machines, {idle} that the runner cannot remove."),
            })
        }
        CapStatus::Configured {
            cap,
            builders,
            stuck,
        } => Some(format!(
            "*Runner cap:* {builders} of {cap} slots used, {stuck} by builders that are shut \
             down (counted from Scaleway).{}",
            if *builders as u64 >= u64::from(*cap) {
                REACHED
            } else {
                ""
            }
        )),
    }
}

/// A moment as each reader's Slack shows it, in their time zone: the time of day within
/// the last 12 hours ("09:12"), else with the day ("yesterday at 21:40").
fn moment(unix: i64, now: i64) -> String {
    match DateTime::from_timestamp(unix, 0) {
        Some(at) if now.saturating_sub(unix) < 12 * 3600 => time(at),
        Some(at) => date(at),
        None => "?".to_owned(),
    }
}

/// A name from Scaleway as inline code, clipped so a long one leaves room.
fn code(name: &str) -> String {
    code_name(name, MAX_NAME_CHARS)
}
