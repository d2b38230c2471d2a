//! Loading the settings: the TOML file first, then environment variables on top, composed
//! from the settings each area defines and validates itself.
//!
//! Everything is parsed and validated once at start-up; secrets are held in `SecretString`
//! so they never reach `Debug` output or logs. Every secret variable may instead name a file
//! holding it (`SLACK_BOT_TOKEN_FILE`, …; see [`SECRET_VARIABLES`]).

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;

use crate::{
    faq::FaqSettings,
    fleet::{FleetSettings, ScalewayEnv, missing_settings},
    gitlab::{GitlabApiSettings, GitlabSecrets, settings::GitlabFile},
    notify::settings::{CONSOLE_CHANNEL, NotifyFile, NotifySettings},
    reap::ReapSettings,
    slack::settings::{SlackFile, SlackSettings},
    store::{DatabaseUrl, is_postgres_url},
    watch::{WatchFile, WatchSettings},
};

/// Where a value comes from: a lookup function so tests need not touch the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The variables that hold secrets. Each one may instead be given as `NAME_FILE`, the path of
/// a file holding the value: the convention of Docker and Kubernetes secrets and of systemd's
/// `LoadCredential=` (`SLACK_BOT_TOKEN_FILE=%d/slack_bot_token`). A name read by any area's
/// settings gets this by being listed here.
pub const SECRET_VARIABLES: &[&str] = &[
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "GITLAB_WEBHOOK_TOKEN",
    "GITLAB_WEBHOOK_SIGNING_TOKEN",
    "GITLAB_API_TOKEN",
    "SCW_SECRET_KEY",
];

/// The secrets given through `NAME_FILE`, read: trailing line breaks dropped (as `echo` and
/// editors leave them). Setting both `NAME` and `NAME_FILE` is an error, and so is a file that
/// cannot be read or is empty; errors name the variable and the path, never the content.
pub fn secret_files(env: EnvLookup<'_>) -> anyhow::Result<HashMap<&'static str, String>> {
    let mut out = HashMap::new();
    for &name in SECRET_VARIABLES {
        let file_var = format!("{name}_FILE");
        let Some(path) = env(&file_var) else {
            continue;
        };
        if env(name).is_some() {
            bail!("{name} and {file_var} are both set: set only one of them");
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow!("{file_var}: cannot read {path}: {e}"))?;
        let value = text.trim_end_matches(['\n', '\r']);
        if value.trim().is_empty() {
            bail!("{file_var}: {path} is empty");
        }
        out.insert(name, value.to_owned());
    }
    Ok(out)
}

/// The settings file (`ARMBOT_CONFIG`, default `armbot.toml` when present).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    /// A second listener serving only `/metrics` (then not served on `listen`).
    pub metrics_listen: Option<String>,
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
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub watch: WatchFile,
    #[serde(default)]
    pub gitlab: GitlabFile,
}

/// `[http]` in the settings file: how long clients may take and how much they may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub header_timeout_secs: Option<u64>,
    pub keep_alive_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub body_grace_secs: Option<u64>,
    pub min_body_rate_kib: Option<u64>,
    pub max_connections: Option<usize>,
    pub shutdown_timeout_secs: Option<u64>,
    pub body_budget_mib: Option<usize>,
    pub peer_budget_mib: Option<usize>,
}

/// Connection and request-body limits: what a slow or hostile client may hold, and for how long.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A request line and headers must arrive within this, counted from the connection's
    /// opening (first request) or from the request's first byte (later ones).
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this.
    pub keep_alive: Duration,
    /// A whole request body must arrive within this.
    pub body_timeout: Duration,
    /// After this much of a body's time, it must average at least `min_body_rate`.
    pub body_grace: Duration,
    /// Bytes per second.
    pub min_body_rate: u64,
    /// Connections open at once; beyond it an idle one is closed to make room, or the new
    /// one is answered 503.
    pub max_connections: usize,
    /// After a shutdown signal, requests in progress get this long before their connections
    /// are closed.
    pub shutdown_timeout: Duration,
    /// Bytes of webhook bodies read and handled at once.
    pub body_budget: usize,
    /// Bytes of that budget one peer (IP address, IPv6 /64) may hold.
    pub peer_budget: usize,
}

impl HttpSettings {
    fn load(file: &HttpFile) -> anyhow::Result<Self> {
        const MIB: usize = 1024 * 1024;
        let secs = |v: Option<u64>, default: u64, key: &str| -> anyhow::Result<Duration> {
            let v = v.unwrap_or(default);
            if v == 0 {
                bail!("[http] {key} must be at least 1");
            }
            Ok(Duration::from_secs(v))
        };
        let body_budget = file.body_budget_mib.unwrap_or(64) * MIB;
        let peer_budget = file.peer_budget_mib.unwrap_or(32) * MIB;
        let gitlab_mib = crate::gitlab::MAX_BODY.div_ceil(MIB);
        if peer_budget < crate::gitlab::MAX_BODY || peer_budget > body_budget {
            bail!(
                "[http] peer_budget_mib must be at least {gitlab_mib} (GitLab's largest body) and at most body_budget_mib"
            );
        }
        let max_connections = file.max_connections.unwrap_or(1000);
        if max_connections == 0 {
            bail!("[http] max_connections must be at least 1");
        }
        Ok(Self {
            header_timeout: secs(file.header_timeout_secs, 10, "header_timeout_secs")?,
            keep_alive: secs(file.keep_alive_secs, 75, "keep_alive_secs")?,
            body_timeout: secs(file.body_timeout_secs, 10, "body_timeout_secs")?,
            body_grace: secs(file.body_grace_secs, 2, "body_grace_secs")?,
            min_body_rate: file.min_body_rate_kib.unwrap_or(64) * 1024,
            max_connections,
            shutdown_timeout: secs(file.shutdown_timeout_secs, 10, "shutdown_timeout_secs")?,
            body_budget,
            peer_budget,
        })
    }
}

/// Everything the service needs, validated.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Where `/metrics` is served instead of on `listen`, if set (`ARMBOT_METRICS_LISTEN`).
    pub metrics_listen: Option<SocketAddr>,
    pub database_url: DatabaseUrl,
    pub retention: Duration,
    pub notify: NotifySettings,
    pub gitlab: GitlabSecrets,
    /// The GitLab API: catch-up of missed pipelines and the hook check.
    pub gitlab_api: GitlabApiSettings,
    pub slack: SlackSettings,
    pub scaleway: ScalewayEnv,
    pub fleet: FleetSettings,
    /// Per-request timeout for Scaleway and the runner manager.
    pub scaleway_timeout: Duration,
    pub reap: ReapSettings,
    pub faq: FaqSettings,
    pub http: HttpSettings,
    pub watch: WatchSettings,
    /// Where the settings file was read from, if any.
    pub config_path: Option<PathBuf>,
}

impl Settings {
    /// Reads the process environment and the settings file.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::load(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `env`; the file is named by `ARMBOT_CONFIG` or is
    /// `armbot.toml` in the working directory when that exists.
    pub fn load(env: EnvLookup<'_>) -> anyhow::Result<Self> {
        let (file, config_path) = settings_file(env)?;
        Self::from_parts(file, env, config_path)
    }

    /// What `armbot render` needs, which works offline: the `[notify]` settings, with no
    /// secret required and the channel optional (as in console mode).
    pub fn for_render(env: EnvLookup<'_>) -> anyhow::Result<NotifySettings> {
        let (file, _) = settings_file(env)?;
        NotifySettings::load(file.notify, env, true)
    }

    /// Composes the settings from the file and `env`, in which each secret variable may be
    /// given as `NAME_FILE` (see [`secret_files`]).
    pub fn from_parts(
        mut file: FileSettings,
        env: EnvLookup<'_>,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let secrets = secret_files(env)?;
        let env: EnvLookup<'_> = &|k: &str| secrets.get(k).cloned().or_else(|| env(k));
        let listen_raw = env("ARMBOT_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let listen = listen_raw.parse().with_context(|| {
            format!("ARMBOT_LISTEN `{listen_raw}` is not an address like 0.0.0.0:8080")
        })?;
        let metrics_listen = match env("ARMBOT_METRICS_LISTEN").or(file.metrics_listen) {
            Some(raw) => Some(raw.parse().with_context(|| {
                format!("ARMBOT_METRICS_LISTEN `{raw}` is not an address like 127.0.0.1:9090")
            })?),
            None => None,
        };
        if metrics_listen.is_some_and(|m: SocketAddr| m == listen && m.port() != 0) {
            bail!("ARMBOT_METRICS_LISTEN must differ from ARMBOT_LISTEN ({listen})");
        }
        let database_url = env("ARMBOT_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| "sqlite://armbot.db".into());
        if !database_url.starts_with("sqlite:") && !is_postgres_url(&database_url) {
            bail!("ARMBOT_DATABASE_URL must be a sqlite:// or postgres:// URL");
        }
        let database_url = DatabaseUrl::new(database_url);
        let retention_days = file.retention_days.unwrap_or(14);
        if retention_days == 0 {
            bail!("retention_days must be at least 1");
        }
        let http = HttpSettings::load(&file.http)?;
        let slack = SlackSettings::load(file.slack, env)?;
        let notify = NotifySettings::load(file.notify, env, slack.console_mode())?;
        let gitlab = GitlabSecrets::load(env)?;
        let gitlab_api = GitlabApiSettings::load(file.gitlab, env)?;
        // Older de-duplication keys are pruned: replaying further back could post twice.
        if gitlab_api.catch_up_max_age.as_secs() > u64::from(retention_days) * 86_400 {
            bail!(
                "[gitlab] catch_up_max_age_hours ({}) must not exceed retention_days ({retention_days} days): \
                 older pipelines' de-duplication keys are pruned",
                gitlab_api.catch_up_max_age.as_secs() / 3600
            );
        }
        let scaleway = ScalewayEnv::load(env)?;
        file.reap
            .validate()
            .context("[reap] settings are not valid")?;
        file.reap
            .inherit_membership(file.fleet.name_prefix.as_deref(), &file.fleet.tags);
        file.fleet.reap_grace_minutes = u32::try_from(file.reap.grace_minutes).unwrap_or(u32::MAX);
        // Console mode's stand-in channel is no channel to watch in.
        let notify_channel = (!(slack.console_mode() && notify.channel == CONSOLE_CHANNEL))
            .then_some(notify.channel.as_str());
        let fleet_missing = missing_settings(&scaleway, &file.fleet).map(|m| {
            format!(
                "Scaleway is not set up (missing {})",
                m.missing().join(", ")
            )
        });
        let watch = WatchSettings::load(file.watch, notify_channel, fleet_missing)?;

        Ok(Self {
            listen,
            metrics_listen,
            database_url,
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            notify,
            gitlab,
            gitlab_api,
            slack,
            scaleway,
            fleet: file.fleet,
            scaleway_timeout: Duration::from_secs(10),
            reap: file.reap,
            faq: file.faq,
            http,
            watch,
            config_path,
        })
    }

    /// No bot token: messages are printed instead of posted.
    pub fn console_mode(&self) -> bool {
        self.slack.console_mode()
    }
}

/// The settings file named by `ARMBOT_CONFIG`, else `armbot.toml` when it exists, else none.
fn settings_file(env: EnvLookup<'_>) -> anyhow::Result<(FileSettings, Option<PathBuf>)> {
    Ok(match env("ARMBOT_CONFIG") {
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
    })
}

fn read_file(path: &std::path::Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("settings file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_parts(
            FileSettings::default(),
            &move |k| vars.get(k).cloned(),
            None,
        )
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }

    #[test]
    fn every_secret_variable_reads_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bot = write(&dir, "bot", "xoxb-from-a-file\n");
        let signing = write(&dir, "signing", "8f742231b10e8888abcd99yyyzzz85a5\r\n");
        let gitlab = write(&dir, "gitlab", "one,two\n\n");
        let whsec = write(&dir, "whsec", "whsec_c2VjcmV0\n");
        let scw = write(&dir, "scw", "11111111-1111-1111-1111-111111111111\n");
        let s = load(&[
            ("SLACK_BOT_TOKEN_FILE", &bot),
            ("SLACK_SIGNING_SECRET_FILE", &signing),
            ("GITLAB_WEBHOOK_TOKEN_FILE", &gitlab),
            ("GITLAB_WEBHOOK_SIGNING_TOKEN_FILE", &whsec),
            ("SCW_SECRET_KEY_FILE", &scw),
            ("ARMBOT_NOTIFY_CHANNEL", "C1"),
        ])
        .expect("valid");
        let token = s.slack.bot_token.as_ref().expect("bot token");
        assert_eq!(token.expose_secret(), "xoxb-from-a-file");
        let signing = s.slack.signing_secret.as_ref().expect("signing secret");
        assert_eq!(signing.expose_secret(), "8f742231b10e8888abcd99yyyzzz85a5");
        let tokens: Vec<&str> = s.gitlab.tokens.iter().map(|t| t.expose_secret()).collect();
        assert_eq!(tokens, ["one", "two"]);
        assert!(s.gitlab.signing_key.is_some());
        let key = s.scaleway.secret_key.as_ref().expect("scw key");
        assert_eq!(key.expose_secret(), "11111111-1111-1111-1111-111111111111");

        // A name read by an area this module does not know of yet gets the same treatment.
        let api = write(&dir, "api", "glpat-api\n");
        let files = secret_files(&|k| (k == "GITLAB_API_TOKEN_FILE").then(|| api.clone()))
            .expect("readable");
        assert_eq!(
            files.get("GITLAB_API_TOKEN").map(String::as_str),
            Some("glpat-api")
        );
        // Only the secret variables have a file form.
        let listen = write(&dir, "listen", "127.0.0.1:1\n");
        let s = load(&[
            ("GITLAB_WEBHOOK_TOKEN", "t"),
            ("ARMBOT_LISTEN_FILE", &listen),
        ])
        .expect("valid");
        assert_eq!(s.listen.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn file_forms_fail_clearly_and_never_show_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = write(&dir, "token", "glpat-very-secret\n");
        let err = load(&[
            ("GITLAB_WEBHOOK_TOKEN", "glpat-very-secret"),
            ("GITLAB_WEBHOOK_TOKEN_FILE", &token),
        ])
        .expect_err("both set");
        assert_eq!(
            err.to_string(),
            "GITLAB_WEBHOOK_TOKEN and GITLAB_WEBHOOK_TOKEN_FILE are both set: set only one of them"
        );

        let missing = dir.path().join("absent").display().to_string();
        let err = load(&[("GITLAB_WEBHOOK_TOKEN_FILE", &missing)]).expect_err("unreadable");
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with(&format!(
                "GITLAB_WEBHOOK_TOKEN_FILE: cannot read {missing}: "
            )),
            "{msg}"
        );
        let a_dir = dir.path().display().to_string();
        let err = load(&[
            ("SLACK_SIGNING_SECRET_FILE", &a_dir),
            ("GITLAB_WEBHOOK_TOKEN", "t"),
        ])
        .expect_err("a directory");
        assert!(
            err.to_string().contains("SLACK_SIGNING_SECRET_FILE"),
            "{err}"
        );

        let empty = write(&dir, "empty", "\n");
        let err = load(&[("GITLAB_WEBHOOK_TOKEN_FILE", &empty)]).expect_err("empty");
        assert_eq!(
            err.to_string(),
            format!("GITLAB_WEBHOOK_TOKEN_FILE: {empty} is empty")
        );

        // A value refused after reading is refused as if it came from the variable.
        let not_bot = write(&dir, "not-bot", "xoxp-very-secret-user-token\n");
        let err = load(&[
            ("GITLAB_WEBHOOK_TOKEN_FILE", &token),
            ("SLACK_BOT_TOKEN_FILE", &not_bot),
        ])
        .expect_err("not a bot token");
        let msg = format!("{err:#}");
        assert!(msg.contains("SLACK_BOT_TOKEN"), "{msg}");
        assert!(!msg.contains("very-secret"), "{msg}");
    }
}
