//! "Who broke it": the first reply in a new incident's thread mentions the pipeline's user
//! (`<@U…>`) when their Slack account is known, from `[notify.users]` or from Slack by their
//! public email. The root message never pings anyone, and a user whose account is not known
//! is shown by name only (in the root's small print): never guessed.

use super::{
    render::{MAX_REF, pipeline_url},
    settings::{NotifySettings, is_slack_user_id},
};
use crate::{
    gitlab::PipelineHook,
    slack::{
        blocks::{Message, section},
        mrkdwn::{code, link, name, truncate},
    },
};

/// How the pipeline's user may be found in Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    /// `[notify.users]` maps their GitLab username to this Slack user id.
    Mapped(&'a str),
    /// Not mapped, but GitLab sent their public email: Slack may know it.
    Email(&'a str),
    /// Not mapped and no public email: they are shown by name only.
    NameOnly,
    /// The payload names no user.
    Nobody,
}

/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// Who the pipeline's user is, as far as the settings and the payload tell.
pub fn who<'a>(hook: &'a PipelineHook, s: &'a NotifySettings) -> Who<'a> {
    let Some(u) = &hook.user else {
        return Who::Nobody;
    };
    let username = u.username.trim();
    if let Some(id) = s.users.get(&username.to_lowercase()) {
        return Who::Mapped(id);
    }
    let email = u.email.as_deref().map(str::trim).filter(|e| {
        e.len() <= MAX_EMAIL
            && e.split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    match email {
        Some(e) => Who::Email(e),
        None if username.is_empty() && u.name.trim().is_empty() => Who::Nobody,
        None => Who::NameOnly,
    }
}

/// The first reply in a new incident's thread, mentioning `slack_user`: `None` when no Slack
/// account is known (the root's small print names the user then, and nobody is pinged).
pub fn first_reply(hook: &PipelineHook, slack_user: Option<&str>) -> Option<Message> {
    let id = slack_user.filter(|id| is_slack_user_id(id))?;
    let a = &hook.object_attributes;
    let kind = if a.tag { "tag" } else { "branch" };
    let pipeline = link(&pipeline_url(hook), &format!("#{}", a.id));
    // The pipeline's user started it: pushed, clicked, called the API, or owns the schedule.
    let yours = if a.source.as_deref() == Some("schedule") {
        "your scheduled pipeline"
    } else {
        "your pipeline"
    };
    Some(Message::new(
        format!(
            "<@{id}> {yours} #{} broke {kind} {}",
            a.id,
            name(&a.git_ref, MAX_REF)
        ),
        vec![section(&format!(
            ":wave: <@{id}> {yours} {pipeline} broke {kind} {}. Could you have a look?",
            code(&truncate(&a.git_ref, MAX_REF))
        ))],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn hook(user: serde_json::Value) -> PipelineHook<'static> {
        PipelineHook::deserialize(json!({
            "object_kind": "pipeline",
            "object_attributes": {"id": 31, "ref": "master", "status": "failed",
                                  "url": "https://gl.example/g/p/-/pipelines/31"},
            "project": {"id": 1, "path_with_namespace": "g/p", "web_url": "https://gl.example/g/p"},
            "user": user,
        }))
        .expect("hook")
    }

    fn settings() -> NotifySettings {
        let file: super::super::settings::NotifyFile =
            toml::from_str("channel = \"C1\"\n[users]\nJDoe = \"U0JDOE\"\n").expect("toml");
        NotifySettings::load(file, &|_| None, false).expect("settings")
    }

    #[test]
    fn who_is_found_by_mapping_then_email() {
        let s = settings();
        let mapped = hook(json!({"name": "Jane", "username": "jdoe", "email": "j@x.example"}));
        assert_eq!(who(&mapped, &s), Who::Mapped("U0JDOE"));
        let by_email = hook(json!({"name": "Ann", "username": "ann", "email": " a@x.example "}));
        assert_eq!(who(&by_email, &s), Who::Email("a@x.example"));
        for email in [
            json!("[REDACTED]"),
            json!(""),
            json!(null),
            json!("a b@x.example"),
            json!(5),
        ] {
            let h = hook(json!({"name": "Ann", "username": "ann", "email": email}));
            assert_eq!(who(&h, &s), Who::NameOnly, "{email}");
        }
        assert_eq!(who(&hook(json!(null)), &s), Who::Nobody);
        assert_eq!(who(&hook(json!({"name": " "})), &s), Who::Nobody);
    }

    #[test]
    fn the_reply_mentions_a_known_user_and_nobody_else() {
        let h = hook(json!({"name": "Jane <!here>", "username": "jdoe"}));
        let m = first_reply(&h, Some("U0JDOE")).expect("reply");
        let text = serde_json::to_string(&m).expect("json");
        assert!(
            text.contains(":wave: <@U0JDOE> your pipeline <https://gl.example/g/p/-/pipelines/31|#31> broke branch `master`. Could you have a look?"),
            "{text}"
        );
        assert!(!text.contains("here"), "{text}");
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        assert!(first_reply(&h, None).is_none());
        let mut scheduled = h.clone();
        scheduled.object_attributes.source = Some("schedule".into());
        let m = first_reply(&scheduled, Some("U0JDOE")).expect("reply");
        assert!(
            m.text
                .starts_with("<@U0JDOE> your scheduled pipeline #31 broke branch master")
        );
        // An id that is not one is never written into a mention.
        assert!(first_reply(&h, Some("U1> <!channel")).is_none());
    }
}
