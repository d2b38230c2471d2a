//! Which pipeline events matter: pure, over the payload and the settings.

use super::{render::culprits, settings::NotifySettings};
use crate::gitlab::{
    PipelineHook,
    payload::{Build, PipelineHead},
};

/// Why a `failed` pipeline is a cancellation after all.
pub const CANCELED_WHILE_FAILED: &str = "canceled (reported failed while canceling)";

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
        // GitLab 16 can say `failed` for a pipeline it is canceling, then `canceled`.
        "failed" if matches!(hook.detailed_status, Some("canceled" | "canceling")) => {
            return Decision::Ignore(CANCELED_WHILE_FAILED);
        }
        "failed" => Outcome::Failed,
        "success" => Outcome::Succeeded,
        "canceled" | "canceling" | "skipped" => return Decision::Ignore("canceled or skipped"),
        "created"
        | "waiting_for_resource"
        | "preparing"
        | "waiting_for_callback"
        | "pending"
        | "running"
        | "manual"
        | "scheduled" => {
            return Decision::Ignore("pipeline has not finished");
        }
        _ => return Decision::Ignore("unknown pipeline status"),
    };
    // A child's success says nothing about its siblings: only the parent's does.
    if outcome == Outcome::Succeeded && hook.parent_pipeline_id().is_some() {
        return Decision::Ignore("child pipeline succeeded (its parent decides)");
    }
    if hook.project_key.is_none() {
        return Decision::Ignore("payload names no project (no id, path or URL)");
    }
    Decision::Track {
        outcome,
        channel: s.channel_for(project, hook.git_ref).to_string(),
    }
}

/// The whole decision, once the jobs are read: [`classify`], and a `failed` pipeline none of
/// whose jobs failed but some were canceled is a cancellation (GitLab's cancel race), not a
/// failure.
pub fn decide(hook: &PipelineHook, s: &NotifySettings) -> Decision {
    match classify(&hook.head(), s) {
        Decision::Track {
            outcome: Outcome::Failed,
            ..
        } if canceled_not_failed(&hook.builds) => Decision::Ignore(CANCELED_WHILE_FAILED),
        d => d,
    }
}

/// No job failed (newest attempts, allowed failures aside) and at least one was canceled.
fn canceled_not_failed(builds: &[Build]) -> bool {
    culprits(builds).is_empty()
        && builds
            .iter()
            .any(|b| matches!(b.status.as_ref(), "canceled" | "canceling"))
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
            users: Default::default(),
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
        for st in [
            "canceled", "skipped", "running", "pending", "manual", "failure", "",
        ] {
            assert!(
                matches!(check(&hook("master", st, false), &s), Decision::Ignore(_)),
                "{st}"
            );
        }
    }

    #[test]
    fn a_failed_pipeline_being_canceled_is_a_cancellation() {
        let s = settings();
        let mut h = hook("master", "failed", false);
        h.object_attributes.detailed_status = Some("canceled".into());
        assert_eq!(check(&h, &s), Decision::Ignore(CANCELED_WHILE_FAILED));
        assert_eq!(decide(&h, &s), Decision::Ignore(CANCELED_WHILE_FAILED));

        // Without the label: every job canceled or passed, none failed.
        let jobs = |statuses: &[(&str, &str, bool)]| -> Vec<Build<'static>> {
            statuses
                .iter()
                .enumerate()
                .map(|(i, (name, status, allowed))| {
                    Build::deserialize(serde_json::json!({"id": i, "name": name,
                        "status": status, "allow_failure": allowed}))
                    .expect("build")
                })
                .collect()
        };
        let mut h = hook("master", "failed", false);
        h.builds = jobs(&[("a", "success", false), ("b", "canceled", false)]);
        assert_eq!(decide(&h, &s), Decision::Ignore(CANCELED_WHILE_FAILED));
        // An allowed failure does not make it a failure either.
        h.builds = jobs(&[("a", "failed", true), ("b", "canceled", false)]);
        assert_eq!(decide(&h, &s), Decision::Ignore(CANCELED_WHILE_FAILED));
        // A real failure among canceled jobs is a failure.
        h.builds = jobs(&[("a", "failed", false), ("b", "canceled", false)]);
        assert!(matches!(decide(&h, &s), Decision::Track { .. }));
        // No failed and no canceled job: a configuration error or a downstream failure.
        h.builds = jobs(&[("a", "success", false)]);
        assert!(matches!(decide(&h, &s), Decision::Track { .. }));
        h.builds.clear();
        assert!(matches!(decide(&h, &s), Decision::Track { .. }));
    }

    #[test]
    fn projects_without_an_id_are_known_by_path_or_url() {
        let s = settings();
        let old = |project: serde_json::Value| {
            PipelineHook::deserialize(serde_json::json!({
                "object_kind": "pipeline",
                "object_attributes": {"id": 1, "ref": "master", "status": "failed"},
                "project": project,
            }))
            .expect("valid hook")
        };
        let by_path =
            old(serde_json::json!({"path_with_namespace": "g/p", "web_url": "https://gl/g/p"}));
        let by_url = old(serde_json::json!({"web_url": "https://gl/g/p/"}));
        let (a, b) = (by_path.head(), by_url.head());
        assert_eq!(a.project_path, "g/p");
        assert_eq!(b.project_path, "g/p");
        assert_eq!(a.project_key, b.project_key);
        assert!(a.project_key.is_some_and(|k| k > 1 << 62 && k < 1 << 63));
        assert!(matches!(check(&by_url, &s), Decision::Track { .. }));
        let nameless = old(serde_json::json!({"name": "p"}));
        assert_eq!(
            check(&nameless, &s),
            Decision::Ignore("payload names no project (no id, path or URL)")
        );
        // Ignored events never need the project.
        let mut running = old(serde_json::json!(null));
        running.object_attributes.status = "running".into();
        assert_eq!(
            check(&running, &s),
            Decision::Ignore("pipeline has not finished")
        );
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
