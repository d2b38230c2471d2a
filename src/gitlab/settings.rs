//! The GitLab webhook secrets (`GITLAB_WEBHOOK_TOKEN`, `GITLAB_WEBHOOK_SIGNING_TOKEN`) and the
//! GitLab API settings (`[gitlab]`, `GITLAB_URL`, `GITLAB_API_TOKEN`, `ARMBOT_PUBLIC_URL`).

use std::time::Duration;

use anyhow::bail;
use reqwest::Url;
use secrecy::SecretString;
use serde::Deserialize;

use super::api::DEFAULT_RETRY;
use crate::retry::RetryPolicy;

/// GitLab webhook secrets. Several plain tokens are accepted so they can be rotated.
#[derive(Clone, Default)]
pub struct GitlabSecrets {
    pub tokens: Vec<SecretString>,
    /// The base64 HMAC key of a `whsec_…` signing token.
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

impl GitlabSecrets {
    /// From the environment; at least one of the two secrets is required.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let secrets = Self {
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
        if secrets.tokens.is_empty() && secrets.signing_key.is_none() {
            bail!(
                "set GITLAB_WEBHOOK_TOKEN (secret token) or GITLAB_WEBHOOK_SIGNING_TOKEN (whsec_…) so webhooks can be authenticated"
            );
        }
        Ok(secrets)
    }
}

/// `whsec_<base64 key>` → the key, checked to decode and kept base64 (the raw bytes are not
/// text); decoded again on use.
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

/// `[gitlab]` in the settings file: the GitLab API, for catching up missed pipelines and
/// checking the bot's own webhook.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabFile {
    /// The instance, e.g. `https://gitlab.com` (`GITLAB_URL` overrides it).
    pub url: Option<String>,
    /// How often catch-up and the hook check run.
    pub catch_up_interval_secs: Option<u64>,
    /// How far back catch-up looks after downtime.
    pub catch_up_max_age_hours: Option<u64>,
}

pub const DEFAULT_CATCH_UP_INTERVAL_SECS: u64 = 300;
pub const DEFAULT_CATCH_UP_MAX_AGE_HOURS: u64 = 24;
/// Shorter intervals only spend the API's rate limit: webhooks are the fast path.
pub const MIN_CATCH_UP_INTERVAL_SECS: u64 = 30;
/// How long one GitLab API call may take.
const API_TIMEOUT: Duration = Duration::from_secs(15);

/// The GitLab API settings: `GITLAB_URL` / `[gitlab] url`, `GITLAB_API_TOKEN`,
/// `ARMBOT_PUBLIC_URL` and the catch-up schedule. Catch-up runs only with both the URL and
/// the token; the hook check also needs the public URL (to know which hook is ours).
#[derive(Clone)]
pub struct GitlabApiSettings {
    /// The instance's base URL, without `/api/v4`.
    pub url: Option<Url>,
    /// A token with the `read_api` scope (`PRIVATE-TOKEN`).
    pub token: Option<SecretString>,
    /// Where GitLab reaches the bot: its hook is the one at `<this>/gitlab/webhook`.
    pub public_url: Option<Url>,
    pub catch_up_interval: Duration,
    pub catch_up_max_age: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// Not a setting: tests shrink the waits.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for GitlabApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitlabApiSettings")
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("token", &self.token.as_ref().map(|_| "set"))
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("catch_up_interval", &self.catch_up_interval)
            .field("catch_up_max_age", &self.catch_up_max_age)
            .finish_non_exhaustive()
    }
}

/// What catch-up lacks. Shown by `armbot check-config` and in the log at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiNotConfigured {
    missing: Vec<&'static str>,
}

impl ApiNotConfigured {
    pub fn missing(&self) -> &[&'static str] {
        &self.missing
    }
}

impl std::fmt::Display for ApiNotConfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "missing {}", self.missing.join(", "))
    }
}

impl GitlabApiSettings {
    /// From `[gitlab]`, `GITLAB_URL`, `GITLAB_API_TOKEN` and `ARMBOT_PUBLIC_URL`.
    pub fn load(file: GitlabFile, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let url = match env("GITLAB_URL").or(file.url) {
            Some(raw) => Some(instance_url(&raw)?),
            None => None,
        };
        let token = env("GITLAB_API_TOKEN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        let public_url = match env("ARMBOT_PUBLIC_URL") {
            Some(raw) => Some(
                http_url(&raw)
                    .map_err(|why| anyhow::anyhow!("ARMBOT_PUBLIC_URL `{}` {why}", raw.trim()))?,
            ),
            None => None,
        };
        let interval = file
            .catch_up_interval_secs
            .unwrap_or(DEFAULT_CATCH_UP_INTERVAL_SECS);
        if interval < MIN_CATCH_UP_INTERVAL_SECS {
            bail!(
                "[gitlab] catch_up_interval_secs must be at least {MIN_CATCH_UP_INTERVAL_SECS} \
                 (webhooks are the fast path; catch-up only fills gaps)"
            );
        }
        let max_age = file
            .catch_up_max_age_hours
            .unwrap_or(DEFAULT_CATCH_UP_MAX_AGE_HOURS);
        if max_age == 0 {
            bail!("[gitlab] catch_up_max_age_hours must be at least 1");
        }
        Ok(Self {
            url,
            token,
            public_url,
            catch_up_interval: Duration::from_secs(interval),
            catch_up_max_age: Duration::from_secs(max_age.saturating_mul(3600)),
            timeout: API_TIMEOUT,
            retry: DEFAULT_RETRY,
        })
    }

    /// The instance and the token, or what catch-up lacks.
    pub fn api(&self) -> Result<(&Url, &SecretString), ApiNotConfigured> {
        match (&self.url, &self.token) {
            (Some(url), Some(token)) => Ok((url, token)),
            (url, token) => {
                let mut missing = Vec::new();
                if url.is_none() {
                    missing.push("GITLAB_URL (or [gitlab] url)");
                }
                if token.is_none() {
                    missing.push("GITLAB_API_TOKEN");
                }
                Err(ApiNotConfigured { missing })
            }
        }
    }

    /// What catch-up lacks, if anything.
    pub fn not_configured(&self) -> Option<ApiNotConfigured> {
        self.api().err()
    }
}

/// `https://gitlab.example.com` (a trailing `/` or `/api/v4` is dropped).
fn instance_url(raw: &str) -> anyhow::Result<Url> {
    let mut url =
        http_url(raw).map_err(|why| anyhow::anyhow!("GITLAB_URL `{}` {why}", raw.trim()))?;
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v4").unwrap_or(path).to_string();
    url.set_path(&path);
    url.set_query(None);
    Ok(url)
}

fn http_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw.trim()).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL with a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)], file: GitlabFile) -> anyhow::Result<GitlabApiSettings> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        GitlabApiSettings::load(file, &move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn urls_are_normalised_and_the_token_never_shown() {
        let s = load(
            &[
                ("GITLAB_URL", "https://gitlab.example.com/api/v4/"),
                ("GITLAB_API_TOKEN", " glpat-s3cret "),
                ("ARMBOT_PUBLIC_URL", "https://bot.example.com/armbot"),
            ],
            GitlabFile::default(),
        )
        .expect("valid");
        assert_eq!(
            s.url.as_ref().map(Url::as_str),
            Some("https://gitlab.example.com/")
        );
        assert!(s.not_configured().is_none());
        assert_eq!(s.catch_up_interval, Duration::from_secs(300));
        assert_eq!(s.catch_up_max_age, Duration::from_secs(24 * 3600));
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let sub = load(
            &[("GITLAB_URL", "https://host/gitlab")],
            GitlabFile::default(),
        )
        .expect("valid");
        assert_eq!(sub.url.as_ref().map(Url::path), Some("/gitlab"));
    }

    #[test]
    fn what_is_missing_and_what_is_refused() {
        let none = load(&[], GitlabFile::default()).expect("valid");
        let missing = none.not_configured().expect("not configured");
        assert_eq!(missing.missing().len(), 2);
        let file = GitlabFile {
            url: Some("https://gitlab.com".into()),
            catch_up_interval_secs: Some(60),
            catch_up_max_age_hours: Some(2),
        };
        let s = load(&[], file).expect("valid");
        assert_eq!(
            s.not_configured().map(|m| m.missing().to_vec()),
            Some(vec!["GITLAB_API_TOKEN"])
        );
        assert_eq!(s.catch_up_interval, Duration::from_secs(60));
        for bad in [
            "gitlab.com",
            "ftp://gitlab.com",
            "https://user:pw@gitlab.com",
        ] {
            assert!(
                load(&[("GITLAB_URL", bad)], GitlabFile::default()).is_err(),
                "{bad}"
            );
        }
        let fast = GitlabFile {
            catch_up_interval_secs: Some(5),
            ..GitlabFile::default()
        };
        assert!(load(&[], fast).is_err());
        let zero = GitlabFile {
            catch_up_max_age_hours: Some(0),
            ..GitlabFile::default()
        };
        assert!(load(&[], zero).is_err());
        assert!(load(&[("ARMBOT_PUBLIC_URL", "bot")], GitlabFile::default()).is_err());
    }
}
