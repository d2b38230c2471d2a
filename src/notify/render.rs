//! Block Kit messages for failure notices: pure functions of the payload.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::NotifySettings;
use crate::{
    gitlab::{PipelineHook, payload::Build},
    slack::{
        blocks::{MAX_TEXT_CHARS, Message, context, date, duration, fit_lines, section},
        mrkdwn::{clip, code, code_link, escape, len, link, name, one_line, truncate},
    },
};

const MAX_JOBS: usize = 10;

/// How much of each name from a payload a notice shows (UTF-16 units, before escaping), so
/// that one long name cannot crowd out the rest or push a block past Slack's limits.
pub const MAX_JOB_NAME: usize = 80;
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

fn reason_in_words(reason: &str) -> String {
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
    failed_of(&newest_attempts(builds))
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

/// `*<project|omnibus-gitlab>* `<ref|master>``: what broke, linked. The project is named by
/// the last part of its path, as the team says it; the link leads to the whole path.
fn subject(hook: &PipelineHook) -> String {
    let a = &hook.object_attributes;
    let kind = if a.tag { "tags" } else { "tree" };
    let ref_url = format!("{}/-/{kind}/{}", hook.project.web_url, ref_path(&a.git_ref));
    format!(
        "*{}* {}",
        link(
            &hook.project.web_url,
            &truncate(project_name(hook), MAX_PROJECT)
        ),
        code_link(&ref_url, &truncate(&a.git_ref, MAX_REF))
    )
}

fn project_name<'h>(hook: &'h PipelineHook) -> &'h str {
    let path = hook.project.path();
    match path.rsplit('/').next() {
        Some(last) if !last.trim().is_empty() => last,
        _ if !path.trim().is_empty() => path,
        _ => "the project",
    }
}

/// `omnibus-gitlab master`, for notification texts (escaped, one line).
fn subject_text(hook: &PipelineHook) -> String {
    format!(
        "{} {}",
        name(project_name(hook), MAX_PROJECT),
        name(&hook.object_attributes.git_ref, MAX_REF)
    )
}

/// The pipeline's page: the payload's `url`, else one made from the project's.
pub fn pipeline_url(hook: &PipelineHook) -> String {
    let a = &hook.object_attributes;
    match a.url.as_deref() {
        Some(u) if !u.trim().is_empty() => u.to_string(),
        _ => format!("{}/-/pipelines/{}", hook.project.web_url, a.id),
    }
}

/// A pipeline of the same project that only its id is known of (the incident's first one).
fn pipeline_link(project_url: &str, id: u64) -> String {
    link(
        &format!("{project_url}/-/pipelines/{id}"),
        &format!("#{id}"),
    )
}

/// The commit as a message shows it: its short sha linked to it, and its title (or its
/// message's first line), each as far as the payload tells.
#[derive(Debug, Clone, Default, PartialEq)]
struct Commit {
    sha: Option<String>,
    title: Option<String>,
}

impl Commit {
    fn of(hook: &PipelineHook) -> Self {
        let Some(c) = hook.commit.as_ref() else {
            return Self::default();
        };
        let id = one_line(c.id.trim());
        let short: String = id.chars().take(8).collect();
        let sha = match c.url.as_deref() {
            Some(u) if !u.trim().is_empty() => code_link(u, &short),
            _ if !short.is_empty() => code_link(
                &format!("{}/-/commit/{}", hook.project.web_url, ref_path(&id)),
                &short,
            ),
            _ => String::new(),
        };
        let title = name(c.title(), MAX_TITLE);
        Self {
            sha: (!sha.is_empty()).then_some(sha),
            title: (!title.is_empty()).then_some(title),
        }
    }

    /// `sha` (linked) and title.
    fn line(&self) -> Option<String> {
        let line = [self.sha.as_deref(), self.title.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!line.is_empty()).then_some(line)
    }
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

/// The pipeline's user: their name, with their username only when it says something more
/// (`Administrator (root)`, but `Dana Smith` alone for `dana.smith` or `danasmith`).
fn user_words(hook: &PipelineHook) -> Option<String> {
    let u = hook.user.as_ref()?;
    let full = name(u.name.trim(), MAX_USER);
    let handle = name(u.username.trim(), MAX_USER);
    match (full.is_empty(), handle.is_empty()) {
        (false, false) if !username_is_name(&u.username, &u.name) => {
            Some(format!("{full} ({handle})"))
        }
        (false, _) => Some(full),
        (true, false) => Some(handle),
        (true, true) => None,
    }
}

/// `dana`, `dana.smith`, `danasmith` for Dana Smith: the username only spells out the name.
fn username_is_name(username: &str, full: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (user, name) = (words(username), words(full));
    !user.is_empty() && (user.concat() == name.concat() || user.iter().all(|w| name.contains(w)))
}

/// GitLab's own names for pipelines nobody named (`Pipeline for branch: master`) say nothing
/// the message does not already.
fn chosen_name(hook: &PipelineHook) -> Option<String> {
    let n = hook.object_attributes.name.as_deref()?.trim();
    let default = n.is_empty()
        || n.to_lowercase().starts_with("pipeline for ")
        || n == hook.object_attributes.git_ref;
    (!default).then(|| name(n, MAX_TITLE))
}

/// A failed job: what the payload says of it, rendered only where a message shows it (a root
/// shows 10 of a pipeline's jobs, a reply a few, whatever the pipeline's size).
#[derive(Debug, Clone, PartialEq)]
struct FailedJob {
    id: u64,
    /// The job's name on one line, capped (escaped where shown); what pipelines are compared by.
    label: String,
    /// GitLab's `failure_reason`.
    reason: Option<String>,
    /// `runner `arm-3` (#7)` when the failure is the runner's or the machine's, not the
    /// code's, as far as the payload tells (`Some("")` when it names no runner).
    infra: Option<String>,
}

impl FailedJob {
    fn new(b: &Build) -> Self {
        let reason = b.failure_reason.as_deref();
        Self {
            id: b.id,
            label: if b.name.trim().is_empty() {
                format!("job {}", b.id)
            } else {
                label(&b.name).into_owned()
            },
            reason: reason.map(str::to_string),
            infra: reason
                .filter(|r| is_infra(r))
                .map(|_| runner_words(b).unwrap_or_default()),
        }
    }

    /// The name linked to the job's log, shown literally (in code).
    fn link(&self, project_url: &str) -> String {
        code_link(&format!("{project_url}/-/jobs/{}", self.id), &self.label)
    }

    /// Why it failed, in words.
    fn reason(&self) -> String {
        name(
            &self
                .reason
                .as_deref()
                .map_or_else(|| "failed".into(), reason_in_words),
            MAX_REASON,
        )
    }

    /// `runner system failure on runner `x` (#7)`: the reason, and where, when it is known.
    fn reason_where(&self) -> String {
        match self.infra.as_deref() {
            Some(runner) if !runner.is_empty() => format!("{} on {runner}", self.reason()),
            _ => self.reason(),
        }
    }

    /// `• `job` — runner system failure on runner `x` (#7): infrastructure, not the code`.
    fn line(&self, project_url: &str) -> String {
        if self.infra.is_some() {
            format!(
                "• {} — {}: *infrastructure, not the code*",
                self.link(project_url),
                self.reason_where()
            )
        } else {
            format!("• {} — {}", self.link(project_url), self.reason())
        }
    }

    /// `job (script)`, for notification texts.
    fn text(&self) -> String {
        let short = self
            .reason
            .as_deref()
            .map_or_else(|| "failed".into(), short_reason);
        format!("{} ({})", escape(&self.label), name(&short, MAX_REASON))
    }
}

/// A job's name as pipelines are compared by it: on one line, capped.
fn label(name: &str) -> Cow<'_, str> {
    if len(name) <= MAX_JOB_NAME && !name.chars().any(char::is_control) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(truncate(&one_line(name), MAX_JOB_NAME))
    }
}

/// A label's fingerprint: passing jobs are only looked up, so a pipeline of hundreds of them
/// keeps one number each instead of a copy of each name. Never stored: the hasher's keys are
/// fixed, but need not be stable across versions.
fn fingerprint(label: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    label.hash(&mut h);
    h.finish()
}

/// Why a job failed, in a word or two: `script`, `runner system failure`.
fn short_reason(reason: &str) -> String {
    match reason {
        "script_failure" => "script".into(),
        "job_execution_timeout" => "timed out".into(),
        "missing_dependency_failure" => "missing artifacts".into(),
        other => reason_in_words(other),
    }
}

/// Failed jobs an incident keeps by name, to tell the next failure's jobs "again" from "new".
const MAX_KEPT_JOBS: usize = 200;

/// What an incident keeps of its latest failure: the names of its failed jobs (as GitLab sent
/// them, one line, capped; escaped where shown), enough for the next failure's reply to say
/// what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedJobs {
    pub pipeline: u64,
    pub jobs: Vec<String>,
}

/// One failed pipeline, as the thread shows it: every part already escaped mrkdwn, so the
/// writer, which alone knows where the incident stands, only puts the parts together.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    subject: String,
    subject_text: String,
    project_url: String,
    pipeline: u64,
    pipeline_url: String,
    child_of: Option<u64>,
    commit: Option<String>,
    by: Option<String>,
    took_secs: Option<i64>,
    pipeline_name: Option<String>,
    /// The failed jobs, oldest first (the first [`MAX_KEPT_JOBS`]).
    jobs: Vec<FailedJob>,
    /// How many failed, kept or not.
    failed: usize,
    /// Why no job is listed, when none is.
    no_jobs: Option<String>,
    /// An infrastructure failure ran on an ARM builder.
    on_arm: bool,
    /// Fingerprints of the labels of the jobs whose newest attempt passed, sorted (to say
    /// which jobs of the failure before now pass).
    passed: Vec<u64>,
}

impl Failure {
    pub fn new(hook: &PipelineHook, s: &NotifySettings) -> Self {
        let a = &hook.object_attributes;
        let latest = newest_attempts(&hook.builds);
        let culprits = failed_of(&latest);
        let pipeline_url = pipeline_url(hook);
        let on_arm = culprits.iter().any(|b| {
            b.failure_reason.as_deref().is_some_and(is_infra)
                && b.runner.as_ref().is_some_and(|r| {
                    r.tags
                        .iter()
                        .any(|t| s.arm_runner_tags.iter().any(|a| a.eq_ignore_ascii_case(t)))
                })
        });
        let canceled = latest.iter().filter(|b| b.status == "canceled").count();
        let no_jobs = culprits.is_empty().then(|| {
            if hook.builds.is_empty() {
                "GitLab listed no jobs: the pipeline most likely failed on a CI configuration \
                 error or in a downstream pipeline."
                    .to_string()
            } else if canceled > 0 {
                format!(
                    "No job failed; {canceled} {} canceled.",
                    if canceled == 1 { "was" } else { "were" }
                )
            } else {
                "No failed job is listed: open the pipeline to see why.".to_string()
            }
        });
        Self {
            subject: subject(hook),
            subject_text: subject_text(hook),
            project_url: hook.project.web_url.clone(),
            pipeline: a.id,
            pipeline_url,
            child_of: hook.parent_pipeline_id(),
            commit: Commit::of(hook).line(),
            by: user_words(hook),
            took_secs: a.duration.filter(|d| d.is_finite()).map(|d| d as i64),
            pipeline_name: chosen_name(hook),
            jobs: culprits
                .iter()
                .take(MAX_KEPT_JOBS)
                .map(|b| FailedJob::new(b))
                .collect(),
            failed: culprits.len(),
            no_jobs,
            on_arm,
            passed: {
                let mut passed: Vec<u64> = latest
                    .iter()
                    .filter(|b| b.status == "success")
                    .map(|b| fingerprint(&label(&b.name)))
                    .collect();
                passed.sort_unstable();
                passed
            },
        }
    }

    /// What the incident keeps of this failure.
    pub fn kept(&self) -> FailedJobs {
        FailedJobs {
            pipeline: self.pipeline,
            jobs: self.jobs.iter().map(|j| j.label.clone()).collect(),
        }
    }

    fn pipeline_link(&self) -> String {
        link(&self.pipeline_url, &format!("#{}", self.pipeline))
    }

    /// The pipeline's failures page when jobs failed, else its page.
    fn failures_url(&self) -> String {
        if self.failed == 0 {
            self.pipeline_url.clone()
        } else {
            format!("{}/failures", self.pipeline_url)
        }
    }

    fn more(&self) -> impl Fn(usize) -> String + '_ {
        |n| link(&self.failures_url(), &format!("…and {n} more"))
    }

    /// `omnibus-gitlab master #31 failed: a (script), b (runner system failure)`.
    fn text(&self, verb: &str) -> String {
        let mut t = format!("{} #{} {verb}", self.subject_text, self.pipeline);
        if !self.jobs.is_empty() {
            t.push_str(": ");
            t.push_str(&jobs_text(&self.jobs, self.failed));
        }
        t
    }

    /// What broke, first: the subject, the pipeline and its failed jobs, each on its line.
    fn headline(&self) -> Value {
        let mut head = format!(
            ":red_circle: {}: pipeline {} failed",
            self.subject,
            link(&self.failures_url(), &format!("#{}", self.pipeline))
        );
        if let Some(parent) = self.child_of {
            head.push_str(&format!(
                " (child of {})",
                pipeline_link(&self.project_url, parent)
            ));
        }
        let lines: Vec<String> = self
            .jobs
            .iter()
            .take(MAX_JOBS)
            .map(|j| j.line(&self.project_url))
            .collect();
        let arm = self
            .on_arm
            .then_some("ARM builders ran the infrastructure failures: `/arm status` shows whether any are stuck.");
        let tail = match (&self.no_jobs, arm) {
            (Some(why), _) => Some(why.as_str()),
            (None, arm) => arm,
        };
        section(&fit_lines(
            &head,
            &lines,
            self.failed - lines.len(),
            self.more(),
            tail,
            MAX_TEXT_CHARS,
        ))
    }

    /// The small print: commit, who, the pipeline's name, how long it ran.
    fn footer(&self) -> Option<Value> {
        let parts: Vec<String> = [
            self.commit.clone(),
            self.by.clone(),
            self.pipeline_name.as_ref().map(|n| format!("_{n}_")),
            self.took_secs.map(|d| format!("ran {}", duration(d))),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| context(&parts.join(" · ")))
    }
}

/// `a (script), b (runner system failure), and 3 more`: the first few failed jobs.
fn jobs_text(jobs: &[FailedJob], failed: usize) -> String {
    const SHOWN: usize = 5;
    let mut t = jobs
        .iter()
        .take(SHOWN)
        .map(FailedJob::text)
        .collect::<Vec<_>>()
        .join(", ");
    if failed > SHOWN.min(jobs.len()) {
        t.push_str(&format!(", and {} more", failed - SHOWN.min(jobs.len())));
    }
    t
}

/// The newest attempt of each job, by name (a retried job that passed is not a failure).
fn newest_attempts<'b, 'a>(builds: &'b [Build<'a>]) -> Vec<&'b Build<'a>> {
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
    latest
}

fn failed_of<'b, 'a>(latest: &[&'b Build<'a>]) -> Vec<&'b Build<'a>> {
    let mut failed: Vec<&Build> = latest
        .iter()
        .copied()
        .filter(|b| b.status == "failed" && !b.allow_failure)
        .collect();
    failed.sort_by_key(|b| b.id);
    failed
}

/// The root as first posted: what broke, then the small print.
pub fn root_opened(f: &Failure) -> Message {
    let mut blocks = vec![f.headline()];
    blocks.extend(f.footer());
    Message::new(f.text("failed"), blocks)
}

/// The root of an incident still open: its latest failure, and since when it has been broken.
pub fn root_broken(f: &Failure, since: DateTime<Utc>, failures: i64, first: u64) -> Message {
    let mut m = root_opened(f);
    m.blocks.push(context(&format!(
        "Broken since {} · {failures} failed pipeline{} · first failed: {}",
        date(since),
        if failures == 1 { "" } else { "s" },
        pipeline_link(&f.project_url, first)
    )));
    m
}

/// Names of failed jobs, linked to their logs and flagged when the runner failed, at most a
/// few; the rest of `total` counted and linked to the failures page.
fn job_names(
    jobs: &[&FailedJob],
    total: usize,
    project_url: &str,
    more: &dyn Fn(usize) -> String,
) -> String {
    const SHOWN: usize = 6;
    let mut names: Vec<String> = jobs
        .iter()
        .take(SHOWN)
        .map(|j| {
            if j.infra.is_some() {
                format!("{} ({})", j.link(project_url), j.reason_where())
            } else {
                j.link(project_url)
            }
        })
        .collect();
    let shown = names.len();
    if total > shown {
        names.push(more(total - shown));
    }
    names.join(", ")
}

/// Names of jobs that pass again, unlinked (their passing run is not in the payload by id).
fn passing_names(labels: &[&String]) -> String {
    const SHOWN: usize = 6;
    let mut names: Vec<String> = labels.iter().take(SHOWN).map(|l| code(l)).collect();
    if labels.len() > SHOWN {
        names.push(format!("and {} more", labels.len() - SHOWN));
    }
    names.join(", ")
}

/// The reply for another failure of a broken ref: the new pipeline and commit, then what
/// changed since the failure before it (`prev`, when the incident kept it): which jobs failed
/// again, which fail for the first time, which now pass.
pub fn still_failing(prev: Option<&FailedJobs>, f: &Failure) -> Message {
    let mut head = format!(":red_circle: Still failing: pipeline {}", f.pipeline_link());
    if let Some(commit) = &f.commit {
        head.push_str(&format!(" · {commit}"));
    }
    let more = f.more();
    let changes = match (&f.no_jobs, prev) {
        (Some(why), _) => why.clone(),
        (None, None) => format!(
            "Failed: {}",
            job_names(
                &f.jobs.iter().collect::<Vec<_>>(),
                f.failed,
                &f.project_url,
                &more
            )
        ),
        (None, Some(prev)) => {
            let before: HashSet<&str> = prev.jobs.iter().map(String::as_str).collect();
            let now: HashSet<&str> = f.jobs.iter().map(|j| j.label.as_str()).collect();
            let (again, new): (Vec<&FailedJob>, Vec<&FailedJob>) = f
                .jobs
                .iter()
                .partition(|j| before.contains(j.label.as_str()));
            let fixed: Vec<&String> = prev
                .jobs
                .iter()
                .filter(|name| {
                    !now.contains(name.as_str())
                        && f.passed.binary_search(&fingerprint(name)).is_ok()
                })
                .collect();
            let mut parts = Vec::new();
            if !again.is_empty() {
                let names = job_names(&again, again.len(), &f.project_url, &more);
                parts.push(format!("Failed again: {names}"));
            }
            if !new.is_empty() {
                let names = job_names(&new, new.len(), &f.project_url, &more);
                parts.push(format!("Newly failing: {names}"));
            }
            if !fixed.is_empty() {
                parts.push(format!("Now passing: {}", passing_names(&fixed)));
            }
            parts.join(" · ")
        }
    };
    Message::new(
        f.text("still failing"),
        vec![section(&clip(
            &format!("{head}\n{changes}"),
            MAX_TEXT_CHARS,
        ))],
    )
}

/// The "fixed" reply and root, rendered from the payload ahead of time, so the store's writer
/// only adds what it alone knows: how long the ref was broken and which pipelines failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedNotice {
    subject: String,
    subject_text: String,
    project_url: String,
    pipeline: u64,
    pipeline_link: String,
    commit: Commit,
    by: Option<String>,
}

impl FixedNotice {
    pub fn new(hook: &PipelineHook) -> Self {
        let a = &hook.object_attributes;
        Self {
            subject: subject(hook),
            subject_text: subject_text(hook),
            project_url: hook.project.web_url.clone(),
            pipeline: a.id,
            pipeline_link: link(&pipeline_url(hook), &format!("#{}", a.id)),
            commit: Commit::of(hook),
            by: user_words(hook),
        }
    }

    fn text(&self, broken_for_secs: i64) -> String {
        format!(
            "{} fixed by #{} after {}",
            self.subject_text,
            self.pipeline,
            duration(broken_for_secs)
        )
    }

    /// The reply in the thread: which pipeline fixed it, after how long, with which commit.
    pub fn reply(&self, broken_for_secs: i64) -> Message {
        let mut line = format!(
            ":white_check_mark: Fixed by pipeline {} after {}",
            self.pipeline_link,
            duration(broken_for_secs)
        );
        for part in [self.commit.line(), self.by.clone()].into_iter().flatten() {
            line.push_str(&format!(" · {part}"));
        }
        Message::new(self.text(broken_for_secs), vec![section(&line)])
    }

    /// The root once fixed, one line: the thread below keeps the details.
    pub fn root(
        &self,
        broken_for_secs: i64,
        first: u64,
        last_failed: u64,
        failures: i64,
    ) -> Message {
        let mut by = self.pipeline_link.clone();
        if self.pipeline == last_failed {
            // The failed pipeline's jobs were retried until it passed.
            by.push_str(" on retry");
        }
        if let Some(sha) = &self.commit.sha {
            by.push_str(&format!(" ({sha})"));
        }
        let failed = if first == last_failed {
            pipeline_link(&self.project_url, first)
        } else {
            format!(
                "{}–{}",
                pipeline_link(&self.project_url, first),
                pipeline_link(&self.project_url, last_failed)
            )
        };
        let count = if failures > 2 {
            format!(" ({failures} pipelines)")
        } else {
            String::new()
        };
        Message::new(
            self.text(broken_for_secs),
            vec![section(&format!(
                ":white_check_mark: {} fixed by {by} after {}; {failed} failed{count} · details in thread",
                self.subject,
                duration(broken_for_secs)
            ))],
        )
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

    #[test]
    fn a_username_is_shown_only_when_it_says_more_than_the_name() {
        for (user, full) in [
            ("dana", "Dana"),
            ("dana.smith", "Dana Smith"),
            ("danasmith", "Dana Smith"),
            ("randler.ferraz", "Randler Ferraz Almeida"),
        ] {
            assert!(username_is_name(user, full), "{user} / {full}");
        }
        for (user, full) in [
            ("root", "Administrator"),
            ("dsmith", "Dana Smith"),
            ("", "Dana"),
        ] {
            assert!(!username_is_name(user, full), "{user} / {full}");
        }
    }
}
