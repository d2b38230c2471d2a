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
    /// The one workspace served (`T…`), or `any`; unset: the bot token's (`SLACK_TEAM_ID`
    /// overrides).
    pub team_id: Option<String>,
}

/// Which Slack workspace's requests are served: the bot is installed in one, and a request
/// signed with the app's secret may still come from another (an app distributed or installed
/// elsewhere, an Enterprise Grid organisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamPolicy {
    /// The workspace of the bot token, as `auth.test` reports it at start-up.
    BotToken,
    /// This workspace only.
    Only(String),
    /// Every workspace (`any`).
    Any,
}

impl TeamPolicy {
    /// The workspace requests must come from, given the one `auth.test` reported; `None`
    /// when any is accepted, or the bot's own is not known (no token, or `auth.test` failed).
    pub fn expected<'a>(&'a self, bot_team: Option<&'a str>) -> Option<&'a str> {
        match self {
            Self::Any => None,
            Self::Only(team) => Some(team),
            Self::BotToken => bot_team.filter(|t| !t.is_empty()),
        }
    }

    /// Whether a request from `team` (absent when the payload names none) is to be refused.
    pub fn refuses(&self, bot_team: Option<&str>, team: Option<&str>) -> bool {
        self.expected(bot_team)
            .is_some_and(|expected| team != Some(expected))
    }
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub api_url: String,
    /// Unset: console mode, messages are printed instead of posted.
    pub bot_token: Option<SecretString>,
    pub signing_secret: Option<SecretString>,
    pub min_interval: Duration,
    pub team: TeamPolicy,
}

impl SlackSettings {
    /// From `[slack]` and `SLACK_BOT_TOKEN`, `SLACK_SIGNING_SECRET`, `SLACK_API_URL`,
    /// `SLACK_TEAM_ID`.
    pub fn load(file: SlackFile, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let bot_token = env("SLACK_BOT_TOKEN").map(SecretString::from);
        if bot_token
            .as_ref()
            .is_some_and(|t| !t.expose_secret().starts_with("xoxb-"))
        {
            bail!("SLACK_BOT_TOKEN must be a bot token starting with xoxb-");
        }
        let team = match env("SLACK_TEAM_ID")
            .or(file.team_id)
            .map(|t| t.trim().to_owned())
        {
            None => TeamPolicy::BotToken,
            Some(t) if t.eq_ignore_ascii_case("any") => TeamPolicy::Any,
            Some(t)
                if t.starts_with(['T', 'E']) && t.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                TeamPolicy::Only(t)
            }
            Some(_) => bail!(
                "SLACK_TEAM_ID (or [slack] team_id) must be a workspace id like T012AB3CD, or `any`"
            ),
        };
        Ok(Self {
            api_url: env("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".into()),
            bot_token,
            signing_secret: env("SLACK_SIGNING_SECRET").map(SecretString::from),
            min_interval: Duration::from_millis(file.min_interval_ms.unwrap_or(1000)),
            team,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_policy() {
        let load = |team: Option<&str>| {
            let team = team.map(str::to_owned);
            SlackSettings::load(SlackFile::default(), &move |k| {
                (k == "SLACK_TEAM_ID").then(|| team.clone()).flatten()
            })
            .map(|s| s.team)
        };
        assert_eq!(load(None).expect("default"), TeamPolicy::BotToken);
        assert_eq!(load(Some("ANY")).expect("any"), TeamPolicy::Any);
        assert_eq!(
            load(Some(" T012AB3CD ")).expect("an id"),
            TeamPolicy::Only("T012AB3CD".into())
        );
        assert!(load(Some("my-workspace")).is_err());

        let mine = TeamPolicy::BotToken;
        assert!(!mine.refuses(Some("T1"), Some("T1")));
        assert!(mine.refuses(Some("T1"), Some("T2")));
        assert!(mine.refuses(Some("T1"), None));
        // Not known (console mode, auth.test failed): every workspace is served.
        assert!(!mine.refuses(None, Some("T2")));
        assert!(!mine.refuses(Some(""), Some("T2")));
        let only = TeamPolicy::Only("T9".into());
        assert!(only.refuses(Some("T1"), Some("T1")));
        assert!(!only.refuses(None, Some("T9")));
        assert!(!TeamPolicy::Any.refuses(Some("T1"), Some("T2")));
    }
}
