//! The fleet watch's decisions, pure: what earlier polls saw (the [`Memory`], kept in the
//! store) and what this one sees (a [`Look`]) in; the next memory and the messages to send
//! out. No I/O, no clock: everything arrives as values.
//!
//! - An incident opens when a builder has been shut down past the grace period; its root
//!   message is updated (never posted again) when the set of stuck builders changes, and an
//!   "all clear" reply closes it when none is left.
//! - A builder running at the last poll and shut down now is named in the open incident's
//!   thread: "shut down by itself since the last check".
//! - Zones Scaleway does not list leave their builders as last shown; after
//!   [`TROUBLE_POLLS`] failing polls in a row one warning goes out, and one reply to it when
//!   Scaleway answers again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::render::{self, View};
use crate::{
    fleet::{ScwError, ServerState, StatusReport},
    reap::{Plan, ReapReport, ServerOutcome},
    slack::blocks::Message,
};

/// Failing polls in a row before the watch warns that it cannot see the fleet.
pub const TROUBLE_POLLS: u32 = 3;

/// A builder shut down past the grace period, as the watch shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stuck {
    pub id: String,
    pub name: String,
    pub zone: String,
    pub commercial_type: String,
    pub state: ServerState,
    /// Unix seconds of the last state change: shut down since then.
    pub since: i64,
    pub protected: bool,
    /// It was seen running, then shut down: it stopped by itself.
    #[serde(default)]
    pub by_itself: bool,
}

/// What the watch remembers between polls (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Builders running at the last look: id → zone.
    pub running: BTreeMap<String, String>,
    /// Builders seen going from running to shut down, and still shut down: id → zone.
    pub by_itself: BTreeMap<String, String>,
    pub incident: Option<Incident>,
    pub trouble: Trouble,
}

/// The open incident, as its root message shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Incident {
    /// Unix seconds.
    pub opened_at: i64,
    /// The builders the root lists.
    pub shown: Vec<Stuck>,
    /// The most builders stuck at once.
    pub peak: usize,
    /// Builders the auto-reap removed.
    pub reaped: usize,
    /// Builders the auto-reap tried and could not remove: left to a person for the rest of
    /// the incident, so a failing delete is not retried (and reported) every poll.
    pub not_retried: BTreeSet<String>,
}

/// Polls in a row that could not list every zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trouble {
    pub failed_polls: u32,
    /// Unix seconds of the first failing poll.
    pub since: Option<i64>,
    /// The warning went out.
    pub warned: bool,
}

/// What one poll saw, completed from memory where a zone could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    /// Unix seconds.
    pub now: i64,
    /// Builders shut down past the grace period, longest first (those of unreadable zones as
    /// last shown).
    pub stuck: Vec<Stuck>,
    pub running: BTreeMap<String, String>,
    pub by_itself: BTreeMap<String, String>,
    /// Builders running at the last look and shut down now (in the grace period or not).
    pub stopped_by_itself: Vec<Stuck>,
    /// Zones Scaleway did not list, with why.
    pub failed: Vec<(String, ScwError)>,
}

/// Reads a status report (same membership rule and grace period as `/arm status`) against
/// the memory.
pub fn look(report: &StatusReport, memory: &Memory, now: i64) -> Look {
    let mut out = Look {
        now,
        stuck: Vec::new(),
        running: BTreeMap::new(),
        by_itself: BTreeMap::new(),
        stopped_by_itself: Vec::new(),
        failed: Vec::new(),
    };
    let at = report.generated_at.timestamp();
    for zone in &report.zones {
        let fleet = match &zone.fleet {
            Ok(fleet) => fleet,
            Err(e) => {
                // Unknown is not fixed: keep what was known of the zone.
                out.failed.push((zone.zone.clone(), e.clone()));
                let of_zone = |z: &String| *z == zone.zone;
                for (map, from) in [
                    (&mut out.running, &memory.running),
                    (&mut out.by_itself, &memory.by_itself),
                ] {
                    map.extend(
                        from.iter()
                            .filter(|(_, z)| of_zone(z))
                            .map(|(id, z)| (id.clone(), z.clone())),
                    );
                }
                if let Some(incident) = &memory.incident {
                    out.stuck
                        .extend(incident.shown.iter().filter(|s| of_zone(&s.zone)).cloned());
                }
                continue;
            }
        };
        for id in &fleet.running {
            out.running.insert(id.clone(), zone.zone.clone());
        }
        for server in &fleet.stuck {
            let since = at - server.stuck_for.map_or(0, |d| d.num_seconds());
            let stopped_now = memory.running.contains_key(&server.id);
            if stopped_now || memory.by_itself.contains_key(&server.id) {
                out.by_itself.insert(server.id.clone(), zone.zone.clone());
            }
            let stuck = Stuck {
                id: server.id.clone(),
                name: server.name.clone(),
                zone: zone.zone.clone(),
                commercial_type: server.commercial_type.clone(),
                state: server.state.clone(),
                since,
                protected: server.protected,
                by_itself: out.by_itself.contains_key(&server.id),
            };
            if stopped_now {
                out.stopped_by_itself.push(stuck.clone());
            }
            if server.past_grace {
                out.stuck.push(stuck);
            }
        }
    }
    out.stuck.sort_by(|a, b| {
        a.since
            .cmp(&b.since)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    out.stuck.dedup_by(|a, b| a.id == b.id);
    out
}

/// What the auto-reap did this poll.
#[derive(Debug, Clone)]
pub struct AutoReap {
    pub plan: Plan,
    pub report: ReapReport,
}

impl AutoReap {
    /// Builders gone now (removed, or already gone), and those tried in vain.
    fn split(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut gone = BTreeSet::new();
        let mut not_done = BTreeSet::new();
        for r in &self.report.results {
            match r.outcome {
                ServerOutcome::Removed | ServerOutcome::AlreadyGone => {
                    gone.insert(r.server_id.clone());
                }
                // It changed since the plan (restarted, say): no longer its business.
                ServerOutcome::Skipped { .. } => {}
                ServerOutcome::Failed { .. } | ServerOutcome::NotAttempted { .. } => {
                    not_done.insert(r.server_id.clone());
                }
            }
        }
        (gone, not_done)
    }
}

/// What a poll decided: the next memory and the messages, in the order they go out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub memory: Memory,
    /// A new incident's root message.
    pub open: Option<Message>,
    /// Replies in the incident's thread.
    pub replies: Vec<Message>,
    /// The root as it should now read.
    pub update_root: Option<Message>,
    /// The incident ends with this poll.
    pub close: bool,
    /// Scaleway cannot be read: one warning.
    pub warn: Option<Message>,
    /// Scaleway answers again: the reply to the warning.
    pub recovered: Option<Message>,
    /// Builders stuck after this poll (for the gauge).
    pub stuck: usize,
}

impl Decision {
    /// Whether anything is to be sent.
    pub fn speaks(&self) -> bool {
        self.open.is_some()
            || !self.replies.is_empty()
            || self.update_root.is_some()
            || self.warn.is_some()
            || self.recovered.is_some()
    }
}

/// The watch's one decision per poll.
pub fn decide(memory: &Memory, look: &Look, reaped: Option<&AutoReap>, view: &View) -> Decision {
    let now = look.now;
    let (gone, not_done) = reaped.map(AutoReap::split).unwrap_or_default();
    let mut next = Memory {
        running: look.running.clone(),
        by_itself: look.by_itself.clone(),
        incident: memory.incident.clone(),
        trouble: memory.trouble.clone(),
    };
    next.running.retain(|id, _| !gone.contains(id));
    next.by_itself.retain(|id, _| !gone.contains(id));
    let mut d = Decision::default();

    if look.failed.is_empty() {
        if memory.trouble.warned {
            d.recovered = Some(render::recovered(&memory.trouble, view));
        }
        next.trouble = Trouble::default();
    } else {
        let t = &mut next.trouble;
        t.failed_polls = t.failed_polls.saturating_add(1);
        let since = *t.since.get_or_insert(now);
        if t.failed_polls >= TROUBLE_POLLS && !t.warned {
            d.warn = Some(render::warning(&look.failed, t.failed_polls, since, view));
            t.warned = true;
        }
    }

    let left: Vec<Stuck> = look
        .stuck
        .iter()
        .filter(|s| !gone.contains(&s.id))
        .cloned()
        .collect();
    if next.incident.is_none() && !look.stuck.is_empty() {
        d.open = Some(render::root(&look.stuck, now, view));
        next.incident = Some(Incident {
            opened_at: now,
            shown: look.stuck.clone(),
            peak: look.stuck.len(),
            ..Incident::default()
        });
    }
    if let Some(incident) = &mut next.incident {
        if !look.stopped_by_itself.is_empty() {
            d.replies
                .push(render::by_itself(&look.stopped_by_itself, view));
        }
        if let Some(r) = reaped {
            incident.reaped += r
                .report
                .results
                .iter()
                .filter(|x| x.outcome == ServerOutcome::Removed)
                .count();
            incident.not_retried.extend(not_done);
            d.replies.push(render::reaped(r, view));
        }
        if left.is_empty() {
            d.replies.push(render::all_clear(incident, view));
            d.update_root = Some(render::resolved_root(incident, view));
            d.close = true;
            next.incident = None;
        } else if fingerprint(&left) != fingerprint(&incident.shown) {
            incident.peak = incident.peak.max(left.len());
            incident.shown = left.clone();
            d.update_root = Some(render::root(&left, incident.opened_at, view));
        }
    }
    d.stuck = left.len();
    d.memory = next;
    d
}

/// What the root shows of a builder, durations aside: a change means an update.
fn fingerprint(stuck: &[Stuck]) -> Vec<(&str, &str, bool, bool)> {
    let mut keys: Vec<_> = stuck
        .iter()
        .map(|s| (s.id.as_str(), s.state.as_str(), s.protected, s.by_itself))
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::fleet::{FleetSettings, Server};
    use crate::reap::{PlanContext, ReapSettings, ServerResult, SlotOutcome, plan};

    const NOW: i64 = 1_800_000_000;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("date")
    }

    fn server(n: u32, state: &str, minutes_ago: i64) -> Server {
        Server {
            id: format!("id-{n}"),
            name: format!("runner-{n}"),
            zone: "fr-par-1".into(),
            project: "p".into(),
            arch: "arm64".into(),
            state: ServerState::from(state),
            modification_date: Some(at(NOW) - TimeDelta::minutes(minutes_ago)),
            ..Server::default()
        }
    }

    fn settings() -> FleetSettings {
        FleetSettings {
            zones: vec!["fr-par-1".into(), "fr-par-2".into()],
            project_id: Some("p".into()),
            ..FleetSettings::default()
        }
    }

    fn report(par1: Result<Vec<Server>, ScwError>, now: i64) -> StatusReport {
        let zones = vec![
            ("fr-par-1".to_owned(), par1),
            ("fr-par-2".to_owned(), Ok(vec![])),
        ];
        StatusReport::build(zones, &settings(), None, None, at(now))
    }

    fn view(now: i64) -> View {
        View {
            now,
            grace_minutes: 15,
            interval_secs: 300,
            auto_reap_after: Some(60),
            project: Some("p".into()),
            cap: None,
            shown_without: String::new(),
        }
    }

    #[test]
    fn an_auto_reap_of_every_stuck_builder_opens_tells_and_closes_in_one_poll() {
        let servers = vec![server(1, "stopped", 120), server(2, "running", 0)];
        let memory = Memory::default();
        let look = look(&report(Ok(servers.clone()), NOW), &memory, NOW);
        assert_eq!(look.stuck.len(), 1);
        let reap_settings = ReapSettings {
            name_prefix: Some("runner-".into()),
            ..ReapSettings::default()
        };
        let pctx = PlanContext {
            zones: vec!["fr-par-1".into()],
            project: Some("p".into()),
        };
        let plan = plan(&servers, None, &reap_settings, &pctx, at(NOW));
        assert_eq!(plan.selected.len(), 1);
        let report = ReapReport {
            plan_id: plan.id.clone(),
            started_at: at(NOW),
            finished_at: at(NOW),
            results: vec![ServerResult {
                server_id: "id-1".into(),
                name: "runner-1".into(),
                zone: "fr-par-1".into(),
                commercial_type: String::new(),
                machine: None,
                outcome: ServerOutcome::Removed,
                resources: Vec::new(),
                slot: SlotOutcome::NoStore,
            }],
            stopped_early: None,
        };
        let reaped = AutoReap { plan, report };
        let d = decide(&memory, &look, Some(&reaped), &view(NOW));
        assert!(d.open.is_some() && d.close && d.update_root.is_some());
        assert_eq!(d.replies.len(), 2, "what was removed, then all clear");
        assert!(d.replies[1].text.starts_with("All clear"));
        assert_eq!(d.stuck, 0);
        assert_eq!(d.memory.incident, None);
        assert_eq!(d.memory.running.keys().collect::<Vec<_>>(), ["id-2"]);
    }

    #[test]
    fn an_unreadable_zone_keeps_its_builders_as_last_shown() {
        let first = look(
            &report(
                Ok(vec![
                    server(1, "stopped in place", 30),
                    server(2, "running", 0),
                ]),
                NOW,
            ),
            &Memory::default(),
            NOW,
        );
        let d = decide(&Memory::default(), &first, None, &view(NOW));
        assert!(d.open.is_some());
        let later = NOW + 300;
        let failing = look(&report(Err(ScwError::Timeout), later), &d.memory, later);
        assert_eq!(failing.stuck, first.stuck);
        assert_eq!(failing.running, first.running);
        let mut memory = d.memory;
        for poll in 1..=4 {
            let d = decide(&memory, &failing, None, &view(later));
            assert!(!d.close && d.update_root.is_none() && d.replies.is_empty());
            assert_eq!(d.warn.is_some(), poll == TROUBLE_POLLS, "poll {poll}");
            memory = d.memory;
        }
        // The builder that was running and is now in standby: named once the zone reads.
        let back = look(
            &report(
                Ok(vec![
                    server(1, "stopped in place", 35),
                    server(2, "stopped in place", 1),
                ]),
                later,
            ),
            &memory,
            later,
        );
        let d = decide(&memory, &back, None, &view(later));
        assert!(d.recovered.is_some());
        assert_eq!(d.replies.len(), 1);
        assert!(d.replies[0].text.contains("runner-2"));
        assert_eq!(d.memory.trouble, Trouble::default());
    }
}
