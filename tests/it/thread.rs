//! The failure thread as the channel reads it, end to end (webhook → store → worker → the
//! fake Slack): the root says what broke first, replies say what changed, the root follows
//! the latest failure and collapses to one line once fixed. Snapshots show every message.

use crate::common::*;
use armbot::{
    gitlab::PipelineHook,
    notify::render::{self, Failure, FixedNotice},
};
use armbot_fakes::slack::FakeSlack;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

fn job(id: u64, name: &str, status: &str, reason: Option<&str>) -> Value {
    let mut b = json!({"id": id, "stage": "package", "name": name, "status": status,
                       "allow_failure": false, "failure_reason": reason});
    if reason == Some("runner_system_failure") {
        b["runner"] = json!({"id": 7, "description": "arm-runner-manager-1", "tags": ["arm64"], "active": true});
    }
    b
}

/// omnibus-gitlab's master with the given jobs.
fn omnibus(id: u64, status: &str, jobs: Vec<Value>) -> Value {
    let mut p = pipeline(id, "master", status);
    let web = "https://gitlab.example.com/gitlab-org/omnibus-gitlab";
    p["project"]["path_with_namespace"] = json!("gitlab-org/omnibus-gitlab");
    p["project"]["web_url"] = json!(web);
    p["object_attributes"]["url"] = json!(format!("{web}/-/pipelines/{id}"));
    p["object_attributes"]["duration"] = json!(3725);
    p["commit"]["id"] = json!(format!("{id:040x}"));
    p["commit"]["url"] = json!(format!("{web}/-/commit/{id:040x}"));
    p["commit"]["title"] = json!(format!("Change number {id}"));
    p["user"] = json!({"id": 9, "name": "Dana", "username": "dana"});
    p["builds"] = json!(jobs);
    p
}

fn texts(m: &Value) -> String {
    serde_json::to_string(&m["blocks"]).expect("json")
}

#[tokio::test]
async fn a_thread_tells_the_story_of_a_broken_ref() {
    let app = app(settings(&[])).await;
    let slack = FakeSlack::start().await;
    let mut worker = app.worker(slack_transport(&slack));
    let pi = "Raspberry-Pi-2-Bullseye";
    let ubuntu = "Ubuntu-22.04-arm64";
    let debian = "Debian-12-arm64";

    let first = omnibus(
        31,
        "failed",
        vec![
            job(301, pi, "failed", Some("runner_system_failure")),
            job(302, ubuntu, "failed", Some("script_failure")),
            job(303, debian, "success", None),
        ],
    );
    let second = omnibus(
        32,
        "failed",
        vec![
            job(311, pi, "success", None),
            job(312, ubuntu, "failed", Some("script_failure")),
            job(313, debian, "failed", Some("script_failure")),
        ],
    );
    let fixed = omnibus(33, "success", vec![job(321, ubuntu, "success", None)]);
    for p in [&first, &second, &fixed] {
        assert_eq!(app.hook(p).await, StatusCode::OK);
        drain(&mut worker).await;
    }
    let thread = sent(&slack.messages());
    // Root; reply and update for #32; reply and update for #33.
    assert_eq!(thread.len(), 5, "{thread:#?}");

    let root = &thread[0];
    assert_eq!(
        root["text"],
        "omnibus-gitlab master #31 failed: Raspberry-Pi-2-Bullseye (runner system failure), \
         Ubuntu-22.04-arm64 (script)"
    );
    let root_blocks = texts(root);
    assert!(root_blocks.starts_with(r#"[{"text":{"text":":red_circle: *<https://gitlab.example.com/gitlab-org/omnibus-gitlab|omnibus-gitlab>*"#), "{root_blocks}");
    assert!(!root_blocks.contains("Broken since"), "{root_blocks}");
    assert!(
        !root_blocks.contains("Pipeline for branch"),
        "{root_blocks}"
    );
    assert!(
        root_blocks
            .contains("on runner `arm-runner-manager-1` (#7): *infrastructure, not the code*"),
        "{root_blocks}"
    );
    assert_eq!(root_blocks.matches(":red_circle:").count(), 1);
    assert!(
        root_blocks.contains("Dana · ran 1 h 2 min"),
        "{root_blocks}"
    );

    let again = &thread[1];
    assert!(again["in_thread"].as_bool().unwrap_or(false));
    assert_eq!(
        again["text"],
        "omnibus-gitlab master #32 still failing: Ubuntu-22.04-arm64 (script), Debian-12-arm64 (script)"
    );
    let again_blocks = texts(again);
    for part in [
        "Failed again: `<https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/jobs/312|Ubuntu-22.04-arm64>`",
        "Newly failing: `<https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/jobs/313|Debian-12-arm64>`",
        "Now passing: `Raspberry-Pi-2-Bullseye`",
        "Change number 32",
    ] {
        assert!(again_blocks.contains(part), "{part}: {again_blocks}");
    }

    // The root follows the latest failure, and only now has its status line.
    let updated = &thread[2];
    assert_eq!(updated["method"], "chat.update");
    let updated_blocks = texts(updated);
    assert!(
        updated_blocks.contains("pipelines/32/failures|#32> failed"),
        "{updated_blocks}"
    );
    assert!(
        !updated_blocks.contains("jobs/301"),
        "stale jobs: {updated_blocks}"
    );
    assert!(updated_blocks.contains("2 failed pipelines · first failed: <https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/pipelines/31|#31>"), "{updated_blocks}");
    // Since when, in each reader's own time zone.
    assert!(
        updated_blocks.contains(
            "Broken since <!date^1471015860^{date_short_pretty} at {time}|2016-08-12 15:31 UTC>"
        ),
        "{updated_blocks}"
    );

    let fixed_reply = &thread[3];
    assert_eq!(
        fixed_reply["text"],
        "omnibus-gitlab master fixed by #33 after 2 min"
    );
    assert!(texts(fixed_reply).contains("Change number 33"));

    let fixed_root = &thread[4];
    assert_eq!(fixed_root["method"], "chat.update");
    assert_eq!(
        fixed_root["text"],
        "omnibus-gitlab master fixed by #33 after 2 min"
    );
    let fixed_blocks = texts(fixed_root);
    assert_eq!(fixed_root["blocks"].as_array().map(Vec::len), Some(1));
    assert!(fixed_blocks.contains("fixed by <https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/pipelines/33|#33> (`<https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/commit/0000000000000000000000000000000000000021|00000000>`) after 2 min; <https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/pipelines/31|#31>–<https://gitlab.example.com/gitlab-org/omnibus-gitlab/-/pipelines/32|#32> failed · details in thread"), "{fixed_blocks}");
    assert!(!fixed_blocks.contains("Fixed: "), "{fixed_blocks}");

    insta::assert_json_snapshot!("failure_thread", thread);
}

fn hook(v: &Value) -> PipelineHook<'static> {
    PipelineHook::deserialize(v.clone()).expect("hook")
}

fn failure(v: &Value) -> Failure {
    Failure::new(&hook(v), &settings(&[]).notify)
}

fn blocks_of(m: &armbot::slack::Message) -> String {
    serde_json::to_string(&m.blocks).expect("json")
}

#[test]
fn noise_is_left_out_and_names_are_kept_when_they_say_more() {
    let mut p = pipeline(40, "master", "failed");
    p["object_attributes"]["name"] = json!("Nightly ARM packages");
    let named = render::root_opened(&failure(&p));
    // A name someone chose is worth showing; the username differs from the name here.
    assert!(
        blocks_of(&named).contains("Administrator (root) · _Nightly ARM packages_ · ran 1 min 3 s"),
        "{}",
        blocks_of(&named)
    );
    p["object_attributes"]["name"] = json!("Pipeline for branch: master");
    p["user"]["name"] = json!("Root");
    let plain = blocks_of(&render::root_opened(&failure(&p)));
    assert!(
        !plain.contains("Pipeline for branch") && !plain.contains("(root)"),
        "{plain}"
    );
    // The commit's message stands in for a missing title.
    p["commit"]["title"] = Value::Null;
    p["commit"]["message"] = json!("\nRepair the runner cache\n\nBecause.");
    assert!(
        blocks_of(&render::root_opened(&failure(&p))).contains("` Repair the runner cache · Root")
    );
}

#[test]
fn a_pipeline_without_failed_jobs_says_why_as_far_as_it_can_tell() {
    let mut canceled = pipeline(41, "master", "failed");
    for b in canceled["builds"].as_array_mut().expect("builds") {
        b["status"] = json!("canceled");
        b["failure_reason"] = Value::Null;
    }
    let text = blocks_of(&render::root_opened(&failure(&canceled)));
    assert!(text.contains("No job failed; 5 were canceled."), "{text}");
    assert!(!text.contains("configuration"), "{text}");
    // Pipelines/41, not its failures page: there are no failures to list.
    assert!(text.contains("pipelines/41|#41>"), "{text}");

    let mut empty = pipeline(42, "master", "failed");
    empty["builds"] = json!([]);
    let text = blocks_of(&render::root_opened(&failure(&empty)));
    assert!(text.contains("CI configuration error"), "{text}");
    let reply = render::still_failing(Some(&failure(&canceled).kept()), &failure(&empty));
    assert!(blocks_of(&reply).contains("CI configuration error"));
}

#[test]
fn many_failed_jobs_end_with_a_link_to_the_failures_page() {
    let mut p = pipeline(43, "master", "failed");
    let jobs: Vec<Value> = (0..14)
        .map(|i| {
            job(
                1000 + i,
                &format!("job-{i}"),
                "failed",
                Some("script_failure"),
            )
        })
        .collect();
    p["builds"] = json!(jobs);
    let f = failure(&p);
    let root = render::root_opened(&f);
    let text = blocks_of(&root);
    assert!(
        text.contains("job-9") && !text.contains("job-10|"),
        "{text}"
    );
    assert!(
        text.contains("<https://gitlab.example.com/gitlab-org/gitlab-test/-/pipelines/43/failures|…and 4 more>"),
        "{text}"
    );
    assert!(
        root.text.ends_with("job-4 (script), and 9 more"),
        "{}",
        root.text
    );
    // A reply names a few and links the rest the same way.
    let reply = blocks_of(&render::still_failing(Some(&f.kept()), &f));
    assert!(
        reply.contains("pipelines/43/failures|…and 8 more>"),
        "{reply}"
    );
}

#[test]
fn a_fixed_root_names_the_single_failure_and_counts_a_long_run() {
    let fixed = FixedNotice::new(&hook(&pipeline(50, "16-5-stable", "success")));
    let one = fixed.root(10_740, 49, 49, 1);
    assert_eq!(
        one.text,
        "gitlab-test 16-5-stable fixed by #50 after 2 h 59 min"
    );
    let line = blocks_of(&one);
    assert!(line.contains("after 2 h 59 min; <https://gitlab.example.com/gitlab-org/gitlab-test/-/pipelines/49|#49> failed · details in thread"), "{line}");
    let many = blocks_of(&fixed.root(10_740, 40, 49, 6));
    assert!(many.contains("|#40>–<"), "{many}");
    assert!(
        many.contains("|#49> failed (6 pipelines) · details"),
        "{many}"
    );
    insta::assert_json_snapshot!("fixed_root_single", one);
}

#[tokio::test]
async fn an_incident_opened_by_an_older_version_still_gets_replies_and_updates() {
    let app = app(settings(&[])).await;
    let slack = FakeSlack::start().await;
    let mut worker = app.worker(slack_transport(&slack));
    assert_eq!(
        app.hook(&pipeline(70, "master", "failed")).await,
        StatusCode::OK
    );
    drain(&mut worker).await;
    // Before this version an incident kept its first failure's rendered message.
    app.sql(r#"UPDATE incidents SET root_body = '{"text":"Pipeline #70 failed","blocks":[]}'"#)
        .await;
    assert_eq!(
        app.hook(&pipeline(71, "master", "failed")).await,
        StatusCode::OK
    );
    drain(&mut worker).await;
    let thread = sent(&slack.messages());
    assert_eq!(thread.len(), 3, "{thread:#?}");
    // Nothing to compare with: the reply lists what failed.
    let reply = texts(&thread[1]);
    assert!(
        reply.contains(
            "Failed: `<https://gitlab.example.com/gitlab-org/gitlab-test/-/jobs/378|test-build>`"
        ),
        "{reply}"
    );
    assert!(texts(&thread[2]).contains(
        "first failed: <https://gitlab.example.com/gitlab-org/gitlab-test/-/pipelines/70|#70>"
    ));
    // The incident now keeps the latest failure the new way.
    let stored: Vec<String> = app.db.column("SELECT root_body FROM incidents").await;
    assert!(stored[0].contains("\"pipeline\":71"), "{stored:?}");
}

#[test]
fn a_commit_without_a_url_is_linked_from_the_project() {
    let mut p = pipeline(52, "master", "success");
    p["commit"]["url"] = Value::Null;
    let reply = blocks_of(&FixedNotice::new(&hook(&p)).reply(60));
    assert!(
        reply.contains("`<https://gitlab.example.com/gitlab-org/gitlab-test/-/commit/bcbb5ec396a2c0f828686f14fac9b80b780504f2|bcbb5ec3>` test"),
        "{reply}"
    );
    p["commit"] = Value::Null;
    let reply = blocks_of(&FixedNotice::new(&hook(&p)).reply(60));
    assert!(!reply.contains("/commit/"), "{reply}");
}
