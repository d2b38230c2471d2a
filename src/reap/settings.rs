//! `[reap]` in the settings file: who may confirm, what counts as a stuck builder, and how the
//! runner slot is freed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

/// The placeholder replaced by the machine name in `release_command`.
pub const MACHINE_PLACEHOLDER: &str = "{machine}";

/// `[reap]` in the settings file. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReapSettings {
    /// Slack user ids allowed to press Confirm.
    pub allowed_users: Vec<String>,
    /// A Slack user group id whose members may also confirm.
    pub allowed_usergroup: Option<String>,
    /// Minutes a builder must have stayed shut down: the runner's own stop waits up to a minute
    /// and a power-off takes about as long, so a fresh `stopped` may be the runner at work.
    pub grace_minutes: u64,
    /// Blast-radius cap: servers removed by one confirmation.
    pub max_per_run: usize,
    /// How long a plan may be confirmed after it was shown.
    pub plan_ttl_minutes: u64,
    /// Servers handled at once during a run. Each server costs about three Scaleway calls,
    /// so 8 at once stays well under the roughly 100 requests/s Scaleway is reported to allow.
    pub concurrency: usize,
    /// Fleet membership: the builders' Scaleway names start with this (gitlab-runner ≥ 18.6
    /// with `MachineOptionsWithName = ["scaleway-name=%s"]`). With neither this nor `tags`
    /// set, `[fleet]`'s are used (see [`ReapSettings::inherit_membership`]).
    pub name_prefix: Option<String>,
    /// Fleet membership: a builder carries at least one of these tags (fork drivers).
    pub tags: Vec<String>,
    /// Zones reap may act in; empty means the zones queried.
    pub allowed_zones: Vec<String>,
    /// Projects reap may act in; empty means the configured project.
    pub allowed_projects: Vec<String>,
    /// The docker-machine store (`$MACHINE_STORAGE_PATH`, e.g. `/root/.docker/machine`): maps
    /// servers to runner machines, and is the third way to tell fleet membership.
    pub machine_store: Option<PathBuf>,
    /// Frees a runner slot; `{machine}` becomes the machine name. Run without a shell.
    pub release_command: Vec<String>,
    pub release_timeout_secs: u64,
    /// Attempts at a call Scaleway refuses with 409 `transient_state` (the first included).
    pub transient_attempts: u32,
    /// Wait before the second such attempt; doubled for each later one.
    pub transient_delay_ms: u64,
}

impl Default for ReapSettings {
    fn default() -> Self {
        ReapSettings {
            allowed_users: Vec::new(),
            allowed_usergroup: None,
            grace_minutes: 15,
            max_per_run: 10,
            plan_ttl_minutes: 10,
            concurrency: 8,
            name_prefix: None,
            tags: Vec::new(),
            allowed_zones: Vec::new(),
            allowed_projects: Vec::new(),
            machine_store: None,
            release_command: ["docker-machine", "rm", "-f", MACHINE_PLACEHOLDER]
                .map(str::to_owned)
                .to_vec(),
            release_timeout_secs: 120,
            transient_attempts: 3,
            transient_delay_ms: 5_000,
        }
    }
}

impl ReapSettings {
    /// One membership rule for status and reap: without a prefix or tags of its own, reap
    /// takes `[fleet]`'s, so `/arm status`'s "reapable" count matches the plan `/arm reap` shows.
    pub fn inherit_membership(&mut self, fleet_prefix: Option<&str>, fleet_tags: &[String]) {
        let own = self.name_prefix.as_deref().is_some_and(|p| !p.is_empty())
            || self.tags.iter().any(|t| !t.is_empty());
        if !own {
            self.name_prefix = fleet_prefix.map(str::to_owned);
            self.tags = fleet_tags.to_vec();
        }
    }

    /// Start-up check: values that would make reap useless or unbounded.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.concurrency == 0 {
            bail!("[reap] concurrency must be at least 1");
        }
        if self.max_per_run == 0 {
            bail!("[reap] max_per_run must be at least 1");
        }
        if self.plan_ttl_minutes == 0 {
            bail!("[reap] plan_ttl_minutes must be at least 1, or no plan could be confirmed");
        }
        if self.transient_attempts == 0 {
            bail!("[reap] transient_attempts must be at least 1");
        }
        if self.release_timeout_secs == 0 {
            bail!("[reap] release_timeout_secs must be at least 1");
        }
        if self
            .release_command
            .first()
            .is_none_or(|p| p.trim().is_empty())
        {
            bail!(
                "[reap] release_command must name a program, e.g. \
                 [\"docker-machine\", \"rm\", \"-f\", \"{{machine}}\"]"
            );
        }
        if !self
            .release_command
            .iter()
            .any(|a| a.contains(MACHINE_PLACEHOLDER))
        {
            bail!(
                "[reap] release_command must contain {MACHINE_PLACEHOLDER} where the machine \
                 name goes"
            );
        }
        Ok(())
    }

    /// What check-config reports beyond what [`ReapSettings::validate`] refuses.
    pub fn problems(&self, console: bool) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(group) = &self.allowed_usergroup {
            // Slack user group ids start with S; a handle (`arm-admins`) is the usual mistake.
            if !group.starts_with('S') {
                out.push(format!(
                    "[reap] allowed_usergroup `{group}` is not a user group id (S…): Slack would \
                     answer no_such_subteam and its members could not confirm"
                ));
            }
            if console {
                out.push(
                    "[reap] allowed_usergroup is set but SLACK_BOT_TOKEN is not: the group \
                     cannot be checked, so only allowed_users can confirm"
                        .into(),
                );
            }
        }
        out
    }

    pub fn release_timeout(&self) -> Duration {
        Duration::from_secs(self.release_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(default)]
        reap: ReapSettings,
    }

    #[test]
    fn defaults_are_valid() {
        let settings = ReapSettings::default();
        settings.validate().expect("defaults validate");
        assert_eq!(settings.grace_minutes, 15);
        assert_eq!(settings.max_per_run, 10);
        assert_eq!(settings.concurrency, 8);
        assert_eq!(
            settings.release_command,
            ["docker-machine", "rm", "-f", "{machine}"]
        );
        assert_eq!(settings.release_timeout(), Duration::from_secs(120));
        let file: File = toml::from_str("").expect("empty file");
        assert_eq!(file.reap, settings);
    }

    #[test]
    fn reads_the_reap_table() {
        let file: File = toml::from_str(
            r#"
            [reap]
            allowed_users = ["U123", "U456"]
            allowed_usergroup = "S0ARM"
            grace_minutes = 30
            max_per_run = 5
            concurrency = 2
            name_prefix = "runner-qasr7s6-arm-"
            tags = ["arm-builder"]
            allowed_zones = ["fr-par-2"]
            machine_store = "/root/.docker/machine"
            release_command = [
                "ssh", "runner-manager", "sudo", "docker-machine", "rm", "-f", "{machine}",
            ]
            release_timeout_secs = 60
            "#,
        )
        .expect("valid [reap]");
        let reap = file.reap;
        reap.validate().expect("validates");
        assert_eq!(reap.allowed_users, ["U123", "U456"]);
        assert_eq!(reap.allowed_usergroup.as_deref(), Some("S0ARM"));
        assert_eq!(reap.max_per_run, 5);
        assert_eq!(reap.plan_ttl_minutes, 10);
        assert_eq!(reap.release_command[0], "ssh");
        assert_eq!(
            reap.machine_store,
            Some(PathBuf::from("/root/.docker/machine"))
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<File>("[reap]\ngrace_minute = 5\n").expect_err("typo refused");
        assert!(err.to_string().contains("grace_minute"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases: [(ReapSettings, &str); 5] = [
            (
                ReapSettings {
                    concurrency: 0,
                    ..ReapSettings::default()
                },
                "concurrency",
            ),
            (
                ReapSettings {
                    max_per_run: 0,
                    ..ReapSettings::default()
                },
                "max_per_run",
            ),
            (
                ReapSettings {
                    release_command: Vec::new(),
                    ..ReapSettings::default()
                },
                "release_command must name a program",
            ),
            (
                ReapSettings {
                    release_command: vec!["docker-machine".into(), "rm".into(), "-f".into()],
                    ..ReapSettings::default()
                },
                "{machine}",
            ),
            (
                ReapSettings {
                    plan_ttl_minutes: 0,
                    ..ReapSettings::default()
                },
                "plan_ttl_minutes",
            ),
        ];
        for (settings, needle) in cases {
            let err = settings.validate().expect_err("invalid");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
        let zero_attempts = ReapSettings {
            transient_attempts: 0,
            ..ReapSettings::default()
        };
        assert!(zero_attempts.validate().is_err());
        let zero_timeout = ReapSettings {
            release_timeout_secs: 0,
            ..ReapSettings::default()
        };
        assert!(zero_timeout.validate().is_err());
    }
}
