//! Which pipeline events matter: pure, over the payload and the settings.

use super::settings::NotifySettings;
use crate::gitlab::payload::PipelineHead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Succeeded,
}

/// What to do with a pipeline event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not ours to report; the reason is for logs, metrics and `armbot render`.
    Ignore(&'static str),
    /// A finished pipeline on a watched ref: it may open, extend or fix an incident.
    Track { outcome: Outcome, channel: String },
}

/// Which ref kinds are watched; the name is also used in messages.
pub fn ref_kind(hook: &PipelineHead, s: &NotifySettings) -> Option<&'static str> {
    if hook.tag {
        return Some("tag");
    }
    let r = hook.git_ref;
    if hook.default_branch == Some(r) || s.extra_branches.iter().any(|b| b == r) {
        return Some("default branch");
    }
    if s.stable_pattern.is_match(r) {
        return Some("stable branch");
    }
    None
}

pub fn classify(hook: &PipelineHead, s: &NotifySettings) -> Decision {
    if hook.object_kind != "pipeline" {
        return Decision::Ignore("not a pipeline event");
    }
    let project = hook.project_path;
    if !s.projects.is_empty() && !s.projects.iter().any(|p| p == project) {
        return Decision::Ignore("project is not in the allow-list");
    }
    if hook.merge_request || hook.source == Some("merge_request_event") {
        return Decision::Ignore("merge request pipeline");
    }
    if ref_kind(hook, s).is_none() {
        return Decision::Ignore("feature branch (not default, stable or tag)");
    }
    let outcome = match hook.status {
        "failed" => Outcome::Failed,
        "success" => Outcome::Succeeded,
        "canceled" | "canceling" | "skipped" => return Decision::Ignore("canceled or skipped"),
        _ => return Decision::Ignore("pipeline has not finished"),
    };
    // A child's success says nothing about its siblings: only the parent's does.
    if outcome == Outcome::Succeeded && hook.parent_pipeline_id().is_some() {
        return Decision::Ignore("child pipeline succeeded (its parent decides)");
    }
    Decision::Track {
        outcome,
        channel: s.channel_for(project, hook.git_ref).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{gitlab::PipelineHook, notify::settings::Route};
    use regex::Regex;
    use serde::Deserialize;

    fn check(hook: &PipelineHook, s: &NotifySettings) -> Decision {
        classify(&hook.head(), s)
    }

    fn settings() -> NotifySettings {
        NotifySettings {
            channel: "C_DEFAULT".into(),
            extra_branches: vec!["master".into(), "main".into()],
            stable_pattern: Regex::new(crate::notify::settings::DEFAULT_STABLE_PATTERN)
                .expect("regex"),
            projects: vec![],
            arm_runner_tags: vec![],
            routes: vec![Route {
                project: Some("gitlab-org/omnibus-gitlab".into()),
                ref_pattern: Some(Regex::new("-ee$").expect("regex")),
                channel: "C_EE".into(),
            }],
        }
    }

    fn hook(git_ref: &str, status: &str, tag: bool) -> PipelineHook<'static> {
        // A `Value` gives owned strings, so the hook borrows nothing.
        PipelineHook::deserialize(serde_json::json!({
            "object_kind": "pipeline",
            "object_attributes": {"id": 1, "ref": git_ref, "tag": tag, "status": status, "source": "push"},
            "project": {"id": 9, "path_with_namespace": "gitlab-org/omnibus-gitlab", "default_branch": "master"},
            "builds": []
        }))
        .expect("valid hook")
    }

    #[test]
    fn watched_refs() {
        let s = settings();
        let cases = [
            ("master", false, true),
            ("main", false, true),
            ("16-5-stable", false, true),
            ("16-5-stable-ee", false, true),
            ("16.5.0+ee.0", true, true),
            ("my-feature", false, false),
            ("16-5-stable-foo", false, false),
            ("x16-5-stable", false, false),
        ];
        for (r, tag, watched) in cases {
            let d = check(&hook(r, "failed", tag), &s);
            assert_eq!(matches!(d, Decision::Track { .. }), watched, "{r}: {d:?}");
        }
    }

    #[test]
    fn statuses() {
        let s = settings();
        assert!(matches!(
            check(&hook("master", "success", false), &s),
            Decision::Track {
                outcome: Outcome::Succeeded,
                ..
            }
        ));
        for st in ["canceled", "skipped", "running", "pending", "manual"] {
            assert!(
                matches!(check(&hook("master", st, false), &s), Decision::Ignore(_)),
                "{st}"
            );
        }
    }

    #[test]
    fn routes_pick_the_channel() {
        let s = settings();
        let Decision::Track { channel, .. } = check(&hook("16-5-stable-ee", "failed", false), &s)
        else {
            panic!("should track");
        };
        assert_eq!(channel, "C_EE");
        let Decision::Track { channel, .. } = check(&hook("16-5-stable", "failed", false), &s)
        else {
            panic!("should track");
        };
        assert_eq!(channel, "C_DEFAULT");
    }

    #[test]
    fn allow_list_and_merge_requests() {
        let mut s = settings();
        s.projects = vec!["gitlab-org/gitlab".into()];
        assert_eq!(
            check(&hook("master", "failed", false), &s),
            Decision::Ignore("project is not in the allow-list")
        );
        let s = settings();
        let mut h = hook("master", "failed", false);
        h.object_attributes.source = Some("merge_request_event".into());
        assert_eq!(check(&h, &s), Decision::Ignore("merge request pipeline"));
    }
}
