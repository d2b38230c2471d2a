//! Catch-up of missed pipelines and the hook check, against `FakeGitLab`: pagination (by
//! `X-Next-Page` and by `Link` alone), 429, a missed failure opening an incident and a missed
//! success fixing it, a webhook-seen pipeline never posted twice, a first start posting
//! nothing, the max age, a disabled hook warned once and recovered in the thread, a refused
//! token warned once without looping, a 404 project left out, `/arm status`, and a caught-up
//! notice equal to the webhook's for the same pipeline.

use std::time::Duration;

use crate::common::*;
use armbot::{
    catch_up::{self, CatchUp, Stopped},
    config::FileSettings,
    notify::settings::NotifyFile,
    retry::RetryPolicy,
    store::catch_up::SeenProject,
};
use armbot_fakes::{
    FakeGitLab, FakeScaleway, GlCommit, GlFailure, GlHook, GlJob, GlOp, GlPipeline, GlProject,
    ScwServer, gitlab::DEFAULT_TOKEN as GL_TOKEN,
};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

/// The project of `common::pipeline`'s payloads.
const PROJECT: u64 = 1;
const PATH: &str = "gitlab-org/gitlab-test";
const WEB: &str = "https://gitlab.example.com/gitlab-org/gitlab-test";
const PUBLIC: &str = "https://armbot.example.com";
const OUR_HOOK: &str = "https://armbot.example.com/gitlab/webhook";

/// `minutes` before the test clock's now.
fn ago(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).expect("now") - TimeDelta::minutes(minutes)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

async fn gitlab() -> FakeGitLab {
    let fake = FakeGitLab::start().await;
    fake.require_token(GL_TOKEN);
    fake.add_project(GlProject::new(PROJECT, PATH));
    fake
}

fn gitlab_settings(
    fake: &FakeGitLab,
    file: FileSettings,
    extra: &[(&str, &str)],
) -> armbot::config::Settings {
    let uri = fake.uri();
    let mut env = vec![
        ("GITLAB_URL", uri.as_str()),
        ("GITLAB_API_TOKEN", GL_TOKEN),
        ("ARMBOT_PUBLIC_URL", PUBLIC),
    ];
    env.extend_from_slice(extra);
    let mut s = settings_with_file(file, &env);
    s.gitlab_api.retry = RetryPolicy::immediate();
    s
}

async fn setup(db: Db, fake: &FakeGitLab) -> TestApp {
    app_on(db, gitlab_settings(fake, FileSettings::default(), &[])).await
}

/// The project watched, caught up to `mark` (as if the bot had been down since then).
async fn watch(app: &TestApp, mark: DateTime<Utc>) {
    let p = SeenProject {
        project_id: PROJECT,
        path: PATH.into(),
        web_url: WEB.into(),
    };
    app.store
        .remember_project(&p, ms(mark))
        .await
        .expect("remember");
}

/// A failed pipeline on `git_ref` with one failed job (`rspec`, script failure).
fn failed(fake: &FakeGitLab, id: u64, git_ref: &str, at: DateTime<Utc>) {
    fake.add_pipeline(PROJECT, GlPipeline::new(id, git_ref, "failed", at));
    fake.set_jobs(
        PROJECT,
        id,
        vec![
            GlJob::new(id * 10, "compile", "success").stage("build"),
            GlJob::new(id * 10 + 1, "rspec", "failed"),
        ],
    );
}

fn succeeded(fake: &FakeGitLab, id: u64, git_ref: &str, at: DateTime<Utc>) {
    fake.add_pipeline(PROJECT, GlPipeline::new(id, git_ref, "success", at));
    fake.set_jobs(PROJECT, id, vec![GlJob::new(id * 10, "rspec", "success")]);
}

async fn pending(app: &TestApp) -> i64 {
    app.store.outbox_count("pending").await.expect("count")
}

/// Delivers everything queued to `slack`; returns every message it holds.
async fn deliver(app: &TestApp, slack: &FakeSlack) -> Vec<SlackCall> {
    let mut worker = app.worker(slack_transport(slack));
    drain(&mut worker).await;
    slack.messages()
}

on_both_engines! {
    async fn a_missed_failure_opens_an_incident_and_a_missed_success_fixes_it(db: Db) {
        let fake = gitlab().await;
        let app = setup(db, &fake).await;
        watch(&app, ago(60)).await;
        failed(&fake, 100, "master", ago(30));
        let mut catch_up = CatchUp::default();
        let report = catch_up.run_once(&app.state).await;
        assert_eq!(report.stopped, None);
        assert_eq!(report.outcomes(PROJECT), [(100, "opened")]);
        assert_eq!(fake.count(GlOp::GetPipeline.pipeline(100)), 1);
        assert_eq!(fake.count(GlOp::ListJobs.pipeline(100)), 1);

        succeeded(&fake, 101, "master", ago(10));
        let report = catch_up.run_once(&app.state).await;
        assert_eq!(
            report.outcomes(PROJECT),
            [(101, "fixed")],
            "the failure is not read again"
        );
        // The fixed reply names the commit, which one job carries: one job is enough.
        let jobs = fake.calls_to(GlOp::ListJobs.pipeline(101));
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].query("per_page"), Some("1"));

        let slack = FakeSlack::start().await;
        let posted = deliver(&app, &slack).await;
        let kinds: Vec<(&str, bool)> = posted
            .iter()
            .map(|m| (m.method.as_str(), m.thread_ts.is_some()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("chat.postMessage", false),
                ("chat.postMessage", true),
                ("chat.update", false)
            ]
        );
        assert!(posted[0].text.contains("#100 failed"), "{}", posted[0].text);
        assert!(posted[1].text.contains("fixed by #101"), "{}", posted[1].text);
        assert_eq!(posted[1].thread_ts.as_deref(), Some(posted[0].ts.as_str()));
        let m = app.state.metrics.render();
        for line in [
            r#"armbot_catch_up_events_total{outcome="opened"} 1"#,
            r#"armbot_catch_up_events_total{outcome="fixed"} 1"#,
            r#"armbot_catch_up_passes_total{outcome="ok"} 2"#,
            r#"armbot_gitlab_api_calls_total{endpoint="pipeline",outcome="ok"} 2"#,
        ] {
            assert!(m.contains(line), "{line} in\n{m}");
        }
        // Every call carried the token, and no answer leaked it into the metrics.
        assert!(fake.calls().iter().all(|c| c.private_token.as_deref() == Some(GL_TOKEN)));
        assert!(!m.contains(GL_TOKEN));
    }
}

on_both_engines! {
    async fn a_pipeline_a_webhook_brought_is_never_posted_twice(db: Db) {
        let fake = gitlab().await;
        let app = setup(db, &fake).await;
        // The webhook recorded the project (and where catch-up starts for it).
        assert_eq!(app.hook(&pipeline(100, "master", "failed")).await, StatusCode::OK);
        assert_eq!(
            app.store_scalar("SELECT COUNT(*) FROM gitlab_projects WHERE project_id = 1").await,
            1
        );
        let queued = pending(&app).await;
        app.sql(&format!(
            "UPDATE gitlab_projects SET caught_up_to = {}",
            ms(ago(60))
        ))
        .await;
        // The same pipeline as the API shows it: `finished_at` with milliseconds where the
        // webhook wrote `2016-08-12 15:40:00 UTC`.
        let mut p = GlPipeline::new(100, "master", "failed", ago(20));
        p.finished_at = Some("2016-08-12T15:40:00.734Z".parse().expect("time"));
        fake.add_pipeline(PROJECT, p);
        fake.set_jobs(PROJECT, 100, vec![GlJob::new(1000, "rspec", "failed")]);
        let report = CatchUp::default().run_once(&app.state).await;
        assert_eq!(report.outcomes(PROJECT), [(100, "duplicate")]);
        assert_eq!(pending(&app).await, queued, "nothing more queued");

        // The other way round: caught up first, the late webhook is then a duplicate.
        failed(&fake, 102, "master", ago(5));
        let report = CatchUp::default().run_once(&app.state).await;
        assert!(report.outcomes(PROJECT).contains(&(102, "still_failing")), "{report:?}");
        let queued = pending(&app).await;
        let mut late = pipeline(102, "master", "failed");
        late["object_attributes"]["finished_at"] =
            json!(ago(5).format("%Y-%m-%d %H:%M:%S UTC").to_string());
        assert_eq!(app.hook(&late).await, StatusCode::OK);
        assert_eq!(pending(&app).await, queued);
    }
}

on_both_engines! {
    async fn a_first_start_posts_nothing_from_before(db: Db) {
        let fake = gitlab().await;
        let file = FileSettings {
            notify: NotifyFile {
                projects: vec![PATH.into()],
                ..NotifyFile::default()
            },
            ..FileSettings::default()
        };
        let app = app_on(db, gitlab_settings(&fake, file, &[])).await;
        failed(&fake, 100, "master", ago(90));
        failed(&fake, 101, "master", ago(2));
        let mut catch_up = CatchUp::default();
        for _ in 0..2 {
            let report = catch_up.run_once(&app.state).await;
            assert_eq!(report.stopped, None);
            assert!(report.events.is_empty(), "{report:?}");
        }
        assert_eq!(pending(&app).await, 0);
        // The allow-listed project was looked up by its path, and starts now.
        let by_path = fake
            .calls_to(GlOp::GetProject)
            .into_iter()
            .filter(|c| c.path.ends_with("gitlab-org%2Fgitlab-test"))
            .count();
        assert_eq!(by_path, 1);
        assert_eq!(
            app.store_scalar("SELECT caught_up_to FROM gitlab_projects").await,
            NOW * 1000
        );
        // A pipeline finishing after the start is caught up.
        failed(&fake, 102, "master", ago(-3));
        let report = catch_up.run_once(&app.state).await;
        assert_eq!(report.outcomes(PROJECT), [(102, "opened")]);
    }
}

#[tokio::test]
async fn downtime_is_replayed_at_most_max_age_back() {
    let fake = gitlab().await;
    let app = setup(Db::Sqlite, &fake).await;
    watch(&app, ago(3 * 24 * 60)).await;
    failed(&fake, 100, "master", ago(2 * 24 * 60));
    failed(&fake, 101, "master", ago(23 * 60));
    let report = CatchUp::default().run_once(&app.state).await;
    assert_eq!(report.outcomes(PROJECT), [(101, "opened")]);
    let lists = fake.calls_to(GlOp::ListPipelines);
    let since = ago(24 * 60).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    assert!(
        lists
            .iter()
            .all(|c| c.query("updated_after") >= Some(since.as_str())),
        "{lists:?}"
    );
    assert!(lists.iter().any(|c| c.query("scope") == Some("finished")
        && c.query("order_by") == Some("updated_at")
        && c.query("sort") == Some("asc")
        && c.query("per_page") == Some("100")));
}

#[tokio::test]
async fn pages_are_followed_by_next_page_and_by_link_alone() {
    for link_only in [false, true] {
        let fake = gitlab().await;
        fake.link_only(link_only);
        let app = setup(Db::Sqlite, &fake).await;
        watch(&app, ago(600)).await;
        // 250 feature-branch pipelines: ignored from the listing, without another call.
        for i in 0..250u64 {
            fake.add_pipeline(
                PROJECT,
                GlPipeline::new(
                    1000 + i,
                    "feature-x",
                    "failed",
                    ago(500) + TimeDelta::seconds(i as i64),
                ),
            );
        }
        failed(&fake, 200, "master", ago(520));
        failed(&fake, 201, "16-5-stable", ago(300));
        // A tag pipeline on the last page (only the tags listing says it is one).
        fake.add_pipeline(
            PROJECT,
            GlPipeline::new(202, "v16.5.0", "failed", ago(100)).tag(true),
        );
        // A failure whose only failed job is on the second page of its jobs.
        let mut jobs: Vec<GlJob> = (0..150u64)
            .map(|j| GlJob::new(50_000 + j, &format!("unit {j}"), "success"))
            .collect();
        jobs[0] = GlJob::new(50_000, "oldest", "failed");
        fake.set_jobs(PROJECT, 202, jobs);
        let report = CatchUp::default().run_once(&app.state).await;
        assert_eq!(report.stopped, None, "link_only {link_only}");
        let outcomes = report.outcomes(PROJECT);
        assert_eq!(outcomes.len(), 253, "link_only {link_only}");
        let notified: Vec<(u64, &str)> = outcomes
            .iter()
            .copied()
            .filter(|(_, o)| *o != "ignored")
            .collect();
        assert_eq!(
            notified,
            [(200, "opened"), (201, "opened"), (202, "opened")],
            "link_only {link_only}"
        );
        assert_eq!(
            fake.count(GlOp::GetPipeline),
            3,
            "only notified refs are read"
        );
        assert_eq!(fake.count(GlOp::ListJobs.pipeline(202)), 2);
        assert!(fake.count(GlOp::ListPipelines) >= 4);
        let slack = FakeSlack::start().await;
        let posted = deliver(&app, &slack).await;
        assert!(
            posted[2].body.to_string().contains("oldest"),
            "the culprit from the second page of jobs: {}",
            posted[2].body
        );
        // The mark followed the newest update read.
        let mark = app
            .store_scalar("SELECT caught_up_to FROM gitlab_projects")
            .await;
        assert!(mark >= ms(ago(100)) - 5 * 60 * 1000, "{mark}");
    }
}

#[tokio::test]
async fn rate_limits_are_waited_out_or_postpone_the_pass() {
    let fake = gitlab().await;
    let app = setup(Db::Sqlite, &fake).await;
    watch(&app, ago(60)).await;
    failed(&fake, 100, "master", ago(30));
    let mut catch_up = CatchUp::default();
    // A 429 asking for no wait is retried inside the call.
    fake.fail_next(GlOp::ListPipelines, 1, GlFailure::rate_limited(0));
    let report = catch_up.run_once(&app.state).await;
    assert_eq!(report.outcomes(PROJECT), [(100, "opened")]);
    assert_eq!(
        fake.calls_to(GlOp::ListPipelines)
            .iter()
            .filter(|c| c.status == 429)
            .count(),
        1
    );

    // A longer wait (here from `RateLimit-Reset` alone) stops the pass until it is over.
    failed(&fake, 101, "master", ago(20));
    let reset = Utc::now().timestamp() + 120;
    fake.fail_next(GlOp::GetProject, 1, GlFailure::rate_limited_until(reset));
    let report = catch_up.run_once(&app.state).await;
    assert_eq!(report.stopped, Some(Stopped::RateLimited));
    let wait = report.retry_after.expect("GitLab's wait");
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
    assert!(report.events.is_empty());
    let report = catch_up.run_once(&app.state).await;
    assert_eq!(report.outcomes(PROJECT), [(101, "still_failing")]);
    let m = app.state.metrics.render();
    assert!(
        m.contains(r#"armbot_catch_up_passes_total{outcome="rate_limited"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_wait_for_the_next_pass() {
    let fake = gitlab().await;
    let app = setup(Db::Sqlite, &fake).await;
    watch(&app, ago(60)).await;
    failed(&fake, 100, "master", ago(30));
    fake.fail_next(GlOp::GetPipeline, 2, GlFailure::status(502));
    let report = CatchUp::default().run_once(&app.state).await;
    assert_eq!(report.outcomes(PROJECT), [(100, "opened")], "retried");
    fake.fail_always(GlOp::GetProject, GlFailure::status(503));
    let report = CatchUp::default().run_once(&app.state).await;
    assert!(
        matches!(report.stopped, Some(Stopped::Unreachable(_))),
        "{report:?}"
    );
    assert_eq!(
        fake.calls_to(GlOp::GetProject)
            .iter()
            .filter(|c| c.status == 503)
            .count(),
        3,
        "bounded retries"
    );
}

on_both_engines! {
    async fn a_disabled_hook_is_warned_once_and_its_recovery_replied_in_the_thread(db: Db) {
        let fake = gitlab().await;
        let app = setup(db, &fake).await;
        watch(&app, ago(60)).await;
        fake.set_hooks(
            PROJECT,
            vec![
                GlHook::new(7, "https://other.example.com/hook"),
                GlHook::new(8, OUR_HOOK).temporarily_disabled(ago(-30)),
            ],
        );
        let mut catch_up = CatchUp::default();
        catch_up.run_once(&app.state).await;
        assert_eq!(pending(&app).await, 1, "one warning");
        // Later passes, a restart and another replica say nothing more.
        catch_up.run_once(&app.state).await;
        let replica = app
            .replica(gitlab_settings(&fake, FileSettings::default(), &[]))
            .await;
        CatchUp::default().run_once(&replica.state).await;
        fake.set_hooks(PROJECT, vec![GlHook::new(8, OUR_HOOK).disabled()]);
        catch_up.run_once(&app.state).await;
        assert_eq!(pending(&app).await, 1, "one warning per outage");
        let m = app.state.metrics.render();
        assert!(m.contains("armbot_gitlab_hooks_disabled 1"), "{m}");

        // Enabled again: GitLab may disable it again after a short backoff, so the recovery
        // waits for a second check.
        fake.set_hooks(PROJECT, vec![GlHook::new(8, OUR_HOOK)]);
        catch_up.run_once(&app.state).await;
        assert_eq!(pending(&app).await, 1);
        fake.set_hooks(PROJECT, vec![GlHook::new(8, OUR_HOOK).temporarily_disabled(ago(-5))]);
        catch_up.run_once(&app.state).await;
        assert_eq!(pending(&app).await, 1, "a flap is the same outage");
        fake.set_hooks(PROJECT, vec![GlHook::new(8, OUR_HOOK)]);
        catch_up.run_once(&app.state).await;
        catch_up.run_once(&app.state).await;
        assert_eq!(pending(&app).await, 2, "the recovery");
        catch_up.run_once(&app.state).await;
        assert_eq!(pending(&app).await, 2);

        let slack = FakeSlack::start().await;
        let posted = deliver(&app, &slack).await;
        assert_eq!(posted.len(), 2);
        let warning = posted[0].body.to_string();
        for words in ["GitLab has disabled the webhook", "gitlab-org/gitlab-test", "/-/hooks", "*Test*"] {
            assert!(warning.contains(words), "{words} in {warning}");
        }
        assert_eq!(posted[0].channel, "C0NOTIFY");
        assert_eq!(posted[1].thread_ts.as_deref(), Some(posted[0].ts.as_str()));
        assert!(posted[1].text.contains("works again"), "{}", posted[1].text);
        let m = app.state.metrics.render();
        assert!(m.contains("armbot_gitlab_hooks_disabled 0"), "{m}");
    }
}

on_both_engines! {
    async fn a_refused_token_is_warned_once_and_never_loops(db: Db) {
        let fake = gitlab().await;
        let app = setup(db, &fake).await;
        watch(&app, ago(60)).await;
        failed(&fake, 100, "master", ago(30));
        fake.require_token("glpat-the-new-one");
        let mut catch_up = CatchUp::default();
        for _ in 0..3 {
            let report = catch_up.run_once(&app.state).await;
            assert_eq!(report.stopped, Some(Stopped::Unauthorized(armbot::gitlab::api::GitlabError::Unauthorized)));
        }
        assert_eq!(fake.count(GlOp::GetProject), 3, "one call per pass, no retry loop");
        assert_eq!(pending(&app).await, 1, "one warning per outage");
        // A token without read_api: the same outage.
        fake.require_token(GL_TOKEN);
        fake.fail_always(GlOp::GetProject, GlFailure::insufficient_scope());
        let report = catch_up.run_once(&app.state).await;
        assert!(matches!(report.stopped, Some(Stopped::Unauthorized(_))));
        assert_eq!(pending(&app).await, 1);
        fake.clear_failures();
        let report = catch_up.run_once(&app.state).await;
        assert_eq!(report.outcomes(PROJECT), [(100, "opened")], "resumed where it stopped");
        // The warning, the incident's root, and the recovery in the warning's thread.
        let slack = FakeSlack::start().await;
        let posted = deliver(&app, &slack).await;
        assert_eq!(posted.len(), 3, "{posted:?}");
        assert!(posted[0].text.contains("GitLab refused the bot's API token"), "{}", posted[0].text);
        assert!(posted[0].body.to_string().contains("read_api"));
        assert!(posted[1].text.contains("#100 failed"), "{}", posted[1].text);
        assert_eq!(posted[2].thread_ts.as_deref(), Some(posted[0].ts.as_str()));
        assert!(posted[2].text.contains("accepts the bot's API token again"));
        assert!(!posted.iter().any(|m| m.body.to_string().contains(GL_TOKEN)));
    }
}

on_both_engines! {
    async fn a_project_gitlab_does_not_know_is_left_out(db: Db) {
        let fake = gitlab().await;
        let app = setup(db, &fake).await;
        watch(&app, ago(60)).await;
        let gone = SeenProject {
            project_id: 77,
            path: "gitlab-org/deleted".into(),
            web_url: "https://gitlab.example.com/gitlab-org/deleted".into(),
        };
        app.store.remember_project(&gone, ms(ago(60))).await.expect("remember");
        failed(&fake, 100, "master", ago(30));
        let mut catch_up = CatchUp::default();
        let report = catch_up.run_once(&app.state).await;
        assert_eq!(report.stopped, None);
        assert_eq!(report.skipped, [77]);
        assert_eq!(report.outcomes(PROJECT), [(100, "opened")]);
        assert_eq!(
            app.store_scalar("SELECT COUNT(*) FROM gitlab_projects WHERE problem = 'not_found'")
                .await,
            1
        );
        let report = catch_up.run_once(&app.state).await;
        assert_eq!(report.skipped, [77]);
        assert_eq!(fake.count(GlOp::ListPipelines.project(77)), 0);
    }
}

#[tokio::test]
async fn arm_status_shows_each_projects_webhook() {
    let fake = gitlab().await;
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    scw.set_zone(
        "fr-par-1",
        [ScwServer::new("fr-par-1", "srv-1", "runner-arm-1")],
    );
    let scw_uri = scw.uri();
    let app = app(gitlab_settings(
        &fake,
        FileSettings::default(),
        &[
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", "fr-par-1"),
            ("SCW_API_URL", &scw_uri),
        ],
    ))
    .await;
    watch(&app, ago(60)).await;
    fake.set_hooks(PROJECT, vec![GlHook::new(8, OUR_HOOK).disabled()]);
    CatchUp::default().run_once(&app.state).await;
    let calls_before = fake.calls().len();
    let slack = FakeSlack::start().await;
    let (status, _) = app
        .request(slash("status", &slack.response_url("commands/x")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let posted = wait_messages(&slack, 1).await;
    let body = posted[0].body.to_string();
    for words in [
        "GitLab webhooks and catch-up",
        "gitlab-org/gitlab-test",
        "webhook disabled by GitLab",
        "fr-par-1",
    ] {
        assert!(body.contains(words), "{words} in {body}");
    }
    assert!(
        posted[0]
            .text
            .contains("GitLab has disabled the webhook of 1 project")
    );
    assert_eq!(
        fake.calls().len(),
        calls_before,
        "/arm status never calls GitLab"
    );
}

#[tokio::test]
async fn the_status_section_says_what_each_state_means() {
    let fake = gitlab().await;
    let app = setup(Db::Sqlite, &fake).await;
    assert!(
        catch_up::status_section(&app.state, Utc::now())
            .await
            .is_some_and(|(blocks, _)| blocks[0].to_string().contains("no project watched yet"))
    );
    watch(&app, ago(60)).await;
    for (hooks, words) in [
        (vec![], "no project webhook points at the bot"),
        (
            vec![GlHook::new(1, OUR_HOOK).pipeline_events(false)],
            "does not send *Pipeline events*",
        ),
        (vec![GlHook::new(1, OUR_HOOK)], "webhook working"),
    ] {
        fake.set_hooks(PROJECT, hooks);
        CatchUp::default().run_once(&app.state).await;
        let (blocks, disabled) = catch_up::status_section(&app.state, Utc::now())
            .await
            .expect("configured");
        assert_eq!(disabled, 0);
        assert!(
            Value::Array(blocks.clone()).to_string().contains(words),
            "{words}: {blocks:?}"
        );
    }
    fake.fail_always(GlOp::ListHooks, GlFailure::forbidden());
    CatchUp::default().run_once(&app.state).await;
    let (blocks, _) = catch_up::status_section(&app.state, Utc::now())
        .await
        .expect("configured");
    assert!(
        Value::Array(blocks)
            .to_string()
            .contains("needs the Maintainer role")
    );
    // Without the GitLab API settings there is no section.
    let plain = app_on(Db::Sqlite, settings(&[])).await;
    assert!(
        catch_up::status_section(&plain.state, Utc::now())
            .await
            .is_none()
    );
}

/// One failed pipeline on master as GitLab sends it by webhook (the documented Pipeline
/// Hook), and as its API describes it (`FakeGitLab`), with the same values.
const SHA: &str = "3f2a0b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a";

fn same_pipeline_by_webhook(id: u64, status: &str, at: DateTime<Utc>) -> Value {
    let failed = status == "failed";
    let hook_time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": id, "iid": id % 1000, "name": "Nightly ARM packages", "ref": "master",
            "tag": false, "sha": SHA, "before_sha": "0000000000000000000000000000000000000000",
            "source": "schedule", "status": status,
            "detailed_status": if failed { "failed" } else { "passed" },
            "stages": ["build", "test"], "created_at": hook_time(at - TimeDelta::minutes(10)),
            "finished_at": hook_time(at), "duration": 540, "queued_duration": 60,
            "protected_ref": true, "variables": [],
            "url": format!("{WEB}/-/pipelines/{id}")
        },
        "merge_request": null,
        "user": {"id": 7, "name": "Jane Builder", "username": "jbuilder",
                 "avatar_url": "https://www.gravatar.com/avatar/x", "email": "[REDACTED]"},
        "project": {"id": PROJECT, "name": "gitlab-test", "description": null, "web_url": WEB,
                    "avatar_url": null, "git_ssh_url": "git@gitlab.example.com:gitlab-org/gitlab-test.git",
                    "git_http_url": format!("{WEB}.git"), "namespace": "gitlab-org",
                    "visibility_level": 0, "path_with_namespace": PATH,
                    "default_branch": "master", "ci_config_path": null},
        "commit": {"id": SHA, "message": "Build arm64 packages on the new builders\n\nDetails.\n",
                   "title": "Build arm64 packages on the new builders",
                   "timestamp": "2027-01-15T07:30:00+00:00",
                   "url": format!("{WEB}/-/commit/{SHA}"),
                   "author": {"name": "Jane Builder", "email": "jane@example.com"}},
        "builds": if failed { json!([
            {"id": id * 10, "stage": "build", "name": "compile arm64", "status": "success",
             "failure_reason": null, "allow_failure": false, "runner": null},
            {"id": id * 10 + 1, "stage": "test", "name": "rspec arm64", "status": "failed",
             "failure_reason": "runner_system_failure", "allow_failure": false,
             "runner": {"id": 32, "description": "arm-builder-7", "runner_type": "instance_type",
                        "active": true, "is_shared": true, "tags": ["arm64", "docker"]}},
            {"id": id * 10 + 2, "stage": "test", "name": "lint", "status": "failed",
             "failure_reason": "script_failure", "allow_failure": true, "runner": null}
        ]) } else { json!([
            {"id": id * 10, "stage": "build", "name": "compile arm64", "status": "success",
             "failure_reason": null, "allow_failure": false, "runner": null}
        ]) }
    })
}

fn same_pipeline_by_api(fake: &FakeGitLab, id: u64, status: &str, at: DateTime<Utc>) {
    let p = GlPipeline::new(id, "master", status, at)
        .name("Nightly ARM packages")
        .source("schedule")
        .sha(SHA)
        .user(Some(armbot_fakes::GlUser::new(
            7,
            "jbuilder",
            "Jane Builder",
        )))
        .commit(GlCommit {
            title: "Build arm64 packages on the new builders".into(),
            message: "Build arm64 packages on the new builders\n\nDetails.\n".into(),
            author_name: "Jane Builder".into(),
            author_email: "jane@example.com".into(),
            created_at: "2027-01-15T07:30:00+00:00".into(),
        });
    fake.add_pipeline(PROJECT, p);
    let jobs = if status == "failed" {
        vec![
            GlJob::new(id * 10, "compile arm64", "success").stage("build"),
            GlJob::new(id * 10 + 1, "rspec arm64", "failed")
                .reason("runner_system_failure")
                .runner(32, "arm-builder-7")
                .tags(&["arm64"]),
            GlJob::new(id * 10 + 2, "lint", "failed").allow_failure(true),
        ]
    } else {
        vec![GlJob::new(id * 10, "compile arm64", "success").stage("build")]
    };
    fake.set_jobs(PROJECT, id, jobs);
}

/// What Slack was sent: method, thread or not, text and blocks.
#[tokio::test]
async fn a_caught_up_notice_is_the_webhooks_notice() {
    let users = "[notify.users]\njbuilder = \"U0JANE\"\n";
    let file: FileSettings = toml::from_str(users).expect("settings");
    let (failed_at, fixed_at) = (ago(40), ago(15));

    // By webhook.
    let by_hook = app(settings_with_file(file, &[])).await;
    for (id, status, at) in [(900, "failed", failed_at), (901, "success", fixed_at)] {
        let payload = same_pipeline_by_webhook(id, status, at);
        assert_eq!(by_hook.hook(&payload).await, StatusCode::OK);
    }
    let slack_a = FakeSlack::start().await;
    let by_webhook = sent(&deliver(&by_hook, &slack_a).await);

    // By catch-up, after the same pipelines finished while no webhook came.
    let fake = gitlab().await;
    let file: FileSettings = toml::from_str(users).expect("settings");
    let by_api = app(gitlab_settings(&fake, file, &[])).await;
    watch(&by_api, ago(60)).await;
    same_pipeline_by_api(&fake, 900, "failed", failed_at);
    same_pipeline_by_api(&fake, 901, "success", fixed_at);
    let report = CatchUp::default().run_once(&by_api.state).await;
    assert_eq!(report.outcomes(PROJECT), [(900, "opened"), (901, "fixed")]);
    let slack_b = FakeSlack::start().await;
    let by_catch_up = sent(&deliver(&by_api, &slack_b).await);

    assert_eq!(by_catch_up, by_webhook);
    // Root, the mention of who broke it, the fixed reply, the root's update.
    assert_eq!(by_catch_up.len(), 4);
    insta::assert_json_snapshot!("caught_up_thread", by_catch_up);
}

#[tokio::test]
async fn without_a_public_url_the_webhook_is_not_checked() {
    let fake = gitlab().await;
    let app = app(gitlab_settings(
        &fake,
        FileSettings::default(),
        &[("ARMBOT_PUBLIC_URL", "")],
    ))
    .await;
    watch(&app, ago(60)).await;
    failed(&fake, 100, "master", ago(30));
    let report = CatchUp::default().run_once(&app.state).await;
    assert_eq!(report.outcomes(PROJECT), [(100, "opened")]);
    assert_eq!(fake.count(GlOp::ListHooks), 0);
    // Without the API settings nothing runs at all.
    let plain = app_on(Db::Sqlite, settings(&[])).await;
    assert_eq!(
        CatchUp::default().run_once(&plain.state).await,
        Default::default()
    );
}
