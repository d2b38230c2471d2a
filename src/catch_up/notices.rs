//! What catch-up and the hook check say in Slack, pure: the warning when GitLab disables the
//! bot's hook or refuses its token, the recovery replies, and the `/arm status` section.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::hooks::HookHealth;
use crate::{
    gitlab::api::GitlabError,
    slack::{
        blocks::{MAX_TEXT_CHARS, Message, context, date, duration, fit_lines, section},
        mrkdwn::{code, link, name},
    },
    store::catch_up::WatchedProject,
};

/// How much of a project path a message shows.
const MAX_PATH: usize = 120;

/// "every minute", "every 5 min": an interval in the one duration format.
fn minutes(d: Duration) -> String {
    let m = d.as_secs().div_ceil(60).max(1);
    if m == 1 {
        "minute".into()
    } else {
        duration(i64::try_from(m * 60).unwrap_or(i64::MAX))
    }
}

/// The project, linked to its page.
fn project_link(path: &str, web_url: &str) -> String {
    link(web_url, &crate::slack::mrkdwn::truncate(path, MAX_PATH))
}

/// The warning posted once when GitLab stops delivering to the bot's hook of a project.
pub fn hook_disabled(
    path: &str,
    web_url: &str,
    health: &HookHealth,
    interval: Duration,
) -> Message {
    let (until, until_text, tail) = match health {
        HookHealth::Disabled {
            temporarily: true,
            until: Some(t),
        } => (
            format!("until {}", date(*t)),
            format!("until {}", t.format("%Y-%m-%d %H:%M UTC")),
            " More failures turn it off for good.",
        ),
        HookHealth::Disabled {
            temporarily: true,
            until: None,
        } => (
            "for a while".to_string(),
            "for a while".to_string(),
            " More failures turn it off for good.",
        ),
        _ => (
            "until someone re-enables it".to_string(),
            "until someone re-enables it".to_string(),
            "",
        ),
    };
    let hooks_page = format!("{}/-/hooks", web_url.trim_end_matches('/'));
    let head = format!(
        ":warning: *GitLab has disabled the webhook* of {} {until}: its deliveries to the bot \
         failed, and events are dropped while it is off.{tail}",
        project_link(path, web_url)
    );
    let how = format!(
        "*To turn it back on now:* {} → the bot's hook → *Test* → *Pipeline events*. \
         Meanwhile the bot reads missed pipelines from the GitLab API every {}, so failures \
         still reach this channel, a little late.",
        link(&hooks_page, "Settings → Webhooks"),
        minutes(interval)
    );
    Message::new(
        format!(
            "GitLab has disabled the webhook of {} {until_text}: Settings → Webhooks → Test → \
             Pipeline events turns it back on",
            name(path, MAX_PATH)
        ),
        vec![section(&head), section(&how)],
    )
}

/// The reply in the warning's thread once the hook works again.
pub fn hook_recovered(path: &str, web_url: &str) -> Message {
    Message::new(
        format!("The webhook of {} works again", name(path, MAX_PATH)),
        vec![section(&format!(
            ":white_check_mark: The webhook of {} works again: GitLab delivers to the bot.",
            project_link(path, web_url)
        ))],
    )
}

/// The warning posted once when GitLab refuses the bot's API token.
pub fn token_refused(error: &GitlabError, interval: Duration) -> Message {
    let why = match error {
        GitlabError::Forbidden {
            insufficient_scope: true,
        } => "HTTP 403: the token lacks the `read_api` scope",
        _ => "HTTP 401: the token is wrong, expired or revoked",
    };
    let head = format!(
        ":warning: *GitLab refused the bot's API token* ({why}). Pipelines whose webhooks \
         do not arrive are not caught up, and webhooks GitLab disables go unnoticed."
    );
    let how = format!(
        "Ask an admin to set {} to a token with the `read_api` scope (a project or group \
         access token with the Reporter role; Maintainer to also check the webhook). The bot \
         tries again every {}.",
        code("GITLAB_API_TOKEN"),
        minutes(interval)
    );
    Message::new(
        format!(
            "GitLab refused the bot's API token ({why}): catch-up of missed pipelines is stopped"
        ),
        vec![section(&head), section(&how)],
    )
}

/// The reply in the token warning's thread once GitLab accepts the token again.
pub fn token_accepted() -> Message {
    Message::new(
        "GitLab accepts the bot's API token again: catch-up has resumed",
        vec![section(
            ":white_check_mark: GitLab accepts the bot's API token again: missed pipelines are \
             caught up once more.",
        )],
    )
}

/// One project's line in `/arm status`.
fn project_line(p: &WatchedProject, hook_check: bool, now: DateTime<Utc>) -> String {
    let gone = p.problem.as_deref() == Some("not_found");
    let hook = match (hook_check && !gone, p.hook.state.as_deref()) {
        (false, _) => String::new(),
        (true, Some("ok")) => ":white_check_mark: webhook working".into(),
        (true, Some("temporarily_disabled")) => match p
            .hook
            .disabled_until
            .and_then(DateTime::from_timestamp_millis)
            .filter(|t| *t > now)
        {
            Some(t) => format!(":x: webhook disabled by GitLab until {}", date(t)),
            None => ":x: webhook disabled by GitLab for a while".into(),
        },
        (true, Some("disabled")) => {
            ":x: webhook disabled by GitLab (Settings → Webhooks → Test re-enables it)".into()
        }
        (true, Some("no_hook")) => {
            ":grey_question: no project webhook points at the bot (a group webhook is not checked)"
                .into()
        }
        (true, Some("no_pipeline_events")) => {
            ":warning: the bot's webhook does not send *Pipeline events*".into()
        }
        (true, Some("forbidden")) => {
            ":grey_question: webhook not checked: the token's user needs the Maintainer role".into()
        }
        (true, _) => "webhook not checked yet".into(),
    };
    let caught_up = match (p.problem.as_deref(), p.caught_up_to) {
        (Some("not_found"), _) => "GitLab cannot find it (left out of catch-up)".to_string(),
        (Some("forbidden"), _) => "the token may not read its pipelines".to_string(),
        (_, Some(ms)) => match DateTime::from_timestamp_millis(ms) {
            Some(t) => format!("caught up to {}", date(t)),
            None => "caught up".into(),
        },
        (_, None) => "catch-up not started yet".into(),
    };
    let parts: Vec<String> = [hook, caught_up]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    format!(
        "• {}: {}",
        project_link(&p.path, &p.web_url),
        parts.join(" · ")
    )
}

/// The `/arm status` section about GitLab: each watched project's webhook and catch-up, from
/// the store (no GitLab call). `token_refused` when the token warning is open.
pub fn status_blocks(
    projects: &[WatchedProject],
    hook_check: bool,
    token_refused: bool,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let lines: Vec<String> = projects
        .iter()
        .map(|p| project_line(p, hook_check, now))
        .collect();
    let head = if projects.is_empty() {
        "*GitLab:* no project watched yet (the first pipeline event of a project adds it)"
            .to_string()
    } else {
        "*GitLab webhooks and catch-up*".to_string()
    };
    let mut blocks = vec![section(&fit_lines(
        &head,
        &lines,
        0,
        |n| format!("…and {n} more"),
        None,
        MAX_TEXT_CHARS,
    ))];
    if token_refused {
        blocks.push(context(
            ":warning: GitLab refuses the bot's API token: catch-up and webhook checks are \
             stopped (`GITLAB_API_TOKEN`, scope `read_api`).",
        ));
    }
    blocks
}

/// How many watched projects' webhooks are disabled, for the summary line.
pub fn disabled_count(projects: &[WatchedProject]) -> usize {
    projects
        .iter()
        .filter(|p| {
            matches!(
                p.hook.state.as_deref(),
                Some("disabled" | "temporarily_disabled")
            )
        })
        .count()
}
