//! `/arm status`: gather the fleet's state (I/O, [`gather_status`]) and turn it into a report
//! (pure, [`StatusReport::build`]) rendered as Slack Block Kit.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::escape;
use super::model::{Quotum, Server, ServerState, common_name_prefix, short_name};
use super::scaleway::ScwError;
use super::settings::{FleetContext, FleetSettings};
use crate::runner::{MachineStates, RunnerMetricsError};
use crate::slack::blocks::{
    MAX_BLOCKS, MAX_TEXT_CHARS, context, date, divider, duration, fit_lines, section,
};
use crate::slack::mrkdwn::code_name;

/// A zone with at most this many shut-down builders lists each of them.
const LIST_EACH_UP_TO: usize = 8;
/// Past that, builders alike share a line when there are at least this many.
const GROUP_FROM: usize = 3;
const CAP_REACHED: &str = ":warning: The cap is reached: the runner cannot create machines, \
                           so jobs stay pending.";
/// Server names are user-chosen; long ones would crowd out the list.
const MAX_NAME_CHARS: usize = 80;

/// Query every zone concurrently, plus the runner metrics and IAM quotas when configured, and
/// build the report. Never fails: each source's error is kept and shown in its place.
pub async fn gather_status(ctx: &FleetContext, now: DateTime<Utc>) -> StatusReport {
    let zones = list_zones(ctx);
    let runner = async {
        match &ctx.runner {
            Some(client) => Some(client.fetch().await),
            None => None,
        }
    };
    let quotas = async {
        match &ctx.organization_id {
            Some(org) => Some(ctx.scaleway.list_quotas(org).await),
            None => None,
        }
    };
    let (zones, runner, quotas) = futures::join!(zones, runner, quotas);
    StatusReport::build(zones, &ctx.settings, runner, quotas, now)
}

/// Every server of the project in each configured zone, the zones listed concurrently: one
/// result per zone, in the configured order. `/arm status`, `/arm reap` and the fleet watch
/// all look at the fleet through this.
pub async fn list_zones(ctx: &FleetContext) -> Vec<(String, Result<Vec<Server>, ScwError>)> {
    let project = ctx.settings.project_id.as_deref();
    futures::future::join_all(ctx.settings.zones.iter().map(|zone| async move {
        let servers = ctx.scaleway.list_servers(zone, project).await;
        (zone.clone(), servers)
    }))
    .await
}

/// The fleet as `/arm status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    pub project_id: Option<String>,
    pub name_prefix: Option<String>,
    pub tags: Vec<String>,
    /// The start the builders' names share, left out where they are listed.
    pub shown_without: String,
    pub reap_grace_minutes: u32,
    /// In the order the zones were configured.
    pub zones: Vec<ZoneStatus>,
    pub cap: Option<CapStatus>,
    /// Set when `runner_metrics_url` is configured but could not be read.
    pub runner_error: Option<RunnerMetricsError>,
    pub quotas: QuotaStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneStatus {
    pub zone: String,
    pub fleet: Result<ZoneFleet, ScwError>,
}

/// The builders of one zone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneFleet {
    pub counts: StateCounts,
    /// Shut-down builders, longest first.
    pub stuck: Vec<StuckServer>,
    /// Ids of the builders running (the fleet watch notices one that stops by itself).
    pub running: Vec<String>,
    /// Locked builders: the state's meaning is undocumented, so a human looks.
    pub locked: Vec<String>,
    /// Builders per commercial type flagged `end_of_service` (shut down at end of life).
    pub end_of_service: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub running: usize,
    pub starting: usize,
    pub stopping: usize,
    pub stopped: usize,
    pub stopped_in_place: usize,
    pub locked: usize,
    pub other: usize,
}

impl StateCounts {
    fn add(&mut self, state: &ServerState) {
        let slot = match state {
            ServerState::Running => &mut self.running,
            ServerState::Starting => &mut self.starting,
            ServerState::Stopping => &mut self.stopping,
            ServerState::Stopped => &mut self.stopped,
            ServerState::StoppedInPlace => &mut self.stopped_in_place,
            ServerState::Locked => &mut self.locked,
            ServerState::Other(_) => &mut self.other,
        };
        *slot += 1;
    }

    pub fn total(&self) -> usize {
        self.running
            + self.starting
            + self.stopping
            + self.stopped
            + self.stopped_in_place
            + self.locked
            + self.other
    }

    /// Shut down but still existing (and still billed).
    pub fn stuck(&self) -> usize {
        self.stopped + self.stopped_in_place
    }

    /// "3 running, 1 stopped in place", non-zero states only.
    fn describe(&self) -> String {
        [
            (self.running, "running"),
            (self.starting, "starting"),
            (self.stopping, "stopping"),
            (self.stopped, "stopped"),
            (self.stopped_in_place, "stopped in place"),
            (self.locked, "locked"),
            (self.other, "in another state"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, label)| format!("{n} {label}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// A builder shut down (`stopped` or `stopped in place`).
#[derive(Debug, Clone, PartialEq)]
pub struct StuckServer {
    pub id: String,
    pub name: String,
    pub commercial_type: String,
    pub state: ServerState,
    /// Time since `modification_date`; `None` if Scaleway gave no usable date.
    pub stuck_for: Option<TimeDelta>,
    pub protected: bool,
    /// Shut down at least the grace period: stuck rather than perhaps on its way out.
    pub past_grace: bool,
    /// Past the grace period and not protected: `/arm reap` may take it.
    pub reapable: bool,
}

/// How full the runner's cap is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapStatus {
    /// From the runner manager's metrics (the authoritative count).
    Runner {
        states: MachineStates,
        /// From the metrics, else `runner_cap`.
        limit: Option<u64>,
    },
    /// From `runner_cap` against the builders Scaleway lists.
    Configured {
        cap: u32,
        builders: usize,
        stuck: usize,
    },
}

/// IAM quotas for the fleet's commercial types.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaStatus {
    /// `SCW_DEFAULT_ORGANIZATION_ID` not set.
    NotConfigured,
    Failed(ScwError),
    Read {
        lines: Vec<QuotaLine>,
        /// Fleet types no quotum name matched.
        unmatched_types: Vec<String>,
        /// Some zone could not be listed, so usage is undercounted.
        partial: bool,
    },
}

/// One cap of one quotum, against the servers counted in its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLine {
    pub commercial_type: String,
    /// The quotum's pretty name (or name).
    pub quotum: String,
    /// A zone, a region, or "all zones".
    pub scope: String,
    pub limit: u64,
    /// Servers of that type in scope, in the project (fleet or not: all use the quota).
    pub used: usize,
}

impl StatusReport {
    /// Pure: from per-zone server lists (or errors), the resolved settings, and the optional
    /// runner metrics and quotas (each `None` when not configured).
    pub fn build(
        zones: Vec<(String, Result<Vec<Server>, ScwError>)>,
        settings: &FleetSettings,
        runner: Option<Result<MachineStates, RunnerMetricsError>>,
        quotas: Option<Result<Vec<Quotum>, ScwError>>,
        now: DateTime<Utc>,
    ) -> StatusReport {
        let grace = TimeDelta::minutes(i64::from(settings.reap_grace_minutes));
        let zone_statuses: Vec<ZoneStatus> = zones
            .iter()
            .map(|(zone, servers)| ZoneStatus {
                zone: zone.clone(),
                fleet: servers
                    .as_ref()
                    .map(|servers| zone_fleet(servers, settings, grace, now))
                    .map_err(Clone::clone),
            })
            .collect();

        let (builders, stuck) = zone_statuses
            .iter()
            .filter_map(|z| z.fleet.as_ref().ok())
            .fold((0, 0), |(b, s), f| {
                (b + f.counts.total(), s + f.counts.stuck())
            });

        let (cap, runner_error) = match runner {
            Some(Ok(states)) => {
                let limit = states.limit.or(settings.runner_cap.map(u64::from));
                (Some(CapStatus::Runner { states, limit }), None)
            }
            other => {
                let cap = settings.runner_cap.map(|cap| CapStatus::Configured {
                    cap,
                    builders,
                    stuck,
                });
                (cap, other.and_then(Result::err))
            }
        };

        let quotas = match quotas {
            None => QuotaStatus::NotConfigured,
            Some(Err(e)) => QuotaStatus::Failed(e),
            Some(Ok(quota)) => quota_status(&zones, settings, &quota),
        };

        let shown_without = common_name_prefix(
            settings.name_prefix.as_deref(),
            zones
                .iter()
                .filter_map(|(_, servers)| servers.as_ref().ok())
                .flatten()
                .filter(|s| settings.matches(s))
                .map(|s| s.name.as_str()),
        );

        StatusReport {
            generated_at: now,
            project_id: settings.project_id.clone(),
            name_prefix: settings.name_prefix.clone().filter(|p| !p.is_empty()),
            shown_without,
            tags: settings
                .tags
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect(),
            reap_grace_minutes: settings.reap_grace_minutes,
            zones: zone_statuses,
            cap,
            runner_error,
            quotas,
        }
    }

    /// Builders across the zones that could be read.
    pub fn builders(&self) -> usize {
        self.readable().map(|f| f.counts.total()).sum()
    }

    /// Shut-down builders.
    pub fn stuck(&self) -> usize {
        self.readable().map(|f| f.counts.stuck()).sum()
    }

    /// Shut-down builders `/arm reap` may take (past the grace period, not protected).
    pub fn reapable(&self) -> usize {
        self.readable()
            .flat_map(|f| f.stuck.iter())
            .filter(|s| s.reapable)
            .count()
    }

    fn readable(&self) -> impl Iterator<Item = &ZoneFleet> {
        self.zones.iter().filter_map(|z| z.fleet.as_ref().ok())
    }

    /// The one-line summary, also the notification fallback text: "ARM fleet: 360 builders
    /// in 2 zones, 56 shut down, 42 reapable".
    pub fn summary_text(&self) -> String {
        let builders = self.builders();
        let zones = self.zones.len();
        let mut text = format!(
            "ARM fleet: {builders} {} in {zones} {}",
            plural(builders, "builder", "builders"),
            plural(zones, "zone", "zones")
        );
        match self.stuck() {
            0 => text.push_str(", none shut down"),
            stuck => text.push_str(&format!(
                ", {stuck} shut down, {} reapable",
                self.reapable()
            )),
        }
        let failed: Vec<String> = self
            .zones
            .iter()
            .filter(|z| z.fleet.is_err())
            .map(|z| escape(&z.zone))
            .collect();
        if !failed.is_empty() {
            text.push_str(&format!(" ({} could not be read)", failed.join(", ")));
        }
        text
    }

    /// Why shut-down builders are not reapable, when some are not: "Not reapable: 2
    /// protected, 4 in the 15 min grace period."
    fn not_reapable_text(&self) -> Option<String> {
        let mut by: BTreeMap<Verdict, usize> = BTreeMap::new();
        for s in self.readable().flat_map(|f| f.stuck.iter()) {
            *by.entry(s.verdict()).or_default() += 1;
        }
        let parts: Vec<String> = by
            .iter()
            .filter_map(|(verdict, n)| {
                let why = match verdict {
                    Verdict::Reapable => return None,
                    Verdict::Protected => "protected".to_owned(),
                    Verdict::Grace => format!(
                        "in the {} grace period",
                        duration(i64::from(self.reap_grace_minutes) * 60)
                    ),
                    Verdict::Undated => "without a date from Scaleway".to_owned(),
                };
                Some(format!("{n} {why}"))
            })
            .collect();
        (!parts.is_empty()).then(|| format!("Not reapable: {}.", parts.join(", ")))
    }

    /// The report as an array of Slack Block Kit blocks, ending with the context line that
    /// says what counts as a builder.
    pub fn to_blocks(&self) -> Value {
        self.to_blocks_with(Vec::new())
    }

    /// The report with the caller's `extra` blocks (buttons, another section) above its
    /// closing context line, within Slack's block cap: the report's own sections give way at
    /// the end, and a line says how many.
    pub fn to_blocks_with(&self, extra: Vec<Value>) -> Value {
        let mut head = format!("*{}*", self.summary_text());
        if let Some(text) = self.not_reapable_text() {
            head.push('\n');
            head.push_str(&text);
        }
        let mut blocks = vec![section(&head)];
        if let Some(text) = self.cap_text() {
            blocks.push(section(&text));
        }
        blocks.push(divider());
        for zone in &self.zones {
            blocks.push(section(&self.zone_text(zone)));
        }
        if let Some(text) = self.quota_text() {
            blocks.push(divider());
            blocks.push(section(&text));
        }
        let footer = context(&self.context_text());
        if blocks.len() + extra.len() + 1 > MAX_BLOCKS {
            // Room for the line saying what is left out, and the footer.
            let keep = MAX_BLOCKS.saturating_sub(extra.len() + 2).max(1);
            let omitted = blocks.len().saturating_sub(keep);
            blocks.truncate(keep);
            blocks.push(section(&format!(
                "…and {omitted} more {} not shown.",
                plural(omitted, "section", "sections")
            )));
        }
        blocks.extend(extra);
        blocks.push(footer);
        Value::Array(blocks)
    }
    fn cap_text(&self) -> Option<String> {
        let mut lines: Vec<String> = Vec::new();
        match &self.cap {
            Some(CapStatus::Runner { states, limit }) => {
                let used = states.total();
                let idle_detail = if states.not_working() > 0 {
                    format!(
                        ", {} by machines that do no work ({} removing, {} stuck on removing)",
                        states.not_working(),
                        states.removing,
                        states.stuck_on_removing
                    )
                } else {
                    String::new()
                };
                match limit {
                    Some(limit) => {
                        lines.push(format!(
                            "*Runner cap:* {used} of {limit} slots used{idle_detail}."
                        ));
                        if used >= *limit {
                            lines.push(CAP_REACHED.to_owned());
                        }
                    }
                    None => lines.push(format!(
                        "*Runner:* {used} machines{idle_detail}. The runner does not export its \
                         `limit`; set `runner_cap` under `[fleet]` to compare."
                    )),
                }
            }
            Some(CapStatus::Configured {
                cap,
                builders,
                stuck,
            }) => {
                let stuck_detail = if *stuck > 0 {
                    format!(", {stuck} by builders that are shut down")
                } else {
                    String::new()
                };
                lines.push(format!(
                    "*Runner cap:* {builders} of {cap} slots used{stuck_detail} (counted from \
                     Scaleway, which does not see machines the runner is removing)."
                ));
                if *builders as u64 >= u64::from(*cap) {
                    lines.push(CAP_REACHED.to_owned());
                }
            }
            None => {}
        }
        if let Some(e) = &self.runner_error {
            lines.push(format!(":warning: {}", e.user_message()));
        }
        if lines.is_empty() {
            None
        } else {
            Some(lines.join("\n"))
        }
    }

    fn zone_text(&self, zone: &ZoneStatus) -> String {
        let name = escape(&zone.zone);
        let fleet = match &zone.fleet {
            Ok(fleet) => fleet,
            Err(e) => {
                return format!(
                    "*{name}*: :x: could not list the servers. {}",
                    e.user_message(self.project_id.as_deref())
                );
            }
        };
        let total = fleet.counts.total();
        if total == 0 {
            return format!("*{name}* · no builders");
        }
        let head = format!(
            "*{name}* · {total} {}: {}",
            plural(total, "builder", "builders"),
            fleet.counts.describe()
        );
        let mut lines = self.shut_down_lines(&fleet.stuck);
        for locked in &fleet.locked {
            lines.push(format!(
                "• {} · locked (not documented by Scaleway): check it in the console or with \
                 support",
                self.name(locked)
            ));
        }
        for (commercial_type, count) in &fleet.end_of_service {
            lines.push(format!(
                "• {count} on {}, an end-of-service type: Scaleway will shut {} down at end of \
                 life; move to a current ARM type",
                escape(commercial_type),
                plural(*count, "it", "them")
            ));
        }
        fit_lines(
            &head,
            &lines,
            0,
            |n| format!("…and {n} more"),
            None,
            MAX_TEXT_CHARS,
        )
    }

    /// One line per shut-down builder when there are few; otherwise builders of the same
    /// state, age bucket and verdict share a line ("• 30 stopped for 1 h 30 min to 1 h 58
    /// min"), and only groups too small to be worth it list their builders. Oldest first.
    fn shut_down_lines(&self, stuck: &[StuckServer]) -> Vec<String> {
        let mixed_types = stuck.iter().any(|s| {
            stuck
                .first()
                .is_some_and(|f| f.commercial_type != s.commercial_type)
        });
        let one = |s: &StuckServer| {
            let kind = if mixed_types {
                format!(" · {}", escape(&s.commercial_type))
            } else {
                String::new()
            };
            let age = s
                .stuck_for
                .map(|d| format!(" for {}", duration(d.num_seconds())))
                .unwrap_or_default();
            format!(
                "• {}{kind} · {}{age}{}",
                self.name(&s.name),
                escape(s.state.as_str()),
                s.verdict().note()
            )
        };
        if stuck.len() <= LIST_EACH_UP_TO {
            return stuck.iter().map(one).collect();
        }
        // `stuck` is oldest first, so groups come in the order of their oldest builder.
        let mut groups: Vec<(GroupKey, Vec<&StuckServer>)> = Vec::new();
        for s in stuck {
            let key = (&s.state, age_bucket(s.stuck_for), s.verdict());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(s),
                None => groups.push((key, vec![s])),
            }
        }
        let mut lines = Vec::new();
        for ((state, _, verdict), members) in groups {
            if members.len() < GROUP_FROM {
                lines.extend(members.into_iter().map(one));
                continue;
            }
            let ages: Vec<String> = members
                .iter()
                .filter_map(|s| s.stuck_for)
                .map(|d| duration(d.num_seconds()))
                .collect();
            let age = match (ages.last(), ages.first()) {
                (Some(young), Some(old)) if young == old => format!(" for {old}"),
                (Some(young), Some(old)) => format!(" for {young} to {old}"),
                _ => String::new(),
            };
            lines.push(format!(
                "• {} {}{age}{}",
                members.len(),
                escape(state.as_str()),
                verdict.note()
            ));
        }
        lines
    }

    /// A builder's name as listed: without the fleet's common prefix (the footer names it).
    fn name(&self, name: &str) -> String {
        code(short_name(name, &self.shown_without))
    }

    fn quota_text(&self) -> Option<String> {
        let text = match &self.quotas {
            QuotaStatus::NotConfigured => return None,
            QuotaStatus::Failed(e) => format!(
                "*Quotas:* could not be read. {}",
                e.user_message(self.project_id.as_deref())
            ),
            QuotaStatus::Read {
                lines,
                unmatched_types,
                partial,
            } => {
                let mut out = Vec::new();
                // A zone where the fleet has nothing and the quota is far from full says
                // nothing a reader needs.
                for line in lines.iter().filter(|l| l.used > 0 || l.near_full()) {
                    let warn = if line.used as u64 >= line.limit {
                        " :warning: full"
                    } else if line.near_full() {
                        " :warning: nearly full"
                    } else {
                        ""
                    };
                    out.push(format!(
                        "• {} in {}: {} of {}{warn}",
                        escape(&line.commercial_type),
                        escape(&line.scope),
                        line.used,
                        line.limit
                    ));
                }
                if !unmatched_types.is_empty() {
                    let types: Vec<String> = unmatched_types.iter().map(|t| escape(t)).collect();
                    out.push(format!("No quotum found for {}.", types.join(", ")));
                }
                if *partial {
                    out.push("Some zones could not be read, so usage may be higher.".to_owned());
                }
                if out.is_empty() {
                    return None;
                }
                out.insert(
                    0,
                    "*Quotas* (this project's servers; other projects share them too):".to_owned(),
                );
                out.join("\n")
            }
        };
        Some(text)
    }

    fn context_text(&self) -> String {
        let mut who: Vec<String> = Vec::new();
        let mut said_prefix = false;
        if let Some(prefix) = &self.name_prefix {
            said_prefix = *prefix == self.shown_without;
            let listed = if said_prefix {
                " (listed without it)"
            } else {
                ""
            };
            who.push(format!("named {}…{listed}", code(prefix)));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|t| code(t)).collect();
            who.push(format!("tagged {}", tags.join(" or ")));
        }
        let mut text = if who.is_empty() {
            "Builders: all arm64 servers of the project".to_owned()
        } else {
            format!("Builders: arm64 servers {}", who.join(" or "))
        };
        if !self.shown_without.is_empty() && !said_prefix {
            text.push_str(&format!(
                " · names listed without {}",
                code(&self.shown_without)
            ));
        }
        text.push_str(&format!(" · as of {}", date(self.generated_at)));
        if self.quotas == QuotaStatus::NotConfigured {
            text.push_str(" · set SCW_DEFAULT_ORGANIZATION_ID to see quotas");
        }
        text
    }
}

/// Builders shut down in the same state, age bucket and verdict share a line.
type GroupKey<'a> = (&'a ServerState, usize, Verdict);

/// Why `/arm reap` would take a shut-down builder or leave it alone. Ordered as the "Not
/// reapable" sentence lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Reapable,
    Protected,
    Grace,
    Undated,
}

impl Verdict {
    /// What a listed line adds after the age.
    fn note(self) -> &'static str {
        match self {
            Verdict::Reapable => "",
            Verdict::Protected => " · protected",
            Verdict::Grace => " · in grace period",
            Verdict::Undated => " · no date from Scaleway",
        }
    }
}

impl StuckServer {
    fn verdict(&self) -> Verdict {
        if self.protected {
            Verdict::Protected
        } else if self.reapable {
            Verdict::Reapable
        } else if self.stuck_for.is_some() {
            Verdict::Grace
        } else {
            Verdict::Undated
        }
    }
}

impl QuotaLine {
    /// At least 80% of the limit used (a limit of 0 is always).
    fn near_full(&self) -> bool {
        (self.used as u64).saturating_mul(5) >= self.limit.saturating_mul(4)
    }
}

/// Ages that read alike share a line: a group stays between two of these steps (minutes:
/// 15 min, 1 h, 3 h, 12 h, 2 d, 7 d), so "1 h 2 min to 2 h 55 min" but never "20 min to 3 h".
const AGE_STEPS_MINUTES: [i64; 6] = [15, 60, 180, 720, 2880, 10_080];

fn age_bucket(age: Option<TimeDelta>) -> usize {
    match age {
        Some(d) => AGE_STEPS_MINUTES
            .iter()
            .filter(|step| d.num_minutes() >= **step)
            .count(),
        None => usize::MAX,
    }
}

/// The builders of one zone's server list.
fn zone_fleet(
    servers: &[Server],
    settings: &FleetSettings,
    grace: TimeDelta,
    now: DateTime<Utc>,
) -> ZoneFleet {
    let mut fleet = ZoneFleet::default();
    for server in servers.iter().filter(|s| settings.matches(s)) {
        fleet.counts.add(&server.state);
        if server.state == ServerState::Running {
            fleet.running.push(server.id.clone());
        }
        if server.state.is_shut_down() {
            let stuck_for = server.modification_date.map(|d| now - d);
            // No date means no proof it is stable: never past the grace period.
            let past_grace = stuck_for.is_some_and(|d| d >= grace);
            fleet.stuck.push(StuckServer {
                id: server.id.clone(),
                name: server.name.clone(),
                commercial_type: server.commercial_type.clone(),
                state: server.state.clone(),
                stuck_for,
                protected: server.protected,
                past_grace,
                reapable: !server.protected && past_grace,
            });
        }
        if server.state == ServerState::Locked {
            fleet.locked.push(server.name.clone());
        }
        if server.end_of_service {
            *fleet
                .end_of_service
                .entry(server.commercial_type.clone())
                .or_default() += 1;
        }
    }
    // Longest stuck first; undated last; then by name for a stable order.
    fleet.stuck.sort_by(|a, b| {
        b.stuck_for
            .cmp(&a.stuck_for)
            .then_with(|| a.name.cmp(&b.name))
    });
    fleet
}

/// Match the fleet's commercial types to quota and count usage in each limit's scope.
fn quota_status(
    zones: &[(String, Result<Vec<Server>, ScwError>)],
    settings: &FleetSettings,
    quota: &[Quotum],
) -> QuotaStatus {
    // Servers per (zone, type) across the project, and the types the fleet uses.
    let mut per_zone_type: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut fleet_types: Vec<&str> = Vec::new();
    let mut partial = false;
    for (zone, servers) in zones {
        let Ok(servers) = servers else {
            partial = true;
            continue;
        };
        for server in servers {
            *per_zone_type
                .entry((zone.as_str(), server.commercial_type.as_str()))
                .or_default() += 1;
            if settings.matches(server) && !fleet_types.contains(&server.commercial_type.as_str()) {
                fleet_types.push(server.commercial_type.as_str());
            }
        }
    }
    fleet_types.sort_unstable();

    let used_where = |commercial_type: &str, in_scope: &dyn Fn(&str) -> bool| -> usize {
        per_zone_type
            .iter()
            .filter(|((zone, t), _)| *t == commercial_type && in_scope(zone))
            .map(|(_, n)| n)
            .sum()
    };
    let queried = |zone: &str| zones.iter().any(|(z, _)| z == zone);

    let mut lines: Vec<QuotaLine> = Vec::new();
    let mut unmatched_types: Vec<String> = Vec::new();
    for commercial_type in fleet_types {
        let quality = |q: &Quotum| {
            type_match(&q.name, commercial_type).max(type_match(&q.pretty_name, commercial_type))
        };
        let best = quota.iter().filter_map(quality).max();
        let matched: Vec<&Quotum> = quota
            .iter()
            .filter(|q| best.is_some() && quality(q) == best)
            .collect();
        if matched.is_empty() {
            unmatched_types.push(commercial_type.to_owned());
            continue;
        }
        for quotum in matched {
            let label = if quotum.pretty_name.is_empty() {
                quotum.name.clone()
            } else {
                quotum.pretty_name.clone()
            };
            let mut push = |scope: String, limit: u64, used: usize| {
                let line = QuotaLine {
                    commercial_type: commercial_type.to_owned(),
                    quotum: label.clone(),
                    scope,
                    limit,
                    used,
                };
                if !lines.contains(&line) {
                    lines.push(line);
                }
            };
            if quotum.limits.is_empty() {
                // Deprecated top-level form: one Organization-wide cap.
                if let (Some(limit), false) = (quotum.limit, quotum.unlimited == Some(true)) {
                    push(
                        "all zones".to_owned(),
                        limit,
                        used_where(commercial_type, &|_| true),
                    );
                }
                continue;
            }
            for entry in &quotum.limits {
                // Unlimited entries say nothing useful.
                let Some(limit) = entry.limit.filter(|_| entry.unlimited != Some(true)) else {
                    continue;
                };
                if let Some(zone) = &entry.zone {
                    if queried(zone) {
                        let used = used_where(commercial_type, &|z| z == zone);
                        push(zone.clone(), limit, used);
                    }
                } else if let Some(region) = &entry.region {
                    if zones.iter().any(|(z, _)| region_of(z) == region) {
                        let used = used_where(commercial_type, &|z| region_of(z) == region);
                        push(region.clone(), limit, used);
                    }
                } else {
                    push(
                        "all zones".to_owned(),
                        limit,
                        used_where(commercial_type, &|_| true),
                    );
                }
            }
        }
    }
    QuotaStatus::Read {
        lines,
        unmatched_types,
        partial,
    }
}

/// `fr-par-1` → `fr-par`.
fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(region, _)| region)
}

/// How a quotum name mentions a commercial type, if it does. Ordered: a name ending with the
/// type beats one merely containing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TypeMatch {
    Within,
    AtEnd,
}

/// Whether a quotum name mentions a commercial type as whole words, case-insensitively and
/// treating `-`, `_` and spaces alike: `instances_basic2_a4c_8g` names `BASIC2-A4C-8G`, while
/// `instances_basic2_a4c_16g` and `instances_xbasic2_a4c_8g` do not. Since
/// `instances_pop2_2c_8g_win` contains `POP2-2C-8G` too, callers prefer [`TypeMatch::AtEnd`].
fn type_match(quotum_name: &str, commercial_type: &str) -> Option<TypeMatch> {
    let norm = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let wanted = norm(commercial_type);
    if !wanted.chars().any(|c| c.is_alphanumeric()) {
        return None;
    }
    let hay = format!("_{}_", norm(quotum_name).trim_end_matches('_'));
    let needle = format!("_{wanted}_");
    if hay.ends_with(&needle) {
        Some(TypeMatch::AtEnd)
    } else if hay.contains(&needle) {
        Some(TypeMatch::Within)
    } else {
        None
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Inline code for a value from Scaleway or the settings, on one line and clipped.
fn code(s: &str) -> String {
    code_name(s, MAX_NAME_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotum_names_match_whole_types_only() {
        use TypeMatch::{AtEnd, Within};
        assert_eq!(
            type_match("instances_basic2_a4c_8g", "BASIC2-A4C-8G"),
            Some(AtEnd)
        );
        assert_eq!(
            type_match("Instances BASIC2-A4C-8G", "basic2-a4c-8g"),
            Some(AtEnd)
        );
        assert_eq!(
            type_match("instances_pop2_2c_8g_win", "POP2-2C-8G"),
            Some(Within)
        );
        assert_eq!(type_match("instances_basic2_a4c_8g", "BASIC2-A4C-8"), None);
        assert_eq!(
            type_match("instances_basic2_a4c_16g", "BASIC2-A4C-8G"),
            None
        );
        assert_eq!(
            type_match("instances_xbasic2_a4c_8g", "BASIC2-A4C-8G"),
            None
        );
        assert_eq!(type_match("a___b", "-"), None);
        assert_eq!(type_match("anything", ""), None);
    }

    #[test]
    fn the_closest_quotum_wins() {
        let quotum = |name: &str| Quotum {
            name: name.to_owned(),
            limits: vec![crate::fleet::QuotumLimit {
                zone: Some("fr-par-1".into()),
                limit: Some(5),
                ..Default::default()
            }],
            ..Quotum::default()
        };
        let server = Server {
            arch: "arm64".into(),
            commercial_type: "POP2-2C-8G".into(),
            ..Server::default()
        };
        let zones = vec![("fr-par-1".to_owned(), Ok(vec![server]))];
        let quota = [
            quotum("instances_pop2_2c_8g_win"),
            quotum("instances_pop2_2c_8g"),
        ];
        let QuotaStatus::Read { lines, .. } =
            quota_status(&zones, &FleetSettings::default(), &quota)
        else {
            panic!("quota read");
        };
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].quotum, "instances_pop2_2c_8g");
        assert_eq!(lines[0].used, 1);
    }

    #[test]
    fn regions_come_from_zone_names() {
        assert_eq!(region_of("fr-par-1"), "fr-par");
        assert_eq!(region_of("weird"), "weird");
    }

    #[test]
    fn clipping_respects_char_boundaries() {
        assert_eq!(crate::slack::mrkdwn::truncate("ééééé", 3), "éé…");
        assert_eq!(crate::slack::mrkdwn::truncate("abc", 3), "abc");
        assert_eq!(code("a`b<c>"), "`aˋb&lt;c&gt;`");
    }
}
