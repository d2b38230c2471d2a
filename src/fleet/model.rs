//! Typed Scaleway resources, as the Instance and IAM APIs return them.
//!
//! Every type is tolerant: unknown fields are ignored, missing or `null` fields take their
//! default, an unknown enum value is kept as `Other`, and an unparsable date becomes `None`.
//! One odd server must never hide the rest of the fleet.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Instance (`type Server` in scaleway-sdk-go), reduced to what the bot needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Server {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub project: String,
    #[serde(deserialize_with = "null_default")]
    pub organization: String,
    #[serde(deserialize_with = "null_default")]
    pub zone: String,
    #[serde(deserialize_with = "null_default")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub commercial_type: String,
    /// `arm64` for the builders; `arm` is the 32-bit C1 era value.
    #[serde(deserialize_with = "null_default")]
    pub arch: String,
    #[serde(deserialize_with = "null_default")]
    pub state: ServerState,
    /// Free text (`booted`, `provisioning node`…): shown, never matched on.
    #[serde(deserialize_with = "null_default")]
    pub state_detail: String,
    /// The commercial type is being retired; its servers get shut down at end of life.
    #[serde(deserialize_with = "null_default")]
    pub end_of_service: bool,
    /// A protected server refuses delete, power off, reboot and standby.
    #[serde(deserialize_with = "null_default")]
    pub protected: bool,
    #[serde(deserialize_with = "lenient_date")]
    pub creation_date: Option<DateTime<Utc>>,
    /// Changes with every state transition, so it dates the current state.
    #[serde(deserialize_with = "lenient_date")]
    pub modification_date: Option<DateTime<Utc>>,
    /// Keyed `"0"`, `"1"`…; `"0"` is usually the boot volume.
    #[serde(deserialize_with = "null_default")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(deserialize_with = "null_default")]
    pub public_ips: Vec<Ip>,
    /// Deprecated by Scaleway in favour of `public_ips`, still sent by older servers.
    pub public_ip: Option<Ip>,
    #[serde(deserialize_with = "null_default")]
    pub allowed_actions: Vec<String>,
}

impl Server {
    /// True for 64-bit ARM servers, the only ones the fleet commands look at.
    pub fn is_arm64(&self) -> bool {
        self.arch == "arm64"
    }

    /// Every public IP once: `public_ips`, plus the deprecated `public_ip` if it is not listed.
    pub fn all_public_ips(&self) -> Vec<&Ip> {
        let mut ips: Vec<&Ip> = self.public_ips.iter().collect();
        if let Some(ip) = &self.public_ip
            && !ips.iter().any(|known| known.id == ip.id)
        {
            ips.push(ip);
        }
        ips
    }
}

/// What listings leave out of the builders' names, so the part that tells them apart shows:
/// `runner-qasr7s6-arm-` for `runner-qasr7s6-arm-1733407200-5f3c`. At least the configured
/// prefix; with two or more names that start with it, all they share, cut just after a `-`,
/// `_` or `.` so no name is cut mid-word. Empty when there is nothing to leave out. The
/// listing must say what it left out.
pub fn common_name_prefix<'a>(
    configured: Option<&str>,
    names: impl IntoIterator<Item = &'a str>,
) -> String {
    let configured = configured.unwrap_or_default();
    let mut shared: Option<&str> = None;
    let mut count = 0;
    for name in names.into_iter().filter(|n| n.starts_with(configured)) {
        count += 1;
        shared = Some(match shared {
            None => name,
            Some(s) => {
                let end = s
                    .char_indices()
                    .zip(name.chars())
                    .find(|((_, a), b)| a != b)
                    .map_or(s.len().min(name.len()), |((i, _), _)| i);
                &s[..end]
            }
        });
    }
    if count < 2 {
        return if count == 1 {
            configured.to_owned()
        } else {
            String::new()
        };
    }
    let shared = shared.unwrap_or_default();
    let cut = shared.rfind(['-', '_', '.']).map_or("", |i| &shared[..=i]);
    if cut.len() > configured.len() {
        cut.to_owned()
    } else {
        configured.to_owned()
    }
}

/// `name` without the fleet's common prefix (see [`common_name_prefix`]) and the separators
/// right after it, when the prefix stops short of one (`runner-arm` for `runner-arm-7`); the
/// whole name when it does not start with the prefix or would be nothing more than it.
pub fn short_name<'a>(name: &'a str, prefix: &str) -> &'a str {
    if prefix.is_empty() {
        return name;
    }
    match name
        .strip_prefix(prefix)
        .map(|rest| rest.trim_start_matches(['-', '_', '.']))
    {
        Some(rest) if !rest.is_empty() => rest,
        _ => name,
    }
}

/// `ServerState` in the SDK. Unknown values are kept in `Other`, never rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerState {
    Running,
    Stopped,
    /// "Standby": halted but still on its hypervisor and still billed. A builder that powers
    /// itself off from inside lands here.
    StoppedInPlace,
    Starting,
    Stopping,
    /// Meaning undocumented: reported for a human, never acted on.
    Locked,
    Other(String),
}

impl ServerState {
    /// The wire value, e.g. `"stopped in place"`.
    pub fn as_str(&self) -> &str {
        match self {
            ServerState::Running => "running",
            ServerState::Stopped => "stopped",
            ServerState::StoppedInPlace => "stopped in place",
            ServerState::Starting => "starting",
            ServerState::Stopping => "stopping",
            ServerState::Locked => "locked",
            ServerState::Other(s) => s,
        }
    }

    /// Shut down but still existing: the states a stuck builder sits in.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, ServerState::Stopped | ServerState::StoppedInPlace)
    }
}

impl Default for ServerState {
    fn default() -> Self {
        ServerState::Other(String::new())
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ServerState {
    fn from(s: &str) -> Self {
        match s {
            "running" => ServerState::Running,
            "stopped" => ServerState::Stopped,
            "stopped in place" => ServerState::StoppedInPlace,
            "starting" => ServerState::Starting,
            "stopping" => ServerState::Stopping,
            "locked" => ServerState::Locked,
            other => ServerState::Other(other.to_owned()),
        }
    }
}

impl Serialize for ServerState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ServerState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any JSON value is accepted: a non-string state is kept as its JSON text.
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(match value {
            serde_json::Value::String(s) => ServerState::from(s.as_str()),
            other => ServerState::Other(other.to_string()),
        })
    }
}

/// A volume attached to a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub volume_type: VolumeType,
    #[serde(deserialize_with = "null_default")]
    pub boot: bool,
    /// Bytes; only local volumes report it.
    pub size: Option<u64>,
    #[serde(deserialize_with = "null_default")]
    pub state: String,
    #[serde(deserialize_with = "null_default")]
    pub zone: String,
}

/// Which API deletes the volume: `l_ssd` (and legacy `b_ssd`) through the Instance API,
/// `sbs_volume` through the Block API; `scratch` goes with its server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VolumeType {
    LSsd,
    BSsd,
    SbsVolume,
    Scratch,
    Other(String),
}

impl VolumeType {
    pub fn as_str(&self) -> &str {
        match self {
            VolumeType::LSsd => "l_ssd",
            VolumeType::BSsd => "b_ssd",
            VolumeType::SbsVolume => "sbs_volume",
            VolumeType::Scratch => "scratch",
            VolumeType::Other(s) => s,
        }
    }
}

impl Default for VolumeType {
    fn default() -> Self {
        VolumeType::Other(String::new())
    }
}

impl Serialize for VolumeType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for VolumeType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(match value {
            serde_json::Value::String(s) => match s.as_str() {
                "l_ssd" => VolumeType::LSsd,
                "b_ssd" => VolumeType::BSsd,
                "sbs_volume" => VolumeType::SbsVolume,
                "scratch" => VolumeType::Scratch,
                _ => VolumeType::Other(s),
            },
            other => VolumeType::Other(other.to_string()),
        })
    }
}

/// A public (flexible) IP. Non-dynamic IPs outlive their server and must be deleted apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ip {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub address: String,
    #[serde(deserialize_with = "null_default")]
    pub dynamic: bool,
}

/// An IAM quotum (`GET /iam/v1alpha1/quota`). IAM gives only caps, never usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotum {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub pretty_name: String,
    #[serde(deserialize_with = "null_default")]
    pub unit: String,
    #[serde(deserialize_with = "null_default")]
    pub description: String,
    /// `global`, `region` or `zone`.
    #[serde(deserialize_with = "null_default")]
    pub locality_type: String,
    #[serde(deserialize_with = "null_default")]
    pub limits: Vec<QuotumLimit>,
    /// Deprecated top-level cap, used when `limits` is empty.
    pub limit: Option<u64>,
    /// Deprecated top-level flag, used when `limits` is empty.
    pub unlimited: Option<bool>,
}

/// One cap of a quotum: exactly one of `global`/`region`/`zone`, one of `limit`/`unlimited`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuotumLimit {
    pub global: Option<bool>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub limit: Option<u64>,
    pub unlimited: Option<bool>,
}

/// The outcome of a DELETE: Scaleway answers 404 for something already gone, which a reaper
/// running twice must treat as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Yes,
    AlreadyGone,
}

/// `null` (or a missing field, via `#[serde(default)]`) becomes the type's default.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// RFC 3339 date, or `None` if absent, `null` or unparsable.
fn lenient_date<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_null_fields_are_tolerated() {
        let json = r#"{"id":"a","name":null,"tags":null,"state":"hibernating",
            "volumes":null,"public_ips":null,"modification_date":"yesterday",
            "creation_date":"2025-11-04T10:16:43.388760+00:00","brand_new_field":{"x":1}}"#;
        let server: Server = serde_json::from_str(json).expect("tolerant parse");
        assert_eq!(server.id, "a");
        assert_eq!(server.name, "");
        assert!(server.tags.is_empty());
        assert_eq!(server.state, ServerState::Other("hibernating".into()));
        assert_eq!(server.modification_date, None);
        assert!(server.creation_date.is_some());
    }

    #[test]
    fn the_shared_start_of_names_is_left_out_at_a_separator() {
        let names = [
            "runner-qasr7s6-arm-1733407200-5f3c",
            "runner-qasr7s6-arm-1733407299-a1b2",
            "elegant-shirley",
        ];
        let p = "runner-qasr7s6-arm-";
        assert_eq!(common_name_prefix(Some(p), names), p);
        // Without a configured prefix every name counts: the tagged one shares nothing.
        assert_eq!(common_name_prefix(None, names), "");
        assert_eq!(common_name_prefix(None, names[..2].iter().copied()), p);
        // A configured prefix is kept even where the names share less after a separator.
        assert_eq!(
            common_name_prefix(Some("runner-qasr7s6-arm-17"), names),
            "runner-qasr7s6-arm-17"
        );
        assert_eq!(common_name_prefix(Some("runner-"), ["runner-a"]), "runner-");
        assert_eq!(common_name_prefix(None, ["runner-a"]), "");
        assert_eq!(common_name_prefix(None, ["abc", "abd"]), "");
        assert_eq!(common_name_prefix(None, ["é-1", "é-2", "é-"]), "é-");
        assert_eq!(short_name("runner-a-1", "runner-a-"), "1");
        // A prefix that stops short of the separator takes it along.
        assert_eq!(short_name("runner-arm-stuck", "runner-arm"), "stuck");
        assert_eq!(short_name("runner-arm--", "runner-arm"), "runner-arm--");
        assert_eq!(
            short_name("runner-qasr7s6-arm-1", ""),
            "runner-qasr7s6-arm-1"
        );
        assert_eq!(short_name("runner-a-", "runner-a-"), "runner-a-");
        assert_eq!(
            short_name("elegant-shirley", "runner-a-"),
            "elegant-shirley"
        );
    }

    #[test]
    fn every_state_round_trips() {
        for wire in [
            "running",
            "stopped",
            "stopped in place",
            "starting",
            "stopping",
            "locked",
            "weird",
        ] {
            let state: ServerState =
                serde_json::from_value(serde_json::json!(wire)).expect("state parses");
            assert_eq!(state.as_str(), wire);
            assert_eq!(
                serde_json::to_value(&state).expect("serializes"),
                serde_json::json!(wire)
            );
        }
        let odd: ServerState = serde_json::from_value(serde_json::json!(3)).expect("non-string");
        assert_eq!(odd, ServerState::Other("3".into()));
        assert!(ServerState::StoppedInPlace.is_shut_down());
        assert!(!ServerState::Locked.is_shut_down());
    }

    #[test]
    fn deprecated_public_ip_is_merged_once() {
        let ip = Ip {
            id: "ip1".into(),
            address: "51.0.0.1".into(),
            dynamic: false,
        };
        let mut server = Server {
            public_ip: Some(ip.clone()),
            ..Server::default()
        };
        assert_eq!(server.all_public_ips().len(), 1);
        server.public_ips = vec![ip];
        assert_eq!(server.all_public_ips().len(), 1);
    }

    #[test]
    fn volume_types() {
        let v: Volume = serde_json::from_str(r#"{"id":"v","volume_type":"sbs_volume"}"#)
            .expect("volume parses");
        assert_eq!(v.volume_type, VolumeType::SbsVolume);
        let v: Volume =
            serde_json::from_str(r#"{"id":"v","volume_type":"l_ssd","size":20000000000}"#)
                .expect("volume parses");
        assert_eq!(v.volume_type, VolumeType::LSsd);
        assert_eq!(v.size, Some(20_000_000_000));
        let v: Volume = serde_json::from_str(r#"{"volume_type":"nvme"}"#).expect("parses");
        assert_eq!(v.volume_type.as_str(), "nvme");
    }
}
