//! A Pipeline Hook document built from the API's answers about one pipeline, so a pipeline
//! read from the API goes through exactly what a webhook goes through (parse, policy, render,
//! de-duplication, threads).
//!
//! Field by field (webhook field ← API field; `doc/user/project/integrations/webhook_events.md`,
//! `lib/gitlab/data_builder/pipeline.rb`):
//!
//! - `object_attributes`: `id`, `iid`, `name`, `ref`, `tag`, `sha`, `before_sha`, `source`,
//!   `status`, `url` ← `web_url`, `duration`, `queued_duration`, `detailed_status` ← the
//!   status object's `label` (what the webhook sends), `created_at` and `finished_at` written as
//!   webhooks write them (`2016-08-12 15:23:28 UTC`, whole seconds: the de-duplication key of a
//!   webhook and of the API's `…:28.175Z` agree), `stages` in the jobs' order;
//! - `merge_request`: null (merge request pipelines are known by `source`);
//! - `user` ← the pipeline's user: `id`, `name`, `username`, `avatar_url`; the API gives no
//!   email, so catch-up can mention only users mapped in `[notify.users]`;
//! - `project` ← `GET /projects/:id`: `id`, `name`, `web_url`, `namespace` (its name),
//!   `path_with_namespace`, `default_branch`;
//! - `commit` ← a job's `commit`: `id`, `message`, `title`, `timestamp`, `author`, and `url`
//!   as GitLab builds it (`<project>/-/commit/<sha>`); absent when no job names it;
//! - `builds` ← the jobs (latest attempts, as in webhooks): `id`, `stage`, `name`, `status`,
//!   times, `failure_reason`, `allow_failure`, `user`, `runner` (`id`, `description`,
//!   `runner_type`, `active`, `is_shared`) with `tags` ← the job's `tag_list` (the API shows
//!   no runner tags; a job's tags are a subset of its runner's, which is what "ran on an ARM
//!   builder" looks at).
//!
//! Not sent: `variables` (never read by the bot), `source_pipeline` (listings leave child
//! pipelines out), `environment`, `artifacts_file`.

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::{
    api::{Commit, Job, Pipeline, Project, User},
    payload::parse_time,
};

/// A time as webhooks write it; unreadable times are left out.
pub fn hook_time(raw: Option<&str>) -> Value {
    match raw.and_then(parse_time) {
        Some(t) => json!(t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        None => Value::Null,
    }
}

/// A time as the API writes it (tests and fakes build API answers with it).
pub fn api_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn user(u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "username": u.username,
        "avatar_url": u.avatar_url,
    })
}

fn commit(c: &Commit, project: &Project) -> Value {
    json!({
        "id": c.id,
        "message": c.message,
        "title": c.title,
        "timestamp": c.created_at,
        "url": format!("{}/-/commit/{}", project.web_url.trim_end_matches('/'), c.id),
        "author": {"name": c.author_name, "email": c.author_email},
    })
}

fn build(j: &Job) -> Value {
    let runner = j.runner.as_ref().map(|r| {
        json!({
            "id": r.id,
            "description": r.description,
            "runner_type": r.runner_type,
            "active": r.active,
            "is_shared": r.is_shared,
            "tags": j.tag_list.clone().unwrap_or_default(),
        })
    });
    json!({
        "id": j.id,
        "stage": j.stage,
        "name": j.name,
        "status": j.status,
        "created_at": hook_time(j.created_at.as_deref()),
        "started_at": hook_time(j.started_at.as_deref()),
        "finished_at": hook_time(j.finished_at.as_deref()),
        "duration": j.duration,
        "queued_duration": j.queued_duration,
        "failure_reason": j.failure_reason,
        "allow_failure": j.allow_failure.unwrap_or(false),
        "user": j.user.as_ref().map(user),
        "runner": runner,
    })
}

/// The Pipeline Hook GitLab would have sent for `pipeline` of `project`, as far as the API
/// tells. `jobs` are the pipeline's jobs (empty when the caller did not need them); `commit`
/// the pipeline's commit when known otherwise (else the first job's is used).
pub fn pipeline_hook(
    project: &Project,
    pipeline: &Pipeline,
    jobs: &[Job],
    commit_of: Option<&Commit>,
) -> Value {
    // Jobs come newest first; the webhook lists them, and their stages, in pipeline order.
    let mut ordered: Vec<&Job> = jobs.iter().collect();
    ordered.sort_by_key(|j| j.id);
    let mut stages: Vec<&str> = Vec::new();
    for j in &ordered {
        if let Some(s) = j.stage.as_deref()
            && !stages.contains(&s)
        {
            stages.push(s);
        }
    }
    let commit_of = commit_of.or_else(|| ordered.iter().find_map(|j| j.commit.as_ref()));
    let detailed = pipeline
        .detailed_status
        .as_ref()
        .and_then(|d| d.label.clone().or_else(|| d.text.clone()));
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "name": pipeline.name,
            "ref": pipeline.git_ref,
            "tag": pipeline.tag,
            "sha": pipeline.sha,
            "before_sha": pipeline.before_sha,
            "source": pipeline.source,
            "status": pipeline.status,
            "detailed_status": detailed,
            "stages": stages,
            "created_at": hook_time(pipeline.created_at.as_deref()),
            "finished_at": hook_time(pipeline.finished_at.as_deref()),
            "duration": pipeline.duration,
            "queued_duration": pipeline.queued_duration,
            "url": pipeline.web_url,
        },
        "merge_request": null,
        "user": pipeline.user.as_ref().map(user),
        "project": {
            "id": project.id,
            "name": project.name,
            "web_url": project.web_url,
            "namespace": project.namespace.as_ref().and_then(|n| n.name.clone()),
            "path_with_namespace": project.path_with_namespace,
            "default_branch": project.default_branch,
        },
        "commit": commit_of.map(|c| commit(c, project)),
        "builds": ordered.iter().map(|j| build(j)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::{PipelineHook, payload::parse_pipeline};

    const PIPELINE: &str = include_str!("../../tests/data/gitlab/api/pipeline.json");
    const JOBS: &str = include_str!("../../tests/data/gitlab/api/pipeline-jobs.json");
    const PROJECT: &str = include_str!("../../tests/data/gitlab/api/project.json");

    #[test]
    fn the_documented_answers_make_a_hook_the_webhook_parser_reads() {
        let project: Project = serde_json::from_str(PROJECT).expect("project");
        let pipeline: Pipeline = serde_json::from_str(PIPELINE).expect("pipeline");
        let jobs: Vec<Job> = serde_json::from_str(JOBS).expect("jobs");
        let doc = pipeline_hook(&project, &pipeline, &jobs, None).to_string();
        let hook: PipelineHook = parse_pipeline(doc.as_bytes(), |_| true)
            .expect("a pipeline hook")
            .hook;
        let a = &hook.object_attributes;
        assert_eq!(a.id, pipeline.id);
        assert_eq!(a.git_ref, pipeline.git_ref);
        assert_eq!(a.status, pipeline.status);
        assert_eq!(
            a.finished_at.map(|t| t.timestamp()),
            pipeline
                .finished_at
                .as_deref()
                .and_then(parse_time)
                .map(|t| t.timestamp())
        );
        assert_eq!(hook.project.key(), Some(project.id));
        assert_eq!(hook.project.path(), project.path_with_namespace);
        assert_eq!(hook.builds.len(), jobs.len());
        // Pipeline order: the API lists the newest job first.
        assert!(hook.builds.windows(2).all(|w| w[0].id < w[1].id));
        let commit = hook.commit.expect("commit from the jobs");
        assert!(commit.url.is_some_and(|u| u.ends_with(&commit.id)));
    }

    #[test]
    fn times_as_webhooks_write_them() {
        assert_eq!(
            hook_time(Some("2022-09-21T01:05:50.175Z")),
            json!("2022-09-21 01:05:50 UTC")
        );
        assert_eq!(hook_time(Some("soon")), Value::Null);
        assert_eq!(hook_time(None), Value::Null);
    }
}
