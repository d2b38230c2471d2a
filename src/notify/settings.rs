//! `[notify]` in the settings file: which refs notify, and in which channel.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};
use regex::Regex;
use serde::Deserialize;

pub const DEFAULT_STABLE_PATTERN: &str = r"^\d+-\d+-stable(-ee)?$";
/// The channel name notices get in console mode when none is set.
pub const CONSOLE_CHANNEL: &str = "console";

/// `[notify]` in the settings file.
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
    /// `[notify.users]`: GitLab username = Slack user id, for the "who broke it" reply.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
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
    /// GitLab username, lowercased (GitLab usernames are case-insensitive) → Slack user id.
    pub users: HashMap<String, String>,
}

/// A Slack user id as Slack writes them: `U…` or `W…` (Enterprise Grid), then capitals and
/// digits.
pub fn is_slack_user_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && id.len() >= 3
        && id.len() <= 32
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl NotifySettings {
    /// From `[notify]` and `ARMBOT_NOTIFY_CHANNEL`; in console mode the channel may be left out.
    pub fn load(
        file: NotifyFile,
        env: &dyn Fn(&str) -> Option<String>,
        console: bool,
    ) -> anyhow::Result<Self> {
        let channel = match env("ARMBOT_NOTIFY_CHANNEL").or(file.channel) {
            Some(c) => c,
            None if console => CONSOLE_CHANNEL.to_string(),
            None => bail!(
                "no channel for failure notices: set ARMBOT_NOTIFY_CHANNEL or [notify] channel"
            ),
        };
        let stable_raw = file
            .stable_pattern
            .unwrap_or_else(|| DEFAULT_STABLE_PATTERN.into());
        let stable_pattern = Regex::new(&stable_raw).with_context(|| {
            format!("[notify] stable_pattern `{stable_raw}` is not a valid regex")
        })?;
        let mut routes = Vec::new();
        for r in file.routes {
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
        let mut users = HashMap::with_capacity(file.users.len());
        for (username, id) in file.users {
            let id = id.trim();
            if !is_slack_user_id(id) {
                bail!(
                    "[notify.users] {username} = \"{id}\" is not a Slack user id (U… or W…: \
                     Slack profile → ⋮ → Copy member ID)"
                );
            }
            if users
                .insert(username.trim().to_lowercase(), id.to_string())
                .is_some()
            {
                bail!("[notify.users] lists {username} twice (usernames are case-insensitive)");
            }
        }
        Ok(Self {
            channel,
            extra_branches: file
                .extra_branches
                .unwrap_or_else(|| vec!["master".into(), "main".into()]),
            stable_pattern,
            projects: file.projects,
            arm_runner_tags: file
                .arm_runner_tags
                .unwrap_or_else(|| vec!["arm64".into(), "arm".into(), "aarch64".into()]),
            routes,
            users,
        })
    }

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

    /// What check-config reports about the channel, if anything.
    pub fn problems(&self, console: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.channel.starts_with('#') && !console {
            out.push(format!(
                "notify channel `{}` is a name: use the channel id (C…) so messages can be updated and threaded",
                self.channel
            ));
        }
        out
    }
}
