//! Block Kit messages for failure notices: pure functions of the payload.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::NotifySettings;
use crate::{
    gitlab::{PipelineHook, payload::Build},
    slack::{
        blocks::{Message, context, duration, fields as field_section, section},
        mrkdwn::{escape, link, truncate},
    },
};

const MAX_JOBS: usize = 10;
const SECTION_LIMIT: usize = 2900;

/// Failure reasons that point at the runner or the machine, not the code.
const INFRA_REASONS: &[&str] = &[
    "runner_system_failure",
    "stuck_or_timeout_failure",
    "job_execution_timeout",
    "job_execution_server_timeout",
    "scheduler_failure",
    "no_matching_runner",
    "runner_unsupported",
    "api_failure",
];

fn is_infra(reason: &str) -> bool {
    INFRA_REASONS.contains(&reason)
        || reason.starts_with("stuck_pending")
        || reason.starts_with("no_updates")
}

pub fn reason_in_words(reason: &str) -> String {
    match reason {
        "script_failure" => "the script failed".into(),
        "runner_system_failure" => "runner system failure".into(),
        "stuck_or_timeout_failure" => "stuck or timed out".into(),
        "job_execution_timeout" => "the job timed out".into(),
        "job_execution_server_timeout" => "the job timed out on the server".into(),
        "scheduler_failure" => "the scheduler failed to assign it to a runner".into(),
        "no_matching_runner" => "no runner matched the job's tags".into(),
        "runner_unsupported" => "the runner is too old for this job".into(),
        "api_failure" => "GitLab API failure".into(),
        "missing_dependency_failure" => "artifacts of a dependency are missing".into(),
        "unmet_prerequisites" => "prerequisites were not met".into(),
        "unknown_failure" => "unknown failure".into(),
        other => other.replace('_', " "),
    }
}

/// The failed jobs that matter: `failed`, not allowed to fail, one per name
/// (the newest attempt decides, so a retried job that passed is not listed).
pub fn culprits<'b, 'a>(builds: &'b [Build<'a>]) -> Vec<&'b Build<'a>> {
    let mut latest: Vec<&Build> = Vec::new();
    // Indexed by name: a linear search made pipelines with thousands of jobs quadratic.
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(builds.len());
    for b in builds {
        match by_name.get(b.name.as_ref()) {
            Some(&i) if latest[i].id < b.id => latest[i] = b,
            Some(_) => {}
            None => {
                by_name.insert(&b.name, latest.len());
                latest.push(b);
            }
        }
    }
    let mut failed: Vec<&Build> = latest
        .into_iter()
        .filter(|b| b.status == "failed" && !b.allow_failure)
        .collect();
    failed.sort_by_key(|b| b.id);
    failed
}

fn ref_link(hook: &PipelineHook) -> String {
    let a = &hook.object_attributes;
    let web = &hook.project.web_url;
    let (kind, path) = if a.tag {
        ("tag", "tags")
    } else {
        ("branch", "tree")
    };
    format!(
        "{kind} {}",
        link(&format!("{web}/-/{path}/{}", a.git_ref), &a.git_ref)
    )
}

fn pipeline_url(hook: &PipelineHook, has_failed_jobs: bool) -> String {
    let a = &hook.object_attributes;
    let base = a
        .url
        .clone()
        .unwrap_or_else(|| format!("{}/-/pipelines/{}", hook.project.web_url, a.id));
    if has_failed_jobs {
        format!("{base}/failures")
    } else {
        base
    }
}

/// The part of a notice that describes one failed pipeline: used in the root
/// message and in "still failing" replies.
pub fn failure_body(hook: &PipelineHook, s: &NotifySettings) -> Vec<Value> {
    let a = &hook.object_attributes;
    let jobs = culprits(&hook.builds);
    let project = link(&hook.project.web_url, &hook.project.path_with_namespace);
    let mut head = format!(
        ":red_circle: *Pipeline {} failed* on {} of {}",
        link(&pipeline_url(hook, !jobs.is_empty()), &format!("#{}", a.id)),
        ref_link(hook),
        project
    );
    if let Some(parent) = hook.parent_pipeline_id() {
        head.push_str(&format!(" (child of #{parent})"));
    }
    let mut fields = Vec::new();
    if let Some(c) = &hook.commit {
        let short: String = c.id.chars().take(8).collect();
        let title = c
            .title
            .clone()
            .or_else(|| {
                c.message
                    .as_ref()
                    .and_then(|m| m.lines().next().map(str::to_string))
            })
            .unwrap_or_default();
        let sha = match &c.url {
            Some(u) => link(u, &short),
            None => format!("`{}`", escape(&short)),
        };
        fields.push(format!(
            "*Commit*\n{sha} {}",
            escape(&truncate(&title, 150))
        ));
    }
    if let Some(u) = &hook.user {
        fields.push(format!(
            "*Triggered by*\n{} ({})",
            escape(&u.name),
            escape(&u.username)
        ));
    }
    if let Some(d) = a.duration {
        fields.push(format!("*Duration*\n{}", duration(d as i64)));
    }
    if let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) {
        fields.push(format!("*Pipeline name*\n{}", escape(&truncate(name, 150))));
    }
    let mut blocks = vec![section(&head)];
    if !fields.is_empty() {
        blocks.push(field_section(&fields));
    }
    blocks.push(section(&jobs_text(hook, &jobs)));
    if let Some(infra) = infra_text(hook, &jobs, s) {
        blocks.push(section(&infra));
    }
    blocks
}

fn jobs_text(hook: &PipelineHook, jobs: &[&Build]) -> String {
    if jobs.is_empty() {
        return "No failed job is listed for this pipeline: it most likely failed on a CI configuration \
                error or in a downstream pipeline. Open the pipeline to see why."
            .into();
    }
    let mut out = format!("*Failed jobs* ({})", jobs.len());
    for b in jobs.iter().take(MAX_JOBS) {
        let url = format!("{}/-/jobs/{}", hook.project.web_url, b.id);
        let reason = b
            .failure_reason
            .as_deref()
            .map(reason_in_words)
            .unwrap_or_else(|| "failed".into());
        out.push_str(&format!(
            "\n• `{}` {}: {}",
            escape(&truncate(&b.stage, 40)),
            link(&url, &truncate(&b.name, 80)),
            escape(&reason)
        ));
    }
    if jobs.len() > MAX_JOBS {
        out.push_str(&format!("\n…and {} more", jobs.len() - MAX_JOBS));
    }
    truncate(&out, SECTION_LIMIT)
}

fn infra_text(hook: &PipelineHook, jobs: &[&Build], s: &NotifySettings) -> Option<String> {
    let infra: Vec<&&Build> = jobs
        .iter()
        .filter(|b| b.failure_reason.as_deref().is_some_and(is_infra))
        .collect();
    if infra.is_empty() {
        return None;
    }
    let mut out = String::from(":warning: *Infrastructure failure*, not the code:");
    let mut on_arm = false;
    for b in infra.iter().take(MAX_JOBS) {
        let runner = match &b.runner {
            Some(r) => {
                on_arm |= r
                    .tags
                    .iter()
                    .any(|t| s.arm_runner_tags.iter().any(|a| a.eq_ignore_ascii_case(t)));
                let desc = r.description.clone().unwrap_or_default();
                match r.id {
                    Some(id) => format!("runner `{}` (#{id})", escape(&desc)),
                    None => format!("runner `{}`", escape(&desc)),
                }
            }
            None => "no runner".into(),
        };
        let reason = b
            .failure_reason
            .as_deref()
            .map(reason_in_words)
            .unwrap_or_default();
        out.push_str(&format!(
            "\n• {} on {runner}: {}",
            link(
                &format!("{}/-/jobs/{}", hook.project.web_url, b.id),
                &b.name
            ),
            escape(&reason)
        ));
    }
    if on_arm {
        out.push_str(
            "\nThese ran on ARM builders: `/arm status` shows whether machines are stuck.",
        );
    }
    Some(truncate(&out, SECTION_LIMIT))
}

/// The fallback text of a notice.
pub fn failure_text(hook: &PipelineHook) -> String {
    let a = &hook.object_attributes;
    format!(
        "Pipeline #{} failed on {} {} of {}",
        a.id,
        if a.tag { "tag" } else { "branch" },
        escape(&a.git_ref),
        escape(&hook.project.path_with_namespace)
    )
}

/// Where an incident stands, shown at the top of its root message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RootStatus {
    Broken {
        since: DateTime<Utc>,
        failures: u32,
        latest_pipeline: u64,
        latest_url: String,
    },
    Fixed {
        by_pipeline: u64,
        by_url: String,
        broken_for_secs: i64,
    },
}

/// The root message: a status line over the first failure's details.
pub fn root_message(body: &Message, status: &RootStatus) -> Message {
    let (line, text) = match status {
        RootStatus::Broken {
            since,
            failures,
            latest_pipeline,
            latest_url,
        } => (
            format!(
                ":rotating_light: *Broken* since <!date^{}^{{date_short_pretty}} {{time}}|{}> · {} failed pipeline{} · latest {}",
                since.timestamp(),
                since.format("%Y-%m-%d %H:%M UTC"),
                failures,
                if *failures == 1 { "" } else { "s" },
                link(latest_url, &format!("#{latest_pipeline}"))
            ),
            body.text.clone(),
        ),
        RootStatus::Fixed {
            by_pipeline,
            by_url,
            broken_for_secs,
        } => (
            format!(
                ":white_check_mark: *Fixed* by pipeline {} after {}",
                link(by_url, &format!("#{by_pipeline}")),
                duration(*broken_for_secs)
            ),
            format!("Fixed: {}", body.text),
        ),
    };
    let mut blocks = vec![context(&line)];
    blocks.extend(body.blocks.iter().cloned());
    Message { text, blocks }
}

/// A reply in the incident's thread for another failure, from its
/// [`failure_message`].
pub fn still_failing(failure: &Message) -> Message {
    Message {
        text: format!("Still failing: {}", failure.text),
        blocks: failure.blocks.clone(),
    }
}

/// The "fixed" reply.
pub fn fixed(hook: &PipelineHook, broken_for_secs: i64) -> Message {
    FixedNotice::new(hook).message(broken_for_secs)
}

/// The "fixed" reply rendered from the payload ahead of time, so the store's
/// writer only adds how long the ref was broken, which it alone knows.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedNotice {
    pipeline_link: String,
    details: String,
    text: String,
}

impl FixedNotice {
    pub fn new(hook: &PipelineHook) -> Self {
        let a = &hook.object_attributes;
        let url = a
            .url
            .clone()
            .unwrap_or_else(|| format!("{}/-/pipelines/{}", hook.project.web_url, a.id));
        let mut details = String::new();
        if let Some(c) = &hook.commit {
            let short: String = c.id.chars().take(8).collect();
            let title = c.title.clone().unwrap_or_default();
            details.push_str(&format!(
                " · `{}` {}",
                escape(&short),
                escape(&truncate(&title, 150))
            ));
        }
        if let Some(u) = &hook.user {
            details.push_str(&format!(" · by {}", escape(&u.name)));
        }
        Self {
            pipeline_link: link(&url, &format!("#{}", a.id)),
            details,
            text: format!(
                "Fixed: {} {} of {} is green again (pipeline #{})",
                if a.tag { "tag" } else { "branch" },
                escape(&a.git_ref),
                escape(&hook.project.path_with_namespace),
                a.id
            ),
        }
    }

    pub fn message(&self, broken_for_secs: i64) -> Message {
        let line = format!(
            ":white_check_mark: *Fixed* by pipeline {} after {} broken{}",
            self.pipeline_link,
            duration(broken_for_secs),
            self.details
        );
        Message {
            text: self.text.clone(),
            blocks: vec![section(&line)],
        }
    }
}

/// The first failure's message body (no status line); kept with the incident.
pub fn failure_message(hook: &PipelineHook, s: &NotifySettings) -> Message {
    Message {
        text: failure_text(hook),
        blocks: failure_body(hook, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn build(id: u64, name: &str, status: &str) -> Build<'static> {
        // A `Value` gives owned strings, so the build borrows nothing.
        Build::deserialize(serde_json::json!({"id": id, "name": name, "status": status}))
            .expect("build")
    }

    #[test]
    fn culprits_are_the_newest_attempt_of_each_failed_job() {
        let builds = [
            build(5, "rspec", "failed"),
            build(3, "lint", "failed"),
            build(7, "rspec", "success"), // retried to green
            build(2, "lint", "success"),  // an older attempt passed
            build(9, "pack", "failed"),
            build(8, "pack", "failed"),
        ];
        let ids: Vec<u64> = culprits(&builds).iter().map(|b| b.id).collect();
        assert_eq!(ids, [3, 9]);
    }
}
