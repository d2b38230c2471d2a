//! Block Kit messages for failure notices: pure functions of the payload.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::NotifySettings;
use crate::{
    gitlab::{PipelineHook, payload::Build},
    slack::{
        blocks::{
            MAX_TEXT_CHARS, Message, context, duration, fields as field_section, fit_lines, section,
        },
        mrkdwn::{code, code_link, link, name, one_line, truncate},
    },
};

const MAX_JOBS: usize = 10;

/// How much of each name from a payload a notice shows (UTF-16 units, before escaping), so
/// that one long name cannot crowd out the rest or push a block past Slack's limits.
pub const MAX_JOB_NAME: usize = 80;
pub const MAX_STAGE: usize = 40;
pub const MAX_RUNNER: usize = 60;
pub const MAX_REASON: usize = 100;
pub const MAX_REF: usize = 100;
pub const MAX_PROJECT: usize = 120;
pub const MAX_USER: usize = 80;
pub const MAX_TITLE: usize = 150;

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

/// A ref as URL path segments: each one percent-encoded, the slashes between them kept, as
/// GitLab's own `/-/tree/feature/x` links are (`#`, `?`, `%` and spaces would break the link).
pub fn ref_path(git_ref: &str) -> String {
    git_ref
        .split('/')
        .map(|segment| {
            // `.` and `..` alone would be resolved away by the browser.
            let dots = !segment.is_empty() && segment.bytes().all(|b| b == b'.');
            let mut out = String::with_capacity(segment.len());
            for b in segment.bytes() {
                if (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) && !dots {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn kind_of(hook: &PipelineHook) -> &'static str {
    if hook.object_attributes.tag {
        "tag"
    } else {
        "branch"
    }
}

/// `branch `master`` linked to the branch (or tag) in GitLab.
fn ref_link(hook: &PipelineHook) -> String {
    let a = &hook.object_attributes;
    let path = if a.tag { "tags" } else { "tree" };
    let url = format!("{}/-/{path}/{}", hook.project.web_url, ref_path(&a.git_ref));
    format!(
        "{} {}",
        kind_of(hook),
        code_link(&url, &truncate(&a.git_ref, MAX_REF))
    )
}

fn project_link(hook: &PipelineHook) -> String {
    let path = hook.project.path();
    let label = if path.is_empty() { "the project" } else { path };
    link(&hook.project.web_url, &truncate(label, MAX_PROJECT))
}

/// The pipeline's page: the payload's `url`, else one made from the project's.
pub fn pipeline_url(hook: &PipelineHook) -> String {
    let a = &hook.object_attributes;
    match a.url.as_deref() {
        Some(u) if !u.trim().is_empty() => u.to_string(),
        _ => format!("{}/-/pipelines/{}", hook.project.web_url, a.id),
    }
}

fn job_url(hook: &PipelineHook, b: &Build) -> String {
    format!("{}/-/jobs/{}", hook.project.web_url, b.id)
}

/// A job's name linked to its log, shown literally (in code).
fn job_link(hook: &PipelineHook, b: &Build) -> String {
    let label = if b.name.trim().is_empty() {
        format!("job {}", b.id)
    } else {
        truncate(&b.name, MAX_JOB_NAME)
    };
    code_link(&job_url(hook, b), &label)
}

fn reason_of(b: &Build, otherwise: &str) -> String {
    let words = b
        .failure_reason
        .as_deref()
        .map_or_else(|| otherwise.to_string(), reason_in_words);
    name(&words, MAX_REASON)
}

/// The commit as `sha` (linked) and title, if the payload has one.
fn commit_line(hook: &PipelineHook) -> Option<String> {
    let c = hook.commit.as_ref()?;
    let short: String = one_line(c.id.trim()).chars().take(8).collect();
    let sha = match c.url.as_deref() {
        Some(u) => code_link(u, &short),
        None => code(&short),
    };
    let title = name(c.title(), MAX_TITLE);
    let line = [sha, title]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!line.is_empty()).then_some(line)
}

/// The pipeline's user as `Name (username)`, if the payload names one.
pub fn user_words(hook: &PipelineHook) -> Option<String> {
    let u = hook.user.as_ref()?;
    let full = name(u.name.trim(), MAX_USER);
    let handle = name(u.username.trim(), MAX_USER);
    match (full.is_empty(), handle.is_empty()) {
        (false, false) if full != handle => Some(format!("{full} ({handle})")),
        (false, _) => Some(full),
        (true, false) => Some(handle),
        (true, true) => None,
    }
}

/// The part of a notice that describes one failed pipeline: used in the root
/// message and in "still failing" replies.
pub fn failure_body(hook: &PipelineHook, s: &NotifySettings) -> Vec<Value> {
    let a = &hook.object_attributes;
    let jobs = culprits(&hook.builds);
    let mut url = pipeline_url(hook);
    if !jobs.is_empty() {
        url.push_str("/failures");
    }
    let mut head = format!(
        ":red_circle: *Pipeline {} failed* on {} of {}",
        link(&url, &format!("#{}", a.id)),
        ref_link(hook),
        project_link(hook)
    );
    if let Some(parent) = hook.parent_pipeline_id() {
        head.push_str(&format!(" (child of #{parent})"));
    }
    let mut fields = Vec::new();
    if let Some(commit) = commit_line(hook) {
        fields.push(format!("*Commit*\n{commit}"));
    }
    if let Some(user) = user_words(hook) {
        fields.push(format!("*Triggered by*\n{user}"));
    }
    if let Some(d) = a.duration.filter(|d| d.is_finite()) {
        fields.push(format!("*Duration*\n{}", duration(d as i64)));
    }
    if let Some(pipeline_name) = a.name.as_deref().filter(|n| !n.trim().is_empty()) {
        fields.push(format!(
            "*Pipeline name*\n{}",
            name(pipeline_name, MAX_TITLE)
        ));
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

fn more(n: usize) -> String {
    format!("…and {n} more")
}

fn jobs_text(hook: &PipelineHook, jobs: &[&Build]) -> String {
    if jobs.is_empty() {
        return "No failed job is listed for this pipeline: it most likely failed on a CI configuration \
                error or in a downstream pipeline. Open the pipeline to see why."
            .into();
    }
    let lines: Vec<String> = jobs
        .iter()
        .take(MAX_JOBS)
        .map(|b| {
            let stage = code(&truncate(&b.stage, MAX_STAGE));
            let sep = if stage.is_empty() { "" } else { " " };
            format!(
                "• {stage}{sep}{}: {}",
                job_link(hook, b),
                reason_of(b, "failed")
            )
        })
        .collect();
    fit_lines(
        &format!("*Failed jobs* ({})", jobs.len()),
        &lines,
        jobs.len().saturating_sub(MAX_JOBS),
        more,
        None,
        MAX_TEXT_CHARS,
    )
}

/// `runner `desc` (#7)`, `runner #7`, or nothing when the payload says nothing of it.
fn runner_words(b: &Build) -> Option<String> {
    let r = b.runner.as_ref()?;
    let desc = r
        .description
        .as_deref()
        .map(|d| code(&truncate(d.trim(), MAX_RUNNER)))
        .unwrap_or_default();
    match (desc.is_empty(), r.id) {
        (false, Some(id)) => Some(format!("runner {desc} (#{id})")),
        (false, None) => Some(format!("runner {desc}")),
        (true, Some(id)) => Some(format!("runner #{id}")),
        (true, None) => None,
    }
}

fn infra_text(hook: &PipelineHook, jobs: &[&Build], s: &NotifySettings) -> Option<String> {
    let infra: Vec<&&Build> = jobs
        .iter()
        .filter(|b| b.failure_reason.as_deref().is_some_and(is_infra))
        .collect();
    if infra.is_empty() {
        return None;
    }
    let on_arm = infra.iter().any(|b| {
        b.runner.as_ref().is_some_and(|r| {
            r.tags
                .iter()
                .any(|t| s.arm_runner_tags.iter().any(|a| a.eq_ignore_ascii_case(t)))
        })
    });
    let lines: Vec<String> = infra
        .iter()
        .take(MAX_JOBS)
        .map(|b| {
            let on = runner_words(b)
                .map(|r| format!(" on {r}"))
                .unwrap_or_default();
            format!("• {}{on}: {}", job_link(hook, b), reason_of(b, ""))
        })
        .collect();
    let tail = on_arm
        .then_some("These ran on ARM builders: `/arm status` shows whether machines are stuck.");
    Some(fit_lines(
        ":warning: *Infrastructure failure*, not the code:",
        &lines,
        infra.len().saturating_sub(MAX_JOBS),
        more,
        tail,
        MAX_TEXT_CHARS,
    ))
}

/// `branch master of group/project`, plain, for notification texts.
fn ref_of_project(hook: &PipelineHook) -> String {
    format!(
        "{} {} of {}",
        kind_of(hook),
        name(&hook.object_attributes.git_ref, MAX_REF),
        name(hook.project.path(), MAX_PROJECT)
    )
}

/// The fallback text of a notice.
pub fn failure_text(hook: &PipelineHook) -> String {
    format!(
        "Pipeline #{} failed on {}",
        hook.object_attributes.id,
        ref_of_project(hook)
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
        let mut details = String::new();
        if let Some(commit) = commit_line(hook) {
            details.push_str(&format!(" · {commit}"));
        }
        if let Some(u) = &hook.user {
            let who = if u.name.trim().is_empty() {
                &u.username
            } else {
                &u.name
            };
            let who = name(who.trim(), MAX_USER);
            if !who.is_empty() {
                details.push_str(&format!(" · by {who}"));
            }
        }
        Self {
            pipeline_link: link(&pipeline_url(hook), &format!("#{}", a.id)),
            details,
            text: format!(
                "Fixed: {} is green again (pipeline #{})",
                ref_of_project(hook),
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
