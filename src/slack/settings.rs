//! `[slack]` in the settings file and the Slack variables.

use std::time::Duration;

use anyhow::bail;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[slack]` in the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackFile {
    /// Minimum gap between two messages to one channel.
    pub min_interval_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub api_url: String,
    /// Unset: console mode, messages are printed instead of posted.
    pub bot_token: Option<SecretString>,
    pub signing_secret: Option<SecretString>,
    pub min_interval: Duration,
}

impl SlackSettings {
    /// From `[slack]` and `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`, `SLACK_API_URL`.
    pub fn load(file: SlackFile, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let bot_token = env("SLACK_BOT_TOKEN").map(SecretString::from);
        if bot_token
            .as_ref()
            .is_some_and(|t| !t.expose_secret().starts_with("xoxb-"))
        {
            bail!("SLACK_BOT_TOKEN must be a bot token starting with xoxb-");
        }
        Ok(Self {
            api_url: env("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".into()),
            bot_token,
            signing_secret: env("SLACK_SIGNING_SECRET").map(SecretString::from),
            min_interval: Duration::from_millis(file.min_interval_ms.unwrap_or(1000)),
        })
    }

    /// No bot token: messages are printed instead of posted.
    pub fn console_mode(&self) -> bool {
        self.bot_token.is_none()
    }

    /// What check-config reports about the signing secret, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.signing_secret {
            let s = s.expose_secret();
            if s.len() < 16 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                out.push("SLACK_SIGNING_SECRET does not look like a Slack signing secret (32 letters and digits)".into());
            }
        }
        out
    }
}
