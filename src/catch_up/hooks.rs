//! Which of a project's webhooks is the bot's, and whether GitLab lets it deliver: pure,
//! over the `GET /projects/:id/hooks` answer.
//!
//! GitLab (17.11+, `WebHooks::AutoDisabling`): after more than 3 failures in a row a hook is
//! `temporarily_disabled` until `disabled_until` (1 minute, doubling up to a day); after more
//! than 39 it is `disabled` until a successful *Test* re-enables it. Events for a disabled
//! hook are dropped, not queued. Older GitLab (15.7–17.x) disabled on 4xx at once; before 15.1
//! the API shows neither field, and a hook reads as working.

use chrono::{DateTime, Utc};
use reqwest::Url;

use crate::gitlab::{api::Hook, payload::parse_time};

/// The path of the bot's webhook endpoint under its public URL.
pub const WEBHOOK_PATH: &str = "/gitlab/webhook";

/// What the hook check found for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookHealth {
    /// A hook to the bot with pipeline events that GitLab delivers to.
    Ok,
    /// GitLab does not deliver to the bot's hook: `until` when it will try again
    /// (`temporarily`), or until someone tests it successfully.
    Disabled {
        temporarily: bool,
        until: Option<DateTime<Utc>>,
    },
    /// No project hook points at the bot (events may come from a group hook, which this
    /// check does not read).
    NoHook,
    /// The bot's hook does not send pipeline events.
    NoPipelineEvents,
    /// The token's user may not read the project's hooks (they need the Maintainer role).
    Forbidden,
}

impl HookHealth {
    /// As stored (`gitlab_projects.hook_state`).
    pub fn state(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Disabled {
                temporarily: true, ..
            } => "temporarily_disabled",
            Self::Disabled { .. } => "disabled",
            Self::NoHook => "no_hook",
            Self::NoPipelineEvents => "no_pipeline_events",
            Self::Forbidden => "forbidden",
        }
    }

    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Disabled { until, .. } => *until,
            _ => None,
        }
    }
}

/// Whether `hook_url` is the bot's webhook: same host, and the path of the webhook endpoint
/// under the public URL's path (scheme and port may differ behind a proxy).
pub fn is_ours(hook_url: &str, public: &Url) -> bool {
    let Ok(hook) = Url::parse(hook_url.trim()) else {
        return false;
    };
    let same_host = match (hook.host_str(), public.host_str()) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    let expected = format!("{}{WEBHOOK_PATH}", public.path().trim_end_matches('/'));
    same_host && hook.path().trim_end_matches('/') == expected
}

/// One hook's state at `now`.
fn state_of(hook: &Hook, now: DateTime<Utc>) -> HookHealth {
    let until = hook
        .disabled_until
        .as_deref()
        .and_then(parse_time)
        .filter(|t| *t > now);
    match hook.alert_status.as_deref() {
        Some("disabled") => HookHealth::Disabled {
            temporarily: false,
            until: None,
        },
        Some("temporarily_disabled") => HookHealth::Disabled {
            temporarily: true,
            until,
        },
        _ if until.is_some() => HookHealth::Disabled {
            temporarily: true,
            until,
        },
        _ => HookHealth::Ok,
    }
}

/// The health of the bot's hook among `hooks`. With several hooks to the bot, events arrive
/// while any of them works.
pub fn health(hooks: &[Hook], public: &Url, now: DateTime<Utc>) -> HookHealth {
    let ours: Vec<&Hook> = hooks.iter().filter(|h| is_ours(&h.url, public)).collect();
    if ours.is_empty() {
        return HookHealth::NoHook;
    }
    let sending: Vec<&Hook> = ours
        .into_iter()
        .filter(|h| h.pipeline_events != Some(false))
        .collect();
    let Some(first) = sending.first() else {
        return HookHealth::NoPipelineEvents;
    };
    if sending.iter().any(|h| state_of(h, now) == HookHealth::Ok) {
        return HookHealth::Ok;
    }
    state_of(first, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOOKS: &str = include_str!("../../tests/data/gitlab/api/hooks.json");

    fn public() -> Url {
        Url::parse("https://armbot.example.com").expect("url")
    }

    #[test]
    fn the_bots_hook_is_found_by_host_and_path() {
        let p = public();
        assert!(is_ours("https://armbot.example.com/gitlab/webhook", &p));
        assert!(is_ours(
            "http://ARMBOT.example.com:8443/gitlab/webhook/",
            &p
        ));
        assert!(!is_ours("https://armbot.example.com/other", &p));
        assert!(!is_ours("https://evil.example.com/gitlab/webhook", &p));
        assert!(!is_ours("not a url", &p));
        let prefixed = Url::parse("https://gw.example.com/armbot/").expect("url");
        assert!(is_ours(
            "https://gw.example.com/armbot/gitlab/webhook",
            &prefixed
        ));
        assert!(!is_ours("https://gw.example.com/gitlab/webhook", &prefixed));
    }

    #[test]
    fn the_documented_hooks() {
        let hooks: Vec<Hook> = serde_json::from_str(HOOKS).expect("hooks");
        let before = parse_time("2016-08-11T12:00:00Z").expect("time");
        let until = parse_time("2016-08-11T12:02:35.169Z");
        assert_eq!(
            health(&hooks, &public(), before),
            HookHealth::Disabled {
                temporarily: true,
                until
            }
        );
        let other = Url::parse("http://example.com").expect("url");
        assert_eq!(health(&hooks, &other, before), HookHealth::NoHook);
    }

    #[test]
    fn states() {
        let now = parse_time("2026-01-01T00:00:00Z").expect("time");
        let hook = |status: Option<&str>, until: Option<&str>, pipelines: Option<bool>| Hook {
            id: 1,
            url: "https://armbot.example.com/gitlab/webhook".into(),
            pipeline_events: pipelines,
            alert_status: status.map(str::to_string),
            disabled_until: until.map(str::to_string),
        };
        let p = public();
        assert_eq!(health(&[hook(None, None, None)], &p, now), HookHealth::Ok);
        assert_eq!(
            health(
                &[hook(
                    Some("executable"),
                    Some("2025-12-31T23:00:00Z"),
                    Some(true)
                )],
                &p,
                now
            ),
            HookHealth::Ok
        );
        assert_eq!(
            health(&[hook(Some("disabled"), None, Some(true))], &p, now),
            HookHealth::Disabled {
                temporarily: false,
                until: None
            }
        );
        // No alert_status (an older GitLab) but a future disabled_until.
        assert_eq!(
            health(&[hook(None, Some("2026-01-01T01:00:00Z"), None)], &p, now).state(),
            "temporarily_disabled"
        );
        assert_eq!(
            health(&[hook(Some("executable"), None, Some(false))], &p, now),
            HookHealth::NoPipelineEvents
        );
        // Two hooks to the bot: one working is enough.
        let both = [
            hook(Some("disabled"), None, Some(true)),
            hook(Some("executable"), None, Some(true)),
        ];
        assert_eq!(health(&both, &p, now), HookHealth::Ok);
    }
}
