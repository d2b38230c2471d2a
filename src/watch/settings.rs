//! `[watch]` in the settings file: whether the bot watches the fleet by itself, how often,
//! where it speaks, and whether it may reap on its own.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

pub const DEFAULT_INTERVAL_SECS: u64 = 300;
/// Scaleway is listed once per zone each time: faster than this would only burn API calls.
pub const MIN_INTERVAL_SECS: u64 = 2;
pub const DEFAULT_AUTO_REAP_AFTER_MINUTES: u64 = 60;

/// `[watch]` as written. Every key is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchFile {
    /// Default: on when Scaleway and a channel are configured.
    pub enabled: Option<bool>,
    pub interval_secs: Option<u64>,
    /// Default: the notify channel.
    pub channel: Option<String>,
    pub auto_reap: Option<bool>,
    pub auto_reap_after_minutes: Option<u64>,
}

/// `[watch]`, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSettings {
    /// Whether the watch runs (on the replica that leads).
    pub enabled: bool,
    /// Why it does not run, when it does not.
    pub off: Option<String>,
    /// `enabled = true` was written: a watch that cannot run is then a configuration error.
    pub asked: bool,
    pub interval: Duration,
    /// Empty when no channel is known (the watch is then off).
    pub channel: String,
    pub auto_reap: bool,
    pub auto_reap_after_minutes: u64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            enabled: false,
            off: Some("not configured".to_owned()),
            asked: false,
            interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
            channel: String::new(),
            auto_reap: false,
            auto_reap_after_minutes: DEFAULT_AUTO_REAP_AFTER_MINUTES,
        }
    }
}

impl WatchSettings {
    /// `notify_channel`: the channel failure notices go to, if one is set (console mode's
    /// placeholder does not count); `fleet_missing`: why the fleet commands cannot run, if
    /// they cannot (Scaleway not configured).
    pub fn load(
        file: WatchFile,
        notify_channel: Option<&str>,
        fleet_missing: Option<String>,
    ) -> anyhow::Result<Self> {
        let interval_secs = file.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS);
        if interval_secs < MIN_INTERVAL_SECS {
            bail!("[watch] interval_secs must be at least {MIN_INTERVAL_SECS}");
        }
        let auto_reap_after_minutes = file
            .auto_reap_after_minutes
            .unwrap_or(DEFAULT_AUTO_REAP_AFTER_MINUTES);
        if auto_reap_after_minutes == 0 {
            bail!("[watch] auto_reap_after_minutes must be at least 1");
        }
        let channel = file
            .channel
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .or(notify_channel.map(str::trim).filter(|c| !c.is_empty()))
            .unwrap_or_default()
            .to_owned();
        let off = if file.enabled == Some(false) {
            Some("`enabled = false` under `[watch]`".to_owned())
        } else if let Some(missing) = fleet_missing {
            Some(missing)
        } else if channel.is_empty() {
            Some(
                "no channel: set `channel` under `[watch]`, or the notify channel \
                 (ARMBOT_NOTIFY_CHANNEL)"
                    .to_owned(),
            )
        } else {
            None
        };
        Ok(WatchSettings {
            enabled: off.is_none(),
            off,
            asked: file.enabled == Some(true),
            interval: Duration::from_secs(interval_secs),
            channel,
            auto_reap: file.auto_reap.unwrap_or(false),
            auto_reap_after_minutes,
        })
    }

    /// What check-config reports: a watch asked for that cannot run, a channel Slack cannot
    /// update messages in, an auto-reap that could never act.
    pub fn problems(&self, console: bool, reap_has_fleet_filter: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.asked
            && let Some(why) = &self.off
        {
            out.push(format!(
                "[watch] enabled = true, but the watch cannot run: {why}"
            ));
        }
        if self.enabled && self.channel.starts_with('#') && !console {
            out.push(format!(
                "[watch] channel `{}` is a name: use the channel id (C…) so the incident \
                 message can be updated and threaded",
                self.channel
            ));
        }
        if self.enabled && self.auto_reap && !reap_has_fleet_filter {
            out.push(
                "[watch] auto_reap is on, but no fleet filter is set (`name_prefix` or `tags` \
                 under `[fleet]` or `[reap]`, or `[reap] machine_store`), so it would never \
                 reap anything"
                    .to_owned(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> WatchFile {
        toml::from_str(toml_text).expect("valid [watch]")
    }

    #[test]
    fn on_by_default_when_scaleway_and_a_channel_are_set() {
        let s = WatchSettings::load(WatchFile::default(), Some("C0NOTIFY"), None).expect("ok");
        assert!(s.enabled);
        assert_eq!(s.channel, "C0NOTIFY");
        assert_eq!(s.interval, Duration::from_secs(300));
        assert!(!s.auto_reap);
        assert_eq!(s.auto_reap_after_minutes, 60);

        let no_fleet = WatchSettings::load(
            WatchFile::default(),
            Some("C0NOTIFY"),
            Some("no key".into()),
        )
        .expect("ok");
        assert!(!no_fleet.enabled);
        assert_eq!(no_fleet.off.as_deref(), Some("no key"));
        assert!(no_fleet.problems(false, true).is_empty(), "not asked for");

        let no_channel = WatchSettings::load(WatchFile::default(), None, None).expect("ok");
        assert!(!no_channel.enabled);
    }

    #[test]
    fn keys_are_read_and_checked() {
        let s = WatchSettings::load(
            file(
                "enabled = true\ninterval_secs = 2\nchannel = \" C0WATCH \"\nauto_reap = true\n\
                 auto_reap_after_minutes = 90",
            ),
            Some("C0NOTIFY"),
            None,
        )
        .expect("ok");
        assert!(s.enabled && s.asked && s.auto_reap);
        assert_eq!(s.channel, "C0WATCH");
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.auto_reap_after_minutes, 90);
        assert_eq!(
            s.problems(false, false),
            vec![
                "[watch] auto_reap is on, but no fleet filter is set (`name_prefix` or `tags` \
                 under `[fleet]` or `[reap]`, or `[reap] machine_store`), so it would never \
                 reap anything"
            ]
        );

        let off = WatchSettings::load(file("enabled = false"), Some("C0NOTIFY"), None).expect("ok");
        assert!(!off.enabled);

        for bad in ["interval_secs = 1", "auto_reap_after_minutes = 0"] {
            assert!(
                WatchSettings::load(file(bad), Some("C"), None).is_err(),
                "{bad}"
            );
        }
        assert!(toml::from_str::<WatchFile>("interval = 5").is_err());

        let asked =
            WatchSettings::load(file("enabled = true"), None, Some("no key".into())).expect("ok");
        assert_eq!(
            asked.problems(false, true),
            vec!["[watch] enabled = true, but the watch cannot run: no key"]
        );
        let named = WatchSettings::load(file("channel = \"#arm\""), None, None).expect("ok");
        assert_eq!(named.problems(false, true).len(), 1);
        assert!(named.problems(true, true).is_empty());
    }
}
