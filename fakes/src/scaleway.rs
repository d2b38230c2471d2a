//! A fake Scaleway: the Instance, Block and IAM calls armbot makes, answered as the Instance
//! API's documentation and the recorded bodies in `tests/data/scaleway/` say.
//!
//! - `GET /instance/v1/zones/{zone}/servers`: the zone's servers, filtered by `project`,
//!   `organization`, `name`, `state` and `tags`, paged by `page` and `per_page` (default 50,
//!   at most 100, else 400 `invalid_arguments`), with the total in the `X-Total-Count` header
//!   only, never in the body;
//! - `GET …/servers/{id}`: `{"server": …}`, or 404 `not_found` once it is gone;
//! - `DELETE …/servers/{id}`, `…/volumes/{id}` (local volumes), `…/ips/{id}` and
//!   `/block/v1alpha1/zones/{zone}/volumes/{id}` (Block Storage volumes): 204 with no body, and
//!   the resource is gone; 404 `not_found` when it is not there. Deleting a server leaves its
//!   volumes and flexible IPs behind, as Scaleway does, except `scratch` volumes and dynamic
//!   IPs, which go with it;
//! - `GET /iam/v1alpha1/quota?organization_id=…`: `{"quota": […], "total_count": N}`, paged by
//!   `page` and `page_size`.
//!
//! Servers are the JSON the API returns ([`ScwServer`] builds it). With [`FakeScaleway::require_key`]
//! a missing or wrong `X-Auth-Token` gets 401 `denied_authentication`. Every call is recorded
//! ([`ScwCall`]) and failures can be scripted per call, zone or id ([`FakeScaleway::fail_next`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

use crate::lock;

/// The project [`ScwServer::new`] puts servers in.
pub const DEFAULT_PROJECT: &str = "proj-1";
/// The creation and modification date of a server whose dates are not set.
pub const DEFAULT_DATE: &str = "2026-01-01T00:00:00+00:00";

/// A call the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScwOp {
    ListServers,
    GetServer,
    DeleteServer,
    /// A local volume, through the Instance API.
    DeleteVolume,
    /// A Block Storage volume, through the Block API.
    DeleteBlockVolume,
    DeleteIp,
    ListQuotas,
    /// Any other path or method: 404.
    Unknown,
}

impl ScwOp {
    /// Only this op's calls in `zone`.
    pub fn in_zone(self, zone: &str) -> ScwTarget {
        ScwTarget::from(self).in_zone(zone)
    }

    /// Only this op's calls on the resource `id`.
    pub fn on(self, id: &str) -> ScwTarget {
        ScwTarget::from(self).on(id)
    }
}

/// Which calls a script or a count is about: an op, optionally in one zone or on one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScwTarget {
    pub op: ScwOp,
    pub zone: Option<String>,
    pub id: Option<String>,
}

impl From<ScwOp> for ScwTarget {
    fn from(op: ScwOp) -> Self {
        ScwTarget {
            op,
            zone: None,
            id: None,
        }
    }
}

impl ScwTarget {
    pub fn in_zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.to_owned());
        self
    }

    pub fn on(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    fn matches(&self, call: &ScwCall) -> bool {
        self.op == call.op
            && self
                .zone
                .as_ref()
                .is_none_or(|z| call.zone.as_ref() == Some(z))
            && self.id.as_ref().is_none_or(|i| call.id.as_ref() == Some(i))
    }
}

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScwCall {
    pub op: ScwOp,
    /// `GET`, `DELETE`…
    pub method: String,
    pub path: String,
    pub zone: Option<String>,
    /// The server, volume or IP id in the path.
    pub id: Option<String>,
    pub query: BTreeMap<String, String>,
    /// The `X-Auth-Token` header.
    pub auth_token: Option<String>,
    /// The HTTP status the fake answered.
    pub status: u16,
    pub at: Instant,
}

impl ScwCall {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// A scripted answer: a status, with a Scaleway error body or none, and maybe `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScwFailure {
    pub status: u16,
    pub body: Option<Value>,
    pub retry_after: Option<String>,
}

impl ScwFailure {
    /// A bare status without a body, as a proxy's 5xx.
    pub fn status(status: u16) -> Self {
        ScwFailure {
            status,
            body: None,
            retry_after: None,
        }
    }

    /// A status with a Scaleway error body (`{"type": …, "message": …}`).
    pub fn error(status: u16, body: Value) -> Self {
        ScwFailure {
            status,
            body: Some(body),
            retry_after: None,
        }
    }

    /// 429 with `Retry-After: secs` and no body (Scaleway documents none).
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ScwFailure {
            status: 429,
            body: None,
            retry_after: Some(retry_after_secs.to_string()),
        }
    }

    /// 409 `transient_state` of a server.
    pub fn transient_state(server_id: &str, current_state: &str) -> Self {
        Self::error(
            409,
            json!({
                "type": "transient_state", "message": "resource is in a transient state",
                "resource": "instance_server", "resource_id": server_id,
                "current_state": current_state
            }),
        )
    }

    /// 403 `permissions_denied` naming the missing permission.
    pub fn permissions_denied(action: &str, resource: &str) -> Self {
        Self::error(
            403,
            json!({
                "type": "permissions_denied", "message": "insufficient permissions",
                "details": [{"action": action, "resource": resource}]
            }),
        )
    }

    /// 401 `denied_authentication` of an API key (`reason`: `invalid_argument`, `not_found`,
    /// `expired`).
    pub fn denied_authentication(reason: &str) -> Self {
        Self::error(
            401,
            json!({
                "type": "denied_authentication", "method": "api_key", "reason": reason,
                "message": "authentication is denied"
            }),
        )
    }

    /// 404 `not_found`, the recorded body.
    pub fn not_found(resource: &str, id: &str) -> Self {
        Self::error(404, not_found_body(resource, id))
    }

    fn answer(&self) -> Answer {
        let mut t = ResponseTemplate::new(self.status);
        if let Some(body) = &self.body {
            t = t.set_body_json(body);
        }
        if let Some(secs) = &self.retry_after {
            t = t.insert_header("Retry-After", secs.as_str());
        }
        Answer(self.status, t)
    }
}

/// An answer and its status (a `ResponseTemplate` does not tell it).
struct Answer(u16, ResponseTemplate);

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer(status, ResponseTemplate::new(status).set_body_json(body))
    }

    fn no_content() -> Self {
        Answer(204, ResponseTemplate::new(204))
    }
}

fn not_found_body(resource: &str, id: &str) -> Value {
    json!({
        "type": "not_found", "message": "resource is not found",
        "resource": resource, "resource_id": id
    })
}

/// A local volume of a server (`l_ssd`, `b_ssd`, `scratch`) or a Block Storage one
/// (`sbs_volume`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScwVolume {
    pub id: String,
    pub volume_type: String,
    pub boot: bool,
}

/// A public IP of a server; a dynamic one is released with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScwIp {
    pub id: String,
    pub address: String,
    pub dynamic: bool,
}

/// One server as the Instance API describes it, the item of a list and the `server` of a
/// `GET`. Defaults: an arm64 `COPARM1-4C-16G` builder in [`DEFAULT_PROJECT`], `running`,
/// unprotected, dated [`DEFAULT_DATE`], without volumes or IPs. [`ScwServer::json`] renders it
/// with the fields of the recorded bodies (`state_detail` and `allowed_actions` follow the
/// state as recorded; `public_ip` repeats the first of `public_ips`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScwServer {
    pub zone: String,
    pub id: String,
    pub name: String,
    pub arch: String,
    pub commercial_type: String,
    pub project: String,
    /// Defaults to the project, as for a default project.
    pub organization: Option<String>,
    pub state: String,
    /// Defaults to what the recorded bodies show for the state.
    pub state_detail: Option<String>,
    pub tags: Vec<String>,
    pub protected: bool,
    pub end_of_service: bool,
    pub creation_date: String,
    pub modification_date: String,
    pub volumes: Vec<ScwVolume>,
    pub public_ips: Vec<ScwIp>,
}

/// A UUID-shaped id, the same for the same `scope` and `n`, different otherwise (for up to
/// 2^48 `n` per scope): ids of generated fleets.
pub fn fake_id(scope: &str, n: usize) -> String {
    let hash = scope.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    format!("{hash:08x}-0000-4000-8000-{n:012x}")
}

/// A date as Scaleway writes it: `2025-11-03T17:15:36.733100+00:00`.
pub fn scw_date(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

impl ScwServer {
    pub fn new(zone: &str, id: impl Into<String>, name: impl Into<String>) -> Self {
        ScwServer {
            zone: zone.to_owned(),
            id: id.into(),
            name: name.into(),
            arch: "arm64".to_owned(),
            commercial_type: "COPARM1-4C-16G".to_owned(),
            project: DEFAULT_PROJECT.to_owned(),
            organization: None,
            state: "running".to_owned(),
            state_detail: None,
            tags: Vec::new(),
            protected: false,
            end_of_service: false,
            creation_date: DEFAULT_DATE.to_owned(),
            modification_date: DEFAULT_DATE.to_owned(),
            volumes: Vec::new(),
            public_ips: Vec::new(),
        }
    }

    /// Server `n` of a generated fleet: id [`fake_id`]`(zone, n)`, named `{name_prefix}{n}`.
    pub fn numbered(zone: &str, n: usize, name_prefix: &str) -> Self {
        Self::new(zone, fake_id(zone, n), format!("{name_prefix}{n}"))
    }

    pub fn arch(mut self, arch: &str) -> Self {
        self.arch = arch.to_owned();
        self
    }

    pub fn commercial_type(mut self, commercial_type: &str) -> Self {
        self.commercial_type = commercial_type.to_owned();
        self
    }

    pub fn project(mut self, project: &str) -> Self {
        self.project = project.to_owned();
        self
    }

    pub fn organization(mut self, organization: &str) -> Self {
        self.organization = Some(organization.to_owned());
        self
    }

    /// `running`, `stopped`, `stopped in place`, `starting`, `stopping`, `locked`…
    pub fn state(mut self, state: &str) -> Self {
        self.state = state.to_owned();
        self
    }

    pub fn state_detail(mut self, detail: &str) -> Self {
        self.state_detail = Some(detail.to_owned());
        self
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(tag.to_owned());
        self
    }

    pub fn protected(mut self, protected: bool) -> Self {
        self.protected = protected;
        self
    }

    pub fn end_of_service(mut self, end_of_service: bool) -> Self {
        self.end_of_service = end_of_service;
        self
    }

    /// Last changed (and so in its state since) `at`; created an hour before.
    pub fn modified(mut self, at: DateTime<Utc>) -> Self {
        self.modification_date = scw_date(at);
        self.creation_date = scw_date(at - TimeDelta::hours(1));
        self
    }

    /// Last changed `minutes` before the wall clock's now (for a bot that reads the real time).
    pub fn modified_minutes_ago(self, minutes: i64) -> Self {
        self.modified(Utc::now() - TimeDelta::minutes(minutes))
    }

    /// The dates as written, even if they are not dates.
    pub fn dates(mut self, created: &str, modified: &str) -> Self {
        self.creation_date = created.to_owned();
        self.modification_date = modified.to_owned();
        self
    }

    /// A volume that is not the boot volume.
    pub fn volume(mut self, id: &str, volume_type: &str) -> Self {
        self.volumes.push(ScwVolume {
            id: id.to_owned(),
            volume_type: volume_type.to_owned(),
            boot: false,
        });
        self
    }

    pub fn boot_volume(mut self, id: &str, volume_type: &str) -> Self {
        self.volumes.push(ScwVolume {
            id: id.to_owned(),
            volume_type: volume_type.to_owned(),
            boot: true,
        });
        self
    }

    /// A public IP: flexible (`dynamic` false) or dynamic; its address is made up.
    pub fn ip(mut self, id: &str, dynamic: bool) -> Self {
        let n = self.public_ips.len() + 1;
        self.public_ips.push(ScwIp {
            id: id.to_owned(),
            address: format!("51.15.0.{n}"),
            dynamic,
        });
        self
    }

    /// The JSON the Instance API returns for this server.
    pub fn json(&self) -> Value {
        let volumes: Map<String, Value> = self
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut json = json!({
                    "boot": v.boot, "volume_type": v.volume_type, "id": v.id,
                    "state": "available", "zone": self.zone
                });
                // Local volumes also carry a name and a size.
                if v.volume_type != "sbs_volume" {
                    json["name"] = json!(format!("{}-{i}", self.name));
                    json["size"] = json!(20_000_000_000u64);
                }
                (i.to_string(), json)
            })
            .collect();
        let ips: Vec<Value> = self
            .public_ips
            .iter()
            .map(|ip| {
                json!({
                    "id": ip.id, "address": ip.address, "dynamic": ip.dynamic,
                    "gateway": "62.210.0.1", "netmask": "32", "family": "inet",
                    "provisioning_mode": "dhcp", "tags": [], "state": "attached"
                })
            })
            .collect();
        let state_detail = self.state_detail.clone().unwrap_or_else(|| {
            match self.state.as_str() {
                "running" => "booted",
                "starting" => "allocating node",
                "stopping" => "stopping",
                _ => "",
            }
            .to_owned()
        });
        let allowed_actions: &[&str] = match self.state.as_str() {
            "running" => &["poweroff", "terminate", "reboot", "stop_in_place", "backup"],
            "starting" | "stopping" => &["stop_in_place", "backup"],
            "stopped" => &["poweron", "backup"],
            _ => &[],
        };
        json!({
            "id": self.id,
            "name": self.name,
            "arch": self.arch,
            "commercial_type": self.commercial_type,
            "boot_type": "local",
            "organization": self.organization.as_deref().unwrap_or(&self.project),
            "project": self.project,
            "hostname": self.name,
            "volumes": volumes,
            "tags": self.tags,
            "state": self.state,
            "protected": self.protected,
            "state_detail": state_detail,
            "public_ip": ips.first().cloned().unwrap_or(Value::Null),
            "public_ips": ips,
            "dynamic_ip_required": self.public_ips.iter().any(|ip| ip.dynamic),
            "routed_ip_enabled": true,
            "enable_ipv6": false,
            "ipv6": null,
            "private_ip": null,
            "creation_date": self.creation_date,
            "modification_date": self.modification_date,
            "maintenances": [],
            "allowed_actions": allowed_actions,
            "placement_group": null,
            "private_nics": [],
            "zone": self.zone,
            "end_of_service": self.end_of_service,
        })
    }
}

impl From<ScwServer> for Value {
    fn from(s: ScwServer) -> Value {
        s.json()
    }
}

impl From<&ScwServer> for Value {
    fn from(s: &ScwServer) -> Value {
        s.json()
    }
}

/// A volume the fake knows, attached to a server or left behind.
#[derive(Debug, Clone)]
struct VolumeState {
    block: bool,
    volume_type: String,
    server: Option<String>,
}

#[derive(Debug, Clone)]
struct IpState {
    dynamic: bool,
    server: Option<String>,
}

struct Scripted {
    target: ScwTarget,
    remaining: usize,
    failure: ScwFailure,
}

#[derive(Default)]
struct State {
    key: Option<String>,
    latency: Duration,
    /// zone → its servers, in the order they were added.
    servers: BTreeMap<String, Vec<Value>>,
    /// (zone, id) → volume.
    volumes: BTreeMap<(String, String), VolumeState>,
    /// (zone, id) → IP.
    ips: BTreeMap<(String, String), IpState>,
    /// organization id → its quota.
    quotas: BTreeMap<String, Vec<Value>>,
    script: Vec<Scripted>,
    calls: Vec<ScwCall>,
}

/// A fake Scaleway on a loopback port; clones share the same server and state.
#[derive(Clone)]
pub struct FakeScaleway {
    state: Arc<Mutex<State>>,
    server: Arc<MockServer>,
    /// Signalled on every call, for [`FakeScaleway::wait_for_calls`].
    notify: Arc<Notify>,
}

impl std::fmt::Debug for FakeScaleway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeScaleway")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeScaleway {
    /// Serves on 127.0.0.1 on a free port, empty, accepting any key.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let notify = Arc::new(Notify::new());
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
                notify: notify.clone(),
            })
            .mount(&server)
            .await;
        FakeScaleway {
            state,
            server: Arc::new(server),
            notify,
        }
    }

    /// The API base URL (`SCW_API_URL`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Calls without this `X-Auth-Token` get 401 `denied_authentication`.
    pub fn require_key(&self, key: &str) {
        lock(&self.state).key = Some(key.to_owned());
    }

    /// Every later answer waits this long.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
    }

    /// Replaces the servers of `zone` (and the volumes and IPs there) with `servers`.
    pub fn set_zone<S: Into<Value>>(&self, zone: &str, servers: impl IntoIterator<Item = S>) {
        let mut state = lock(&self.state);
        state.servers.remove(zone);
        state.volumes.retain(|(z, _), _| z != zone);
        state.ips.retain(|(z, _), _| z != zone);
        for server in servers {
            state.add_server(zone, server.into());
        }
    }

    /// Adds a server to `zone`, with its volumes and IPs.
    pub fn add_server(&self, zone: &str, server: impl Into<Value>) {
        lock(&self.state).add_server(zone, server.into());
    }

    /// A volume attached to no server: `sbs_volume` lives in the Block API, others in the
    /// Instance API.
    pub fn add_volume(&self, zone: &str, id: &str, volume_type: &str) {
        lock(&self.state).volumes.insert(
            (zone.to_owned(), id.to_owned()),
            VolumeState {
                block: volume_type == "sbs_volume",
                volume_type: volume_type.to_owned(),
                server: None,
            },
        );
    }

    /// A flexible IP attached to no server.
    pub fn add_ip(&self, zone: &str, id: &str) {
        lock(&self.state).ips.insert(
            (zone.to_owned(), id.to_owned()),
            IpState {
                dynamic: false,
                server: None,
            },
        );
    }

    /// The quota of an organization, as IAM lists it (`Quotum` objects).
    pub fn set_quotas(&self, organization_id: &str, quota: Vec<Value>) {
        lock(&self.state)
            .quotas
            .insert(organization_id.to_owned(), quota);
    }

    /// The servers of `zone` now.
    pub fn servers(&self, zone: &str) -> Vec<Value> {
        lock(&self.state)
            .servers
            .get(zone)
            .cloned()
            .unwrap_or_default()
    }

    pub fn server_count(&self, zone: &str) -> usize {
        lock(&self.state).servers.get(zone).map_or(0, Vec::len)
    }

    pub fn has_server(&self, zone: &str, id: &str) -> bool {
        lock(&self.state).server_index(zone, id).is_some()
    }

    pub fn has_volume(&self, zone: &str, id: &str) -> bool {
        lock(&self.state)
            .volumes
            .contains_key(&(zone.to_owned(), id.to_owned()))
    }

    pub fn has_ip(&self, zone: &str, id: &str) -> bool {
        lock(&self.state)
            .ips
            .contains_key(&(zone.to_owned(), id.to_owned()))
    }

    /// The next `times` calls that `target` matches fail with `failure` (before the key is
    /// checked or the state looked at). Scripts are used in the order they were given.
    pub fn fail_next(&self, target: impl Into<ScwTarget>, times: usize, failure: ScwFailure) {
        lock(&self.state).script.push(Scripted {
            target: target.into(),
            remaining: times,
            failure,
        });
    }

    /// Every later call that `target` matches fails with `failure`.
    pub fn fail_always(&self, target: impl Into<ScwTarget>, failure: ScwFailure) {
        self.fail_next(target, usize::MAX, failure);
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<ScwCall> {
        lock(&self.state).calls.clone()
    }

    /// Every request so far, forgotten by the fake.
    pub fn take_calls(&self) -> Vec<ScwCall> {
        std::mem::take(&mut lock(&self.state).calls)
    }

    /// The calls `target` matches, in order.
    pub fn calls_to(&self, target: impl Into<ScwTarget>) -> Vec<ScwCall> {
        let target = target.into();
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| target.matches(c))
            .cloned()
            .collect()
    }

    /// How many calls `target` matches, whatever they were answered.
    pub fn count(&self, target: impl Into<ScwTarget>) -> usize {
        self.calls_to(target).len()
    }

    /// Waits (bounded, never a sleep) until `n` calls to `target` arrived; false on timeout.
    pub async fn wait_for_calls(
        &self,
        target: impl Into<ScwTarget>,
        n: usize,
        timeout: Duration,
    ) -> bool {
        let target = target.into();
        crate::wait_until(&self.notify, timeout, || {
            (self.count(target.clone()) >= n).then_some(())
        })
        .await
        .is_some()
    }

    /// The ids a delete of `op` removed (answered 2xx), in order.
    pub fn deleted(&self, op: ScwOp) -> Vec<String> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.op == op && (200..300).contains(&c.status))
            .filter_map(|c| c.id.clone())
            .collect()
    }
}

impl State {
    fn add_server(&mut self, zone: &str, server: Value) {
        let id = server["id"].as_str().unwrap_or_default().to_owned();
        if let Some(volumes) = server["volumes"].as_object() {
            for v in volumes.values() {
                let volume_type = v["volume_type"].as_str().unwrap_or_default().to_owned();
                if let Some(vid) = v["id"].as_str() {
                    self.volumes.insert(
                        (zone.to_owned(), vid.to_owned()),
                        VolumeState {
                            block: volume_type == "sbs_volume",
                            volume_type,
                            server: Some(id.clone()),
                        },
                    );
                }
            }
        }
        let ips = server["public_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(server.get("public_ip").filter(|ip| ip.is_object()));
        for ip in ips {
            if let Some(ip_id) = ip["id"].as_str() {
                self.ips.insert(
                    (zone.to_owned(), ip_id.to_owned()),
                    IpState {
                        dynamic: ip["dynamic"].as_bool().unwrap_or(false),
                        server: Some(id.clone()),
                    },
                );
            }
        }
        let zone_servers = self.servers.entry(zone.to_owned()).or_default();
        zone_servers.retain(|s| s["id"] != server["id"]);
        zone_servers.push(server);
    }

    fn server_index(&self, zone: &str, id: &str) -> Option<usize> {
        self.servers
            .get(zone)?
            .iter()
            .position(|s| s["id"].as_str() == Some(id))
    }

    /// Uses up one call of the first script that matches, if any.
    fn scripted(&mut self, call: &ScwCall) -> Option<ScwFailure> {
        let i = self
            .script
            .iter()
            .position(|s| s.remaining > 0 && s.target.matches(call))?;
        let s = &mut self.script[i];
        s.remaining -= 1;
        let failure = s.failure.clone();
        if s.remaining == 0 {
            self.script.remove(i);
        }
        Some(failure)
    }

    fn answer(&mut self, call: &ScwCall) -> Answer {
        if let Some(f) = self.scripted(call) {
            return f.answer();
        }
        if let Some(key) = &self.key {
            match &call.auth_token {
                None => return ScwFailure::denied_authentication("invalid_argument").answer(),
                Some(k) if k != key => {
                    return ScwFailure::denied_authentication("not_found").answer();
                }
                Some(_) => {}
            }
        }
        let zone = call.zone.clone().unwrap_or_default();
        let id = call.id.clone().unwrap_or_default();
        match call.op {
            ScwOp::ListServers => self.list_servers(&zone, call),
            ScwOp::GetServer => match self.server_index(&zone, &id) {
                Some(i) => Answer::json(200, json!({"server": self.servers[&zone][i]})),
                None => ScwFailure::not_found("instance_server", &id).answer(),
            },
            ScwOp::DeleteServer => match self.server_index(&zone, &id) {
                Some(i) => {
                    if let Some(servers) = self.servers.get_mut(&zone) {
                        servers.remove(i);
                    }
                    // Scratch volumes and dynamic IPs go with the server; the rest is left.
                    self.volumes.retain(|(z, _), v| {
                        !(z == &zone
                            && v.server.as_ref() == Some(&id)
                            && v.volume_type == "scratch")
                    });
                    self.ips.retain(|(z, _), ip| {
                        !(z == &zone && ip.server.as_ref() == Some(&id) && ip.dynamic)
                    });
                    for ((z, _), v) in &mut self.volumes {
                        if z == &zone && v.server.as_ref() == Some(&id) {
                            v.server = None;
                        }
                    }
                    for ((z, _), ip) in &mut self.ips {
                        if z == &zone && ip.server.as_ref() == Some(&id) {
                            ip.server = None;
                        }
                    }
                    Answer::no_content()
                }
                None => ScwFailure::not_found("instance_server", &id).answer(),
            },
            ScwOp::DeleteVolume | ScwOp::DeleteBlockVolume => {
                let block = call.op == ScwOp::DeleteBlockVolume;
                let key = (zone, id.clone());
                match self.volumes.get(&key) {
                    Some(v) if v.block == block => {
                        self.volumes.remove(&key);
                        Answer::no_content()
                    }
                    _ if block => ScwFailure::not_found("volume", &id).answer(),
                    _ => ScwFailure::not_found("instance_volume", &id).answer(),
                }
            }
            ScwOp::DeleteIp => match self.ips.remove(&(zone, id.clone())) {
                Some(_) => Answer::no_content(),
                None => ScwFailure::not_found("instance_ip", &id).answer(),
            },
            ScwOp::ListQuotas => self.list_quotas(call),
            ScwOp::Unknown => Answer::json(
                404,
                json!({
                    "type": "not_found", "message": format!("{} {} is not a route of the fake", call.method, call.path)
                }),
            ),
        }
    }

    fn list_servers(&self, zone: &str, call: &ScwCall) -> Answer {
        let per_page = match page_arg(call, "per_page", 50, 100) {
            Ok(n) => n,
            Err(e) => return Answer::json(400, e),
        };
        let page = match page_arg(call, "page", 1, usize::MAX) {
            Ok(n) => n,
            Err(e) => return Answer::json(400, e),
        };
        let tags: Vec<&str> = call
            .query("tags")
            .map(|t| t.split(',').filter(|t| !t.is_empty()).collect())
            .unwrap_or_default();
        let servers: Vec<&Value> = self
            .servers
            .get(zone)
            .into_iter()
            .flatten()
            .filter(|s| call.query("project").is_none_or(|p| s["project"] == p))
            .filter(|s| {
                call.query("organization")
                    .is_none_or(|o| s["organization"] == o)
            })
            .filter(|s| call.query("state").is_none_or(|st| s["state"] == st))
            .filter(|s| {
                call.query("name")
                    .is_none_or(|n| s["name"].as_str().is_some_and(|name| name.contains(n)))
            })
            .filter(|s| {
                tags.iter().all(|t| {
                    s["tags"]
                        .as_array()
                        .is_some_and(|have| have.iter().any(|h| h == t))
                })
            })
            .collect();
        let total = servers.len();
        let slice: Vec<&Value> = servers
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        // The total is in this header only, never in the body.
        Answer(
            200,
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", total.to_string().as_str())
                .set_body_json(json!({"servers": slice})),
        )
    }

    fn list_quotas(&self, call: &ScwCall) -> Answer {
        let Some(org) = call.query("organization_id") else {
            return Answer::json(
                400,
                invalid_argument("organization_id", "required", "must be set"),
            );
        };
        let page_size = match page_arg(call, "page_size", 20, 100) {
            Ok(n) => n,
            Err(e) => return Answer::json(400, e),
        };
        let page = match page_arg(call, "page", 1, usize::MAX) {
            Ok(n) => n,
            Err(e) => return Answer::json(400, e),
        };
        let quota = self.quotas.get(org).cloned().unwrap_or_default();
        let slice: Vec<Value> = quota
            .iter()
            .skip((page - 1).saturating_mul(page_size))
            .take(page_size)
            .cloned()
            .collect();
        Answer::json(200, json!({"quota": slice, "total_count": quota.len()}))
    }
}

/// A paging argument: `default` when absent, 400 `invalid_arguments` unless 1..=`max`.
fn page_arg(call: &ScwCall, name: &str, default: usize, max: usize) -> Result<usize, Value> {
    match call.query(name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            Ok(_) => Err(invalid_argument(
                name,
                "constraint",
                &format!("must be between 1 and {max}"),
            )),
            Err(_) => Err(invalid_argument(name, "format", "must be an integer")),
        },
    }
}

/// A 400 `invalid_arguments` body about one argument.
fn invalid_argument(name: &str, reason: &str, help: &str) -> Value {
    json!({
        "type": "invalid_arguments", "message": "invalid argument(s)",
        "details": [{"argument_name": name, "reason": reason, "help_message": help}]
    })
}

struct Responder {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        let mut call = parse(request);
        let Answer(status, template) = state.answer(&call);
        call.status = status;
        state.calls.push(call);
        let delay = state.latency;
        drop(state);
        self.notify.notify_waiters();
        template.set_delay(delay)
    }
}

/// Routes a request to its [`ScwOp`], zone and id.
fn parse(request: &Request) -> ScwCall {
    let path = request.url.path().to_owned();
    let method = request.method.to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (op, zone, id) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["instance", "v1", "zones", zone, "servers"]) => {
            (ScwOp::ListServers, Some(zone), None)
        }
        ("GET", ["instance", "v1", "zones", zone, "servers", id]) => {
            (ScwOp::GetServer, Some(zone), Some(id))
        }
        ("DELETE", ["instance", "v1", "zones", zone, "servers", id]) => {
            (ScwOp::DeleteServer, Some(zone), Some(id))
        }
        ("DELETE", ["instance", "v1", "zones", zone, "volumes", id]) => {
            (ScwOp::DeleteVolume, Some(zone), Some(id))
        }
        ("DELETE", ["instance", "v1", "zones", zone, "ips", id]) => {
            (ScwOp::DeleteIp, Some(zone), Some(id))
        }
        ("DELETE", ["block", "v1alpha1", "zones", zone, "volumes", id]) => {
            (ScwOp::DeleteBlockVolume, Some(zone), Some(id))
        }
        ("GET", ["iam", "v1alpha1", "quota"]) => (ScwOp::ListQuotas, None, None),
        _ => (ScwOp::Unknown, None, None),
    };
    ScwCall {
        op,
        zone: zone.map(|z| (*z).to_owned()),
        id: id.map(|i| (*i).to_owned()),
        method,
        query: request.url.query_pairs().into_owned().collect(),
        auth_token: request
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        path,
        status: 0,
        at: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "fr-par-1";

    async fn send(fake: &FakeScaleway, method: &str, path: &str) -> (u16, Option<String>, Value) {
        let resp = reqwest::Client::new()
            .request(
                method.parse().expect("method"),
                format!("{}{path}", fake.uri()),
            )
            .header("X-Auth-Token", "key-1")
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        let total = resp
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, total, body)
    }

    fn servers_path(query: &str) -> String {
        format!("/instance/v1/zones/{ZONE}/servers{query}")
    }

    #[test]
    fn the_builder_writes_the_recorded_shape() {
        let server = ScwServer::new(ZONE, "srv-1", "runner-1")
            .state("stopped")
            .tag("arm-builder")
            .boot_volume("vol-l", "l_ssd")
            .volume("vol-b", "sbs_volume")
            .ip("ip-flex", false)
            .ip("ip-dyn", true)
            .json();
        assert_eq!(server["arch"], "arm64");
        assert_eq!(server["project"], DEFAULT_PROJECT);
        assert_eq!(server["organization"], DEFAULT_PROJECT);
        assert_eq!(server["allowed_actions"], json!(["poweron", "backup"]));
        assert_eq!(server["volumes"]["0"]["boot"], true);
        assert_eq!(server["volumes"]["0"]["size"], 20_000_000_000u64);
        assert_eq!(
            server["volumes"]["1"],
            json!({"boot": false, "volume_type": "sbs_volume", "id": "vol-b",
                   "state": "available", "zone": ZONE})
        );
        assert_eq!(server["public_ip"]["id"], "ip-flex");
        assert_eq!(server["public_ips"][1]["dynamic"], true);
        assert_eq!(server["tags"], json!(["arm-builder"]));
        assert_eq!(server["modification_date"], DEFAULT_DATE);
        // Every key of a recorded server that the builder writes has the recorded type.
        let recorded: Value = serde_json::from_str(include_str!(
            "../../tests/data/scaleway/get-server-running.json"
        ))
        .expect("fixture");
        let recorded = recorded["server"].as_object().expect("server");
        for (key, value) in server.as_object().expect("object") {
            let Some(want) = recorded.get(key) else {
                panic!("`{key}` is not a field of a recorded server");
            };
            let kind = |v: &Value| std::mem::discriminant(v);
            if !want.is_null() && !value.is_null() {
                assert_eq!(kind(value), kind(want), "{key}");
            }
        }
        let dated = ScwServer::new(ZONE, "x", "x").modified(
            DateTime::parse_from_rfc3339("2026-08-25T10:00:00Z")
                .expect("date")
                .into(),
        );
        assert_eq!(dated.modification_date, "2026-08-25T10:00:00.000000+00:00");
        assert_eq!(dated.creation_date, "2026-08-25T09:00:00.000000+00:00");
        assert_ne!(fake_id(ZONE, 1), fake_id(ZONE, 2));
        assert_ne!(fake_id(ZONE, 1), fake_id("nl-ams-1", 1));
    }

    #[tokio::test]
    async fn lists_page_with_the_total_in_a_header() {
        let fake = FakeScaleway::start().await;
        fake.set_zone(
            ZONE,
            (0..120).map(|n| {
                ScwServer::numbered(ZONE, n, "runner-").project(if n < 110 { "p1" } else { "p2" })
            }),
        );
        let (status, total, body) = send(&fake, "GET", &servers_path("")).await;
        assert_eq!((status, total.as_deref()), (200, Some("120")));
        assert_eq!(
            body["servers"].as_array().map(Vec::len),
            Some(50),
            "50 by default"
        );
        assert!(body.get("total_count").is_none());
        let (_, total, body) = send(
            &fake,
            "GET",
            &servers_path("?per_page=100&page=2&project=p1"),
        )
        .await;
        assert_eq!(total.as_deref(), Some("110"));
        assert_eq!(body["servers"].as_array().map(Vec::len), Some(10));
        assert_eq!(body["servers"][0]["name"], "runner-100");
        let (status, _, body) = send(&fake, "GET", &servers_path("?per_page=101")).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (400, Some("invalid_arguments"))
        );
        let (_, total, _) = send(&fake, "GET", "/instance/v1/zones/nl-ams-1/servers").await;
        assert_eq!(total.as_deref(), Some("0"));
        let lists = fake.calls_to(ScwOp::ListServers.in_zone(ZONE));
        assert_eq!(lists.len(), 3);
        assert_eq!(lists[1].query("page"), Some("2"));
        assert_eq!(lists[1].auth_token.as_deref(), Some("key-1"));
    }

    #[tokio::test]
    async fn deletes_remove_what_scaleway_removes() {
        let fake = FakeScaleway::start().await;
        let server = ScwServer::new(ZONE, "srv-1", "runner-1")
            .state("stopped")
            .volume("vol-l", "l_ssd")
            .volume("vol-b", "sbs_volume")
            .volume("vol-s", "scratch")
            .ip("ip-flex", false)
            .ip("ip-dyn", true);
        fake.add_server(ZONE, &server);
        let one = format!("/instance/v1/zones/{ZONE}/servers/srv-1");
        let (status, _, body) = send(&fake, "GET", &one).await;
        assert_eq!((status, &body["server"]), (200, &server.json()));
        assert_eq!(send(&fake, "DELETE", &one).await.0, 204);
        let (status, _, body) = send(&fake, "GET", &one).await;
        assert_eq!(status, 404);
        // The recorded 404 of a server, word for word.
        let recorded: Value = serde_json::from_str(include_str!(
            "../../tests/data/scaleway/error-404-server.json"
        ))
        .expect("fixture");
        let (_, _, gone) = send(
            &fake,
            "GET",
            &format!("/instance/v1/zones/{ZONE}/servers/9e858e94-9b0f-4a2e-9f54-40437bd3ff05"),
        )
        .await;
        assert_eq!(gone, recorded);
        assert_eq!(body["resource_id"], "srv-1");
        assert_eq!(send(&fake, "DELETE", &one).await.0, 404);
        // Left behind: the local and block volumes and the flexible IP.
        assert!(fake.has_volume(ZONE, "vol-l") && fake.has_volume(ZONE, "vol-b"));
        assert!(!fake.has_volume(ZONE, "vol-s") && !fake.has_ip(ZONE, "ip-dyn"));
        let (status, _, body) = send(
            &fake,
            "DELETE",
            &format!("/instance/v1/zones/{ZONE}/volumes/vol-b"),
        )
        .await;
        assert_eq!(
            (status, body["resource"].as_str()),
            (404, Some("instance_volume"))
        );
        for path in [
            format!("/instance/v1/zones/{ZONE}/volumes/vol-l"),
            format!("/block/v1alpha1/zones/{ZONE}/volumes/vol-b"),
            format!("/instance/v1/zones/{ZONE}/ips/ip-flex"),
        ] {
            assert_eq!(send(&fake, "DELETE", &path).await.0, 204, "{path}");
            assert_eq!(send(&fake, "DELETE", &path).await.0, 404, "{path}");
        }
        assert_eq!(fake.deleted(ScwOp::DeleteServer), ["srv-1"]);
        assert_eq!(fake.deleted(ScwOp::DeleteVolume), ["vol-l"]);
        assert_eq!(fake.deleted(ScwOp::DeleteBlockVolume), ["vol-b"]);
        assert_eq!(fake.deleted(ScwOp::DeleteIp), ["ip-flex"]);
        assert_eq!(fake.count(ScwOp::DeleteVolume), 3);
        assert_eq!(fake.server_count(ZONE), 0);
    }

    #[tokio::test]
    async fn keys_scripts_and_quotas() {
        let fake = FakeScaleway::start().await;
        fake.add_server(ZONE, ScwServer::new(ZONE, "srv-1", "a"));
        fake.add_server("nl-ams-1", ScwServer::new("nl-ams-1", "srv-2", "b"));
        fake.require_key("another-key");
        let (status, _, body) = send(&fake, "GET", &servers_path("")).await;
        assert_eq!((status, body["reason"].as_str()), (401, Some("not_found")));
        fake.require_key("key-1");

        fake.fail_next(
            ScwOp::ListServers.in_zone("nl-ams-1"),
            2,
            ScwFailure::permissions_denied("read", "instance_server"),
        );
        fake.fail_next(
            ScwOp::DeleteServer.on("srv-1"),
            1,
            ScwFailure::rate_limited(7),
        );
        fake.fail_next(
            ScwOp::DeleteServer,
            1,
            ScwFailure::transient_state("srv-1", "stopping"),
        );
        assert_eq!(send(&fake, "GET", &servers_path("")).await.0, 200);
        for _ in 0..2 {
            assert_eq!(
                send(&fake, "GET", "/instance/v1/zones/nl-ams-1/servers")
                    .await
                    .0,
                403
            );
        }
        assert_eq!(
            send(&fake, "GET", "/instance/v1/zones/nl-ams-1/servers")
                .await
                .0,
            200
        );
        let resp = reqwest::Client::new()
            .delete(format!(
                "{}/instance/v1/zones/{ZONE}/servers/srv-1",
                fake.uri()
            ))
            .header("X-Auth-Token", "key-1")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        let delete = format!("/instance/v1/zones/{ZONE}/servers/srv-1");
        let (status, _, body) = send(&fake, "DELETE", &delete).await;
        assert_eq!(
            (status, body["current_state"].as_str()),
            (409, Some("stopping"))
        );
        assert_eq!(send(&fake, "DELETE", &delete).await.0, 204);
        assert_eq!(fake.count(ScwOp::DeleteServer.on("srv-1")), 3);

        fake.set_quotas(
            "org-1",
            (0..30).map(|i| json!({"name": format!("q{i}")})).collect(),
        );
        let (status, _, body) = send(
            &fake,
            "GET",
            "/iam/v1alpha1/quota?organization_id=org-1&page_size=20&page=2",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["quota"].as_array().map(Vec::len), &body["total_count"]),
            (Some(10), &json!(30))
        );
        assert_eq!(send(&fake, "GET", "/iam/v1alpha1/quota").await.0, 400);
        let taken = fake.take_calls();
        assert_eq!(taken.len(), 10);
        assert!(fake.calls().is_empty());
    }
}
