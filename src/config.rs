//! Typed settings: the TOML file first, then environment variables on top.
//!
//! Everything is parsed and validated once at start-up; secrets are held in
//! [`SecretString`] so they never reach `Debug` output or logs.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    fleet::{FleetSettings, ScalewayEnv, missing_settings},
    reap::ReapSettings,
};
use serde::Deserialize;

/// Where a value comes from: a lookup function so tests need not touch the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The settings file (`ARMBOT_CONFIG`, default `armbot.toml` when present).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    /// Days to keep de-duplication keys and delivered outbox rows.
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub notify: NotifyFile,
    #[serde(default)]
    pub slack: SlackFile,
    #[serde(default)]
    pub fleet: FleetSettings,
    #[serde(default)]
    pub reap: ReapSettings,
    #[serde(default)]
    pub faq: FaqSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqSettings {
    /// A knowledge-base file replacing the built-in one.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    pub channel: Option<String>,
    pub extra_branches: Option<Vec<String>>,
    pub stable_pattern: Option<String>,
    /// Allow-list of `path_with_namespace`; empty means every project.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Runner tags that mark a job as having run on an ARM builder.
    pub arm_runner_tags: Option<Vec<String>>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// `path_with_namespace`; absent matches every project.
    pub project: Option<String>,
    /// Regular expression on the ref; absent matches every ref.
    pub r#ref: Option<String>,
    pub channel: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackFile {
    /// Minimum gap between two messages to one channel.
    pub min_interval_ms: Option<u64>,
}

/// A route from (project, ref) to a channel; first match wins.
#[derive(Debug, Clone)]
pub struct Route {
    pub project: Option<String>,
    pub ref_pattern: Option<Regex>,
    pub channel: String,
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub channel: String,
    pub extra_branches: Vec<String>,
    pub stable_pattern: Regex,
    pub projects: Vec<String>,
    pub arm_runner_tags: Vec<String>,
    pub routes: Vec<Route>,
}

impl NotifySettings {
    /// The channel for a project's ref: the first matching route, else the default.
    pub fn channel_for(&self, project: &str, git_ref: &str) -> &str {
        self.routes
            .iter()
            .find(|r| {
                r.project.as_deref().is_none_or(|p| p == project)
                    && r.ref_pattern.as_ref().is_none_or(|re| re.is_match(git_ref))
            })
            .map_or(self.channel.as_str(), |r| r.channel.as_str())
    }
}

/// GitLab webhook secrets. Several plain tokens are accepted so they can be rotated.
#[derive(Clone, Default)]
pub struct GitlabSecrets {
    pub tokens: Vec<SecretString>,
    /// Decoded HMAC key of a `whsec_…` signing token.
    pub signing_key: Option<SecretString>,
}

impl std::fmt::Debug for GitlabSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabSecrets")
            .field("tokens", &format_args!("{} set", self.tokens.len()))
            .field("signing_key", &self.signing_key.as_ref().map(|_| "set"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub api_url: String,
    pub bot_token: Option<SecretString>,
    pub signing_secret: Option<SecretString>,
    pub min_interval: Duration,
}

/// Everything the service needs, validated.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub retention: Duration,
    pub notify: NotifySettings,
    pub gitlab: GitlabSecrets,
    pub slack: SlackSettings,
    pub scaleway: ScalewayEnv,
    pub fleet: FleetSettings,
    /// Per-request timeout for Scaleway and the runner manager.
    pub scaleway_timeout: Duration,
    pub reap: ReapSettings,
    pub faq: FaqSettings,
    /// Where the settings file was read from, if any.
    pub config_path: Option<PathBuf>,
}

pub const DEFAULT_STABLE_PATTERN: &str = r"^\d+-\d+-stable(-ee)?$";
pub const CONSOLE_CHANNEL: &str = "console";

impl Settings {
    /// Reads the process environment and the settings file.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::load(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `env`; the file is named by `ARMBOT_CONFIG` or is
    /// `armbot.toml` in the working directory when that exists.
    pub fn load(env: EnvLookup<'_>) -> anyhow::Result<Self> {
        let (file, config_path) = match env("ARMBOT_CONFIG") {
            Some(path) => {
                let path = PathBuf::from(path);
                (read_file(&path)?, Some(path))
            }
            None => {
                let path = PathBuf::from("armbot.toml");
                if path.exists() {
                    (read_file(&path)?, Some(path))
                } else {
                    (FileSettings::default(), None)
                }
            }
        };
        Self::from_parts(file, env, config_path)
    }

    pub fn from_parts(
        mut file: FileSettings,
        env: EnvLookup<'_>,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let listen_raw = env("ARMBOT_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let listen = listen_raw.parse().with_context(|| {
            format!("ARMBOT_LISTEN `{listen_raw}` is not an address like 0.0.0.0:8080")
        })?;
        let database_url = env("ARMBOT_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| "sqlite://armbot.db".into());
        if !database_url.starts_with("sqlite:") {
            bail!("ARMBOT_DATABASE_URL must be a sqlite: URL (PostgreSQL support is planned)");
        }
        let retention_days = file.retention_days.unwrap_or(14);
        if retention_days == 0 {
            bail!("retention_days must be at least 1");
        }

        let bot_token = env("SLACK_BOT_TOKEN").map(SecretString::from);
        if let Some(t) = &bot_token {
            if !t.expose_secret().starts_with("xoxb-") {
                bail!("SLACK_BOT_TOKEN must be a bot token starting with xoxb-");
            }
        }
        let console = bot_token.is_none();
        let channel = match env("ARMBOT_NOTIFY_CHANNEL").or(file.notify.channel) {
            Some(c) => c,
            None if console => CONSOLE_CHANNEL.to_string(),
            None => bail!(
                "no channel for failure notices: set ARMBOT_NOTIFY_CHANNEL or [notify] channel"
            ),
        };
        let stable_raw = file
            .notify
            .stable_pattern
            .unwrap_or_else(|| DEFAULT_STABLE_PATTERN.into());
        let stable_pattern = Regex::new(&stable_raw).with_context(|| {
            format!("[notify] stable_pattern `{stable_raw}` is not a valid regex")
        })?;
        let mut routes = Vec::new();
        for r in file.notify.routes {
            let ref_pattern = match &r.r#ref {
                Some(p) => Some(Regex::new(p).with_context(|| {
                    format!("[[notify.routes]] ref `{p}` is not a valid regex")
                })?),
                None => None,
            };
            if r.channel.trim().is_empty() {
                bail!("[[notify.routes]] channel must not be empty");
            }
            routes.push(Route {
                project: r.project,
                ref_pattern,
                channel: r.channel,
            });
        }
        let notify = NotifySettings {
            channel,
            extra_branches: file
                .notify
                .extra_branches
                .unwrap_or_else(|| vec!["master".into(), "main".into()]),
            stable_pattern,
            projects: file.notify.projects,
            arm_runner_tags: file
                .notify
                .arm_runner_tags
                .unwrap_or_else(|| vec!["arm64".into(), "arm".into(), "aarch64".into()]),
            routes,
        };

        let gitlab = GitlabSecrets {
            tokens: env("GITLAB_WEBHOOK_TOKEN")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| SecretString::from(t.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            signing_key: match env("GITLAB_WEBHOOK_SIGNING_TOKEN") {
                Some(t) => Some(decode_signing_token(&t)?),
                None => None,
            },
        };
        if gitlab.tokens.is_empty() && gitlab.signing_key.is_none() {
            bail!(
                "set GITLAB_WEBHOOK_TOKEN (secret token) or GITLAB_WEBHOOK_SIGNING_TOKEN (whsec_…) so webhooks can be authenticated"
            );
        }

        let slack = SlackSettings {
            api_url: env("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".into()),
            bot_token,
            signing_secret: env("SLACK_SIGNING_SECRET").map(SecretString::from),
            min_interval: Duration::from_millis(file.slack.min_interval_ms.unwrap_or(1000)),
        };
        let scaleway = ScalewayEnv::from_lookup(env);
        file.reap
            .validate()
            .context("[reap] settings are not valid")?;
        file.reap
            .inherit_membership(file.fleet.name_prefix.as_deref(), &file.fleet.tags);
        file.fleet.reap_grace_minutes = u32::try_from(file.reap.grace_minutes).unwrap_or(u32::MAX);

        Ok(Self {
            listen,
            database_url,
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            notify,
            gitlab,
            slack,
            scaleway,
            fleet: file.fleet,
            scaleway_timeout: Duration::from_secs(10),
            reap: file.reap,
            faq: file.faq,
            config_path,
        })
    }

    /// No bot token: messages are printed instead of posted.
    pub fn console_mode(&self) -> bool {
        self.slack.bot_token.is_none()
    }

    /// Which features are on; for each one off, the settings it lacks.
    pub fn features(&self) -> Vec<(&'static str, Result<(), String>)> {
        let need = |missing: Vec<&str>| {
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {}", missing.join(", ")))
            }
        };
        let mut slack_missing = Vec::new();
        if self.slack.signing_secret.is_none() {
            slack_missing.push("SLACK_SIGNING_SECRET");
        }
        let mut post_missing = Vec::new();
        if self.slack.bot_token.is_none() {
            post_missing.push("SLACK_BOT_TOKEN (console mode: messages are printed)");
        }
        let mut fleet_missing: Vec<String> =
            slack_missing.iter().map(|m| (*m).to_string()).collect();
        fleet_missing.extend(missing_settings(&self.scaleway, &self.fleet));
        let mut reap_missing = fleet_missing.clone();
        if self.reap.allowed_users.is_empty() && self.reap.allowed_usergroup.is_none() {
            reap_missing.push("[reap] allowed_users (nobody may confirm)".into());
        }
        let joined = |m: Vec<String>| {
            if m.is_empty() {
                Ok(())
            } else {
                Err(m.join("; "))
            }
        };
        let fleet = joined(fleet_missing);
        let reap = joined(reap_missing);
        vec![
            ("failure notices (POST /gitlab/webhook)", Ok(())),
            ("posting to Slack", need(post_missing)),
            (
                "Slack commands, buttons and events",
                need(slack_missing.clone()),
            ),
            ("/arm status", fleet),
            ("/arm reap", reap),
        ]
    }

    /// Problems `check-config` reports beyond what loading already refused.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(dir) = &self.reap.machine_store {
            if let Err(e) = crate::reap::MachineIndex::read(dir) {
                out.push(format!("[reap] machine_store: {}", e.user_message()));
            }
        }
        if let Some(group) = &self.reap.allowed_usergroup {
            // Slack user group ids start with S; a handle (`arm-admins`) is the usual mistake.
            if !group.starts_with('S') {
                out.push(format!(
                    "[reap] allowed_usergroup `{group}` is not a user group id (S…): Slack would \
                     answer no_such_subteam and its members could not confirm"
                ));
            }
            if self.console_mode() {
                out.push(
                    "[reap] allowed_usergroup is set but SLACK_BOT_TOKEN is not: the group \
                     cannot be checked, so only allowed_users can confirm"
                        .into(),
                );
            }
        }
        if let Some(s) = &self.slack.signing_secret {
            let s = s.expose_secret();
            if s.len() < 16 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                out.push("SLACK_SIGNING_SECRET does not look like a Slack signing secret (32 letters and digits)".into());
            }
        }
        if self.notify.channel.starts_with('#') && !self.console_mode() {
            out.push(format!(
                "notify channel `{}` is a name: use the channel id (C…) so messages can be updated and threaded",
                self.notify.channel
            ));
        }
        out
    }

    /// A report of every setting with secrets shown only as set or unset.
    pub fn describe(&self) -> Vec<(String, String)> {
        let secret =
            |s: &Option<SecretString>| if s.is_some() { "set" } else { "unset" }.to_string();
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "unset".into());
        vec![
            ("listen".into(), self.listen.to_string()),
            ("database_url".into(), self.database_url.clone()),
            (
                "retention_days".into(),
                (self.retention.as_secs() / 86_400).to_string(),
            ),
            ("notify channel".into(), self.notify.channel.clone()),
            (
                "notify extra_branches".into(),
                self.notify.extra_branches.join(", "),
            ),
            (
                "notify stable_pattern".into(),
                self.notify.stable_pattern.to_string(),
            ),
            ("notify routes".into(), self.notify.routes.len().to_string()),
            (
                "GITLAB_WEBHOOK_TOKEN".into(),
                format!("{} token(s)", self.gitlab.tokens.len()),
            ),
            (
                "GITLAB_WEBHOOK_SIGNING_TOKEN".into(),
                if self.gitlab.signing_key.is_some() {
                    "set"
                } else {
                    "unset"
                }
                .into(),
            ),
            ("SLACK_BOT_TOKEN".into(), secret(&self.slack.bot_token)),
            (
                "SLACK_SIGNING_SECRET".into(),
                secret(&self.slack.signing_secret),
            ),
            ("SLACK_API_URL".into(), self.slack.api_url.clone()),
            ("SCW_SECRET_KEY".into(), secret(&self.scaleway.secret_key)),
            (
                "SCW_API_URL".into(),
                self.scaleway
                    .api_url
                    .clone()
                    .unwrap_or_else(|| crate::fleet::settings::DEFAULT_API_URL.into()),
            ),
            (
                "project".into(),
                opt(&self
                    .fleet
                    .project_id
                    .clone()
                    .or_else(|| self.scaleway.project_id.clone())),
            ),
            ("zones".into(), {
                let z = self.fleet.zones.join(", ");
                if z.is_empty() {
                    opt(&self.scaleway.default_zone)
                } else {
                    z
                }
            }),
            ("fleet name_prefix".into(), opt(&self.fleet.name_prefix)),
            ("fleet tags".into(), self.fleet.tags.join(", ")),
            (
                "runner_metrics_url".into(),
                if self.fleet.runner_metrics_url.is_some() {
                    "set"
                } else {
                    "unset"
                }
                .into(),
            ),
            (
                "SCW_DEFAULT_ORGANIZATION_ID".into(),
                opt(&self.scaleway.organization_id),
            ),
        ]
    }
}

fn read_file(path: &std::path::Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("settings file {} is not valid", path.display()))
}

/// `whsec_<base64 key>` → the decoded key bytes (kept secret as a string of
/// latin-1 chars would lose bytes, so they are stored base64 and decoded on use).
fn decode_signing_token(token: &str) -> anyhow::Result<SecretString> {
    use base64::Engine;
    let Some(b64) = token.trim().strip_prefix("whsec_") else {
        bail!("GITLAB_WEBHOOK_SIGNING_TOKEN must start with whsec_");
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| {
            anyhow::anyhow!("GITLAB_WEBHOOK_SIGNING_TOKEN is not whsec_ followed by base64")
        })?;
    if key.is_empty() {
        bail!("GITLAB_WEBHOOK_SIGNING_TOKEN holds an empty key");
    }
    Ok(SecretString::from(b64.to_string()))
}
