//! Fleet settings (the `[fleet]` section of the settings file), the Scaleway environment
//! variables, and the resolved context the fleet commands run with.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::model::Server;
use super::scaleway::ScalewayClient;
use crate::runner::RunnerMetricsClient;

/// Scaleway's public API, the `scw` CLI's default for `SCW_API_URL`.
pub const DEFAULT_API_URL: &str = "https://api.scaleway.com";
/// How long a builder must stay shut down before it counts as reapable.
pub const DEFAULT_REAP_GRACE_MINUTES: u32 = 15;

/// `[fleet]` in the settings file. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// Zones to watch; empty means `SCW_DEFAULT_ZONE`.
    pub zones: Vec<String>,
    /// Builders' names start with this (e.g. `runner-qasr7s6-arm-`).
    pub name_prefix: Option<String>,
    /// Builders carry at least one of these tags.
    pub tags: Vec<String>,
    /// Overrides `SCW_DEFAULT_PROJECT_ID`.
    pub project_id: Option<String>,
    /// The runner's `[[runners]] limit`, used when its metrics are not configured or lack it.
    pub runner_cap: Option<u32>,
    /// The runner manager's metrics address (its `listen_address`), e.g. `http://manager:9252`.
    pub runner_metrics_url: Option<String>,
    /// Minutes a builder must have been shut down before `/arm reap` may take it. Not a key of
    /// `[fleet]`: it is `[reap] grace_minutes`, copied here so status and reap agree.
    #[serde(skip)]
    pub reap_grace_minutes: u32,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            zones: Vec::new(),
            name_prefix: None,
            tags: Vec::new(),
            project_id: None,
            runner_cap: None,
            runner_metrics_url: None,
            reap_grace_minutes: DEFAULT_REAP_GRACE_MINUTES,
        }
    }
}

impl FleetSettings {
    /// Whether a server is one of the ARM builders: arm64, and named with the prefix or
    /// carrying a fleet tag. With neither prefix nor tags configured, every arm64 server of
    /// the project is a builder. Empty prefix or tags count as not configured: they would
    /// otherwise match everything by accident.
    pub fn matches(&self, server: &Server) -> bool {
        if !server.is_arm64() {
            return false;
        }
        let prefix = self.name_prefix.as_deref().filter(|p| !p.is_empty());
        let tags: Vec<&str> = self
            .tags
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty())
            .collect();
        if prefix.is_none() && tags.is_empty() {
            return true;
        }
        prefix.is_some_and(|p| server.name.starts_with(p))
            || server.tags.iter().any(|t| tags.contains(&t.as_str()))
    }
}

/// The Scaleway settings, named as the `scw` CLI names them: its config file's profile with
/// the `SCW_*` variables over it (see [`super::scw_config`]).
#[derive(Clone, Default)]
pub struct ScalewayEnv {
    pub secret_key: Option<SecretString>,
    pub project_id: Option<String>,
    pub organization_id: Option<String>,
    pub default_zone: Option<String>,
    pub api_url: Option<String>,
    /// The `scw` config file read and the profile taken from it, if any.
    pub config_file: Option<String>,
}

impl std::fmt::Debug for ScalewayEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalewayEnv")
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("project_id", &self.project_id)
            .field("organization_id", &self.organization_id)
            .field("default_zone", &self.default_zone)
            .field("api_url", &self.api_url)
            .field("config_file", &self.config_file)
            .finish()
    }
}

impl ScalewayEnv {
    /// The `scw` config file's profile with the `SCW_*` variables of `env` over it, as the
    /// `scw` CLI resolves them. An unreadable or invalid file, or a missing profile, is an
    /// error.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let loaded = super::scw_config::load(env)?;
        let p = loaded.profile;
        Ok(ScalewayEnv {
            secret_key: p.secret_key.map(SecretString::from),
            project_id: p.default_project_id,
            organization_id: p.default_organization_id,
            default_zone: p.default_zone,
            api_url: p.api_url,
            config_file: loaded.source,
        })
    }

    /// Read `SCW_SECRET_KEY`, `SCW_DEFAULT_PROJECT_ID`, `SCW_DEFAULT_ORGANIZATION_ID`,
    /// `SCW_DEFAULT_ZONE` and `SCW_API_URL` from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same, from any lookup (tests, a config layer), without the config file. Blank values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        ScalewayEnv {
            secret_key: get("SCW_SECRET_KEY").map(SecretString::from),
            project_id: get("SCW_DEFAULT_PROJECT_ID"),
            organization_id: get("SCW_DEFAULT_ORGANIZATION_ID"),
            default_zone: get("SCW_DEFAULT_ZONE"),
            api_url: get("SCW_API_URL"),
            config_file: None,
        }
    }
}

/// The fleet commands lack settings. Shown as a sentence to whoever asked (Slack,
/// `armbot check-config`) instead of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotConfigured {
    missing: Vec<&'static str>,
}

impl NotConfigured {
    /// The settings that are missing, as the environment names them.
    pub fn missing(&self) -> &[&'static str] {
        &self.missing
    }
}

impl std::fmt::Display for NotConfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = match self.missing.as_slice() {
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
            [] => String::new(),
        };
        write!(
            f,
            "The fleet commands are not set up: the bot needs {list}. Ask an admin to set {} in \
             its environment or settings file.",
            if self.missing.len() == 1 {
                "it"
            } else {
                "them"
            }
        )
    }
}

/// What the fleet commands lack; `None` when everything needed is set. The organization id
/// is optional (it only adds quotas).
pub fn missing_settings(env: &ScalewayEnv, settings: &FleetSettings) -> Option<NotConfigured> {
    let mut missing: Vec<&'static str> = Vec::new();
    if env
        .secret_key
        .as_ref()
        .is_none_or(|k| k.expose_secret().trim().is_empty())
    {
        missing.push("SCW_SECRET_KEY");
    }
    if settings.project_id.as_deref().is_none_or(str::is_empty) && env.project_id.is_none() {
        missing.push("SCW_DEFAULT_PROJECT_ID (or `project_id` under `[fleet]`)");
    }
    if resolved_zones(env, settings).is_empty() {
        missing.push("SCW_DEFAULT_ZONE (or `zones` under `[fleet]`)");
    }
    (!missing.is_empty()).then_some(NotConfigured { missing })
}

fn resolved_zones(env: &ScalewayEnv, settings: &FleetSettings) -> Vec<String> {
    let mut zones: Vec<String> = Vec::new();
    for zone in settings.zones.iter().map(|z| z.trim()) {
        // A zone listed twice would be queried and counted twice.
        if !zone.is_empty() && !zones.iter().any(|known| known == zone) {
            zones.push(zone.to_owned());
        }
    }
    if zones.is_empty() {
        env.default_zone.iter().cloned().collect()
    } else {
        zones
    }
}

/// Everything a fleet command needs, resolved from settings and environment.
#[derive(Debug, Clone)]
pub struct FleetContext {
    pub scaleway: ScalewayClient,
    /// Runner manager metrics, if `runner_metrics_url` is set.
    pub runner: Option<RunnerMetricsClient>,
    /// IAM quotas are read only when this is set.
    pub organization_id: Option<String>,
    /// The settings with `project_id` and `zones` resolved (both always set).
    pub settings: FleetSettings,
}

impl FleetContext {
    /// Builds the clients, once at start-up. `timeout` bounds each HTTP attempt.
    pub fn new(
        settings: &FleetSettings,
        env: &ScalewayEnv,
        timeout: Duration,
    ) -> Result<Self, NotConfigured> {
        if let Some(missing) = missing_settings(env, settings) {
            return Err(missing);
        }
        let mut settings = settings.clone();
        settings.zones = resolved_zones(env, &settings);
        settings.project_id = settings
            .project_id
            .filter(|p| !p.is_empty())
            .or_else(|| env.project_id.clone());
        // Always set after `missing_settings`, but no panic path.
        let key = env.secret_key.clone().ok_or_else(|| NotConfigured {
            missing: vec!["SCW_SECRET_KEY"],
        })?;
        let api_url = env.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        Ok(FleetContext {
            scaleway: ScalewayClient::new(api_url, key, timeout),
            runner: settings
                .runner_metrics_url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
                .map(|u| RunnerMetricsClient::new(u.trim(), timeout)),
            organization_id: env.organization_id.clone(),
            settings,
        })
    }

    /// Every Scaleway call counted in `armbot_scaleway_calls_total`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.scaleway = self.scaleway.with_metrics(metrics);
        self
    }

    /// The same clients over other zones (`/arm status fr-par-2`).
    pub fn with_zones(&self, zones: Vec<String>) -> Self {
        let mut ctx = self.clone();
        if !zones.is_empty() {
            ctx.settings.zones = zones;
        }
        ctx
    }

    /// The resolved project id.
    pub fn project_id(&self) -> &str {
        self.settings.project_id.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, arch: &str, tags: &[&str]) -> Server {
        Server {
            name: name.to_owned(),
            arch: arch.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Server::default()
        }
    }

    #[test]
    fn fleet_filter() {
        let all = FleetSettings::default();
        assert!(all.matches(&server("anything", "arm64", &[])));
        assert!(!all.matches(&server("anything", "x86_64", &[])));
        assert!(!all.matches(&server("anything", "arm", &[])));

        let by_prefix = FleetSettings {
            name_prefix: Some("runner-abc-".into()),
            tags: vec!["arm-builder".into()],
            ..FleetSettings::default()
        };
        assert!(by_prefix.matches(&server("runner-abc-1", "arm64", &[])));
        assert!(by_prefix.matches(&server("elegant-shirley", "arm64", &["arm-builder"])));
        assert!(!by_prefix.matches(&server("elegant-shirley", "arm64", &["other"])));
        assert!(!by_prefix.matches(&server("runner-abc-1", "x86_64", &["arm-builder"])));

        let blank = FleetSettings {
            name_prefix: Some(String::new()),
            tags: vec![String::new()],
            ..FleetSettings::default()
        };
        assert!(blank.matches(&server("x", "arm64", &[])));
    }

    #[test]
    fn settings_reject_unknown_keys() {
        let parsed: Result<FleetSettings, _> = serde_json::from_str(r#"{"zone":"fr-par-2"}"#);
        assert!(parsed.is_err());
        let parsed: FleetSettings =
            serde_json::from_str(r#"{"zones":["fr-par-2"],"runner_cap":30}"#).expect("valid");
        assert_eq!(parsed.runner_cap, Some(30));
        assert_eq!(parsed.reap_grace_minutes, DEFAULT_REAP_GRACE_MINUTES);

        // The settings file is TOML; this is the `[fleet]` table's body.
        let toml_text = r#"
            zones = ["fr-par-1", "fr-par-2"]
            name_prefix = "runner-qasr7s6-arm-"
            tags = ["arm-builder"]
            runner_cap = 30
            runner_metrics_url = "http://manager:9252"
        "#;
        let parsed: FleetSettings = toml::from_str(toml_text).expect("valid TOML");
        assert_eq!(parsed.zones.len(), 2);
        assert!(toml::from_str::<FleetSettings>("runner_limit = 3").is_err());
        // The grace period has one home, `[reap] grace_minutes`.
        assert!(toml::from_str::<FleetSettings>("reap_grace_minutes = 20").is_err());
    }

    fn env(vars: &[(&str, &str)]) -> ScalewayEnv {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ScalewayEnv::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn from_env_reads_the_process_environment() {
        // Tests cannot set variables safely (edition 2024 makes `set_var` unsafe), so compare
        // with a lookup over the same environment.
        let direct = ScalewayEnv::from_env();
        let looked_up = ScalewayEnv::from_lookup(|name| std::env::var(name).ok());
        assert_eq!(direct.project_id, looked_up.project_id);
        assert_eq!(direct.default_zone, looked_up.default_zone);
        assert_eq!(direct.api_url, looked_up.api_url);
        assert_eq!(direct.secret_key.is_some(), looked_up.secret_key.is_some());
    }

    #[test]
    fn missing_settings_names_the_variables() {
        let nothing = missing_settings(&env(&[]), &FleetSettings::default());
        assert_eq!(
            nothing.map(|m| m.to_string()).as_deref(),
            Some(
                "The fleet commands are not set up: the bot needs SCW_SECRET_KEY, \
                 SCW_DEFAULT_PROJECT_ID (or `project_id` under `[fleet]`) and SCW_DEFAULT_ZONE \
                 (or `zones` under `[fleet]`). Ask an admin to set them in its environment or \
                 settings file."
            )
        );
        let only_key = missing_settings(
            &env(&[
                ("SCW_DEFAULT_PROJECT_ID", "p"),
                ("SCW_DEFAULT_ZONE", "fr-par-2"),
            ]),
            &FleetSettings::default(),
        );
        assert_eq!(
            only_key.map(|m| m.to_string()).as_deref(),
            Some(
                "The fleet commands are not set up: the bot needs SCW_SECRET_KEY. Ask an admin \
                 to set it in its environment or settings file."
            )
        );
        let from_file = FleetSettings {
            zones: vec!["fr-par-2".into()],
            project_id: Some("p".into()),
            ..FleetSettings::default()
        };
        assert_eq!(
            missing_settings(&env(&[("SCW_SECRET_KEY", "k")]), &from_file),
            None
        );
        // A blank variable is as good as unset.
        assert!(missing_settings(&env(&[("SCW_SECRET_KEY", "  ")]), &from_file).is_some());
    }

    #[test]
    fn context_resolves_zones_project_and_hides_the_key() {
        let e = env(&[
            ("SCW_SECRET_KEY", "super-secret-key"),
            ("SCW_DEFAULT_PROJECT_ID", "env-project"),
            ("SCW_DEFAULT_ZONE", "fr-par-2"),
        ]);
        let ctx = FleetContext::new(&FleetSettings::default(), &e, Duration::from_secs(5))
            .expect("complete");
        assert_eq!(ctx.settings.zones, vec!["fr-par-2"]);
        assert_eq!(ctx.project_id(), "env-project");
        assert!(ctx.runner.is_none());
        assert!(!format!("{ctx:?}").contains("super-secret-key"));
        assert!(!format!("{e:?}").contains("super-secret-key"));

        let file = FleetSettings {
            zones: vec!["nl-ams-1".into(), "pl-waw-1".into()],
            project_id: Some("file-project".into()),
            runner_metrics_url: Some("http://manager:9252".into()),
            ..FleetSettings::default()
        };
        let ctx = FleetContext::new(&file, &e, Duration::from_secs(5)).expect("complete");
        assert_eq!(ctx.settings.zones, vec!["nl-ams-1", "pl-waw-1"]);
        assert_eq!(ctx.project_id(), "file-project");
        assert!(ctx.runner.is_some());

        let err = FleetContext::new(&FleetSettings::default(), &env(&[]), Duration::ZERO)
            .expect_err("incomplete");
        assert!(err.missing().contains(&"SCW_SECRET_KEY"));
        assert!(err.to_string().contains("SCW_SECRET_KEY"));
    }
}
