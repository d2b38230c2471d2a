//! The reap planner: which servers a run would remove, and why the others are left alone.
//! Pure: servers, the machine index, settings and a clock in; a [`Plan`] out.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::machines::MachineIndex;
use super::settings::ReapSettings;
use super::{count, escape, minutes};
use crate::fleet::{FleetSettings, Server, ServerState, VolumeType};
use crate::slack::blocks::duration;

/// Where the servers were listed: the zones queried and the configured project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanContext {
    pub zones: Vec<String>,
    pub project: Option<String>,
}

/// The zones and project `/arm status` uses (as resolved in `FleetContext::settings`).
impl From<&FleetSettings> for PlanContext {
    fn from(fleet: &FleetSettings) -> Self {
        PlanContext {
            zones: fleet.zones.clone(),
            project: fleet.project_id.clone(),
        }
    }
}

/// What a run would do. Stored as JSON by the caller between the dry run and the confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// UUID v4; the Confirm button carries it.
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Confirmations after this are refused: the fleet may have changed.
    pub expires_at: DateTime<Utc>,
    pub grace_minutes: u64,
    pub max_per_run: usize,
    /// Whether a docker-machine store was read, i.e. whether runner slots can be freed.
    pub machines_known: bool,
    /// Oldest-stuck first.
    pub selected: Vec<PlannedRemoval>,
    /// Fleet servers, and shut-down arm64 servers, that are not selected, with why.
    pub skipped: Vec<Skipped>,
    /// Fleet servers running, starting or stopping: only counted.
    pub running_left_alone: usize,
    /// Sentences about the plan as a whole (mrkdwn).
    pub notes: Vec<String>,
    /// The name prefix the fleet's builders share (`name_prefix`), left out of the names
    /// the messages show. Absent from plans stored before it was kept.
    #[serde(default)]
    pub name_prefix: Option<String>,
}

impl Plan {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// Selected servers whose runner machine is known: the slots the run can free.
    pub fn runner_slots(&self) -> usize {
        self.selected.iter().filter(|r| r.machine.is_some()).count()
    }
}

/// One server a run would remove, with everything removed along with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRemoval {
    pub server_id: String,
    pub name: String,
    pub zone: String,
    pub commercial_type: String,
    pub state: ServerState,
    /// Time in its shut-down state when planned.
    #[serde(with = "seconds")]
    pub stuck_for: TimeDelta,
    /// Deleting a server leaves its volumes behind.
    pub volumes: Vec<PlannedVolume>,
    /// Non-dynamic public IPs: they outlive their server. Dynamic ones go when it stops.
    pub flexible_ips: Vec<String>,
    /// The docker-machine machine holding a runner slot for it, if the store has one.
    pub machine: Option<String>,
}

impl PlannedRemoval {
    pub(crate) fn from_server(
        server: &Server,
        stuck_for: TimeDelta,
        machine: Option<&str>,
    ) -> Self {
        PlannedRemoval {
            server_id: server.id.clone(),
            name: server.name.clone(),
            zone: server.zone.clone(),
            commercial_type: server.commercial_type.clone(),
            state: server.state.clone(),
            stuck_for,
            volumes: server
                .volumes
                .values()
                .filter(|v| !v.id.is_empty())
                .map(|v| PlannedVolume {
                    id: v.id.clone(),
                    volume_type: v.volume_type.clone(),
                })
                .collect(),
            flexible_ips: server
                .all_public_ips()
                .into_iter()
                .filter(|ip| !ip.dynamic && !ip.id.is_empty())
                .map(|ip| ip.id.clone())
                .collect(),
            machine: machine.map(str::to_owned),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedVolume {
    pub id: String,
    /// Decides the API that deletes it: Instance for local volumes, Block for `sbs_volume`.
    pub volume_type: VolumeType,
}

/// A server left alone, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub server_id: String,
    pub name: String,
    pub zone: String,
    /// mrkdwn, values escaped.
    pub reason: String,
}

/// The verdict on one server. The planner and the executor's re-check both use [`assess`], so
/// a confirmation is held to exactly the rules the dry run showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Passes every rule.
    Reapable { stuck_for: TimeDelta },
    /// A fleet server running, starting or stopping: the runner may be using or removing it.
    Busy,
    /// Neither in the fleet nor a shut-down arm64 server: not worth a line.
    Unrelated,
    /// Listed with this reason (mrkdwn, values escaped).
    LeftAlone(String),
}

/// Apply every selection rule to one server. `machine` is its docker-machine entry, if any.
pub fn assess(
    server: &Server,
    machine: Option<&str>,
    settings: &ReapSettings,
    ctx: &PlanContext,
    now: DateTime<Utc>,
) -> Assessment {
    let member = machine.is_some() || matches_prefix_or_tag(server, settings);
    if !member {
        return if server.is_arm64() && server.state.is_shut_down() {
            Assessment::LeftAlone(
                "not a runner machine: no docker-machine entry, name prefix or fleet tag matches"
                    .to_owned(),
            )
        } else {
            Assessment::Unrelated
        };
    }
    match &server.state {
        ServerState::Running | ServerState::Starting | ServerState::Stopping => {
            return Assessment::Busy;
        }
        ServerState::Stopped | ServerState::StoppedInPlace => {}
        ServerState::Locked => return Assessment::LeftAlone("locked: needs a human".to_owned()),
        ServerState::Other(state) => {
            return Assessment::LeftAlone(format!(
                "in state `{}`, which reap does not act on",
                escape(state)
            ));
        }
    }
    if !zone_allowed(&server.zone, settings, ctx) {
        return Assessment::LeftAlone(format!(
            "zone `{}` is not allowed for reap",
            escape(&server.zone)
        ));
    }
    if !project_allowed(&server.project, settings, ctx) {
        return Assessment::LeftAlone(format!(
            "project `{}` is not allowed for reap",
            escape(&server.project)
        ));
    }
    if !server.is_arm64() {
        return Assessment::LeftAlone(format!("not arm64 (`{}`)", escape(&server.arch)));
    }
    if server.protected {
        return Assessment::LeftAlone(
            "protected: Scaleway refuses to delete it until the protection is removed".to_owned(),
        );
    }
    let Some(since) = server.modification_date else {
        return Assessment::LeftAlone("unknown modification date".to_owned());
    };
    let stuck_for = now.signed_duration_since(since);
    // A grace too large for a TimeDelta never elapses.
    let grace = i64::try_from(settings.grace_minutes)
        .ok()
        .and_then(TimeDelta::try_minutes);
    if grace.is_none_or(|g| stuck_for < g) {
        return Assessment::LeftAlone(format!(
            "{} for only {} (grace period {})",
            server.state,
            duration(stuck_for.num_seconds()),
            minutes(settings.grace_minutes)
        ));
    }
    Assessment::Reapable { stuck_for }
}

/// Plan a run over the servers listed in `ctx`'s zones. `index` is the docker-machine store,
/// if one was read.
pub fn plan(
    servers: &[Server],
    index: Option<&MachineIndex>,
    settings: &ReapSettings,
    ctx: &PlanContext,
    now: DateTime<Utc>,
) -> Plan {
    let mut reapable: Vec<PlannedRemoval> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut running_left_alone = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    for server in servers {
        // A server listed twice (a zone queried twice) must not be planned twice.
        if !seen.insert(server.id.as_str()) {
            continue;
        }
        let machine = index.and_then(|i| i.machine_for(&server.id));
        match assess(server, machine, settings, ctx, now) {
            Assessment::Reapable { stuck_for } => {
                reapable.push(PlannedRemoval::from_server(server, stuck_for, machine));
            }
            Assessment::Busy => running_left_alone += 1,
            Assessment::Unrelated => {}
            Assessment::LeftAlone(reason) => skipped.push(Skipped {
                server_id: server.id.clone(),
                name: server.name.clone(),
                zone: server.zone.clone(),
                reason,
            }),
        }
    }
    // Oldest-stuck first: those have blocked a slot longest and are surely not in transit.
    reapable.sort_by(|a, b| {
        b.stuck_for
            .cmp(&a.stuck_for)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.server_id.cmp(&b.server_id))
    });
    let over_cap: Vec<Skipped> = reapable
        .split_off(settings.max_per_run.min(reapable.len()))
        .into_iter()
        .map(|r| Skipped {
            server_id: r.server_id,
            name: r.name,
            zone: r.zone,
            reason: format!("over the per-run cap of {}", settings.max_per_run),
        })
        .collect();
    let skipped = over_cap.into_iter().chain(skipped).collect();

    let mut notes = Vec::new();
    if index.is_none() && !membership_configured(settings) {
        notes.push(
            "No fleet filter is set (`name_prefix`, `tags` or `machine_store` under `[reap]`), \
             so no server counts as a runner machine."
                .to_owned(),
        );
    }
    if let Some(index) = index.filter(|i| i.skipped() > 0) {
        notes.push(format!(
            "{} of the docker-machine store could not be read and {} ignored.",
            count(index.skipped(), "entry", "entries"),
            if index.skipped() == 1 { "was" } else { "were" }
        ));
    }
    let ttl = i64::try_from(settings.plan_ttl_minutes)
        .ok()
        .and_then(TimeDelta::try_minutes)
        .unwrap_or(TimeDelta::MAX);
    Plan {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: now,
        expires_at: now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        grace_minutes: settings.grace_minutes,
        max_per_run: settings.max_per_run,
        machines_known: index.is_some(),
        selected: reapable,
        skipped,
        running_left_alone,
        notes,
        name_prefix: settings.name_prefix.clone().filter(|p| !p.is_empty()),
    }
}

/// Empty prefix and tags count as unset: they would match every server.
fn matches_prefix_or_tag(server: &Server, settings: &ReapSettings) -> bool {
    let prefix = settings.name_prefix.as_deref().filter(|p| !p.is_empty());
    prefix.is_some_and(|p| server.name.starts_with(p))
        || server
            .tags
            .iter()
            .any(|t| !t.is_empty() && settings.tags.contains(t))
}

fn membership_configured(settings: &ReapSettings) -> bool {
    settings
        .name_prefix
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        || settings.tags.iter().any(|t| !t.is_empty())
}

fn zone_allowed(zone: &str, settings: &ReapSettings, ctx: &PlanContext) -> bool {
    let allowed = if settings.allowed_zones.is_empty() {
        &ctx.zones
    } else {
        &settings.allowed_zones
    };
    !zone.is_empty() && allowed.iter().any(|z| z == zone)
}

fn project_allowed(project: &str, settings: &ReapSettings, ctx: &PlanContext) -> bool {
    if project.is_empty() {
        return false;
    }
    if settings.allowed_projects.is_empty() {
        ctx.project.as_deref() == Some(project)
    } else {
        settings.allowed_projects.iter().any(|p| p == project)
    }
}

/// `TimeDelta` as whole seconds in the stored JSON.
mod seconds {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let secs = i64::deserialize(d)?;
        TimeDelta::try_seconds(secs).ok_or_else(|| D::Error::custom("duration out of range"))
    }
}
