//! Failure notices on payloads shaped like real GitLab traffic (GitLab 2016 to 16.x, relays
//! that trim fields, hostile names): what is decided, what is rendered, and what the worker does
//! when Slack still refuses a message's blocks. Fixtures are built from GitLab's documented
//! fields (`tests/data/gitlab/pipeline-hook-doc-example.json`).

use crate::common::*;
use armbot::{
    gitlab::{PipelineHook, payload},
    notify::{policy, render},
    slack::{Message, mrkdwn},
};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

async fn queued(app: &TestApp) -> i64 {
    app.store.outbox_count("pending").await.expect("count")
}

fn hook(v: &Value) -> PipelineHook<'static> {
    PipelineHook::deserialize(v.clone()).expect("hook")
}

fn failure(v: &Value) -> Message {
    let s = settings(&[]);
    render::root_opened(&render::Failure::new(&hook(v), &s.notify))
}

fn all_text(m: &Message) -> String {
    serde_json::to_string(m).expect("json")
}

/// What GitLab 16 sends just before `canceled`: `failed`, labelled canceled, every job canceled.
fn cancel_race(id: u64) -> Value {
    let mut p = pipeline(id, "master", "failed");
    p["object_attributes"]["detailed_status"] = json!("canceled");
    for b in p["builds"].as_array_mut().expect("builds") {
        if b["status"] != "success" {
            b["status"] = json!("canceled");
            b["failure_reason"] = Value::Null;
        }
    }
    p
}

#[tokio::test]
async fn a_cancel_race_opens_nothing() {
    let app = app(settings(&[])).await;
    assert_eq!(app.hook(&cancel_race(500)).await, StatusCode::OK);
    // The same race without the label: no job failed, some were canceled.
    let mut unlabelled = cancel_race(501);
    unlabelled["object_attributes"]["detailed_status"] = json!("failed");
    assert_eq!(app.hook(&unlabelled).await, StatusCode::OK);
    let mut canceled = cancel_race(502);
    canceled["object_attributes"]["status"] = json!("canceled");
    assert_eq!(app.hook(&canceled).await, StatusCode::OK);
    assert_eq!(queued(&app).await, 0, "a cancellation opened an incident");
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains(
            r#"armbot_webhooks_ignored_total{reason="canceled (reported failed while canceling)"} 2"#
        ),
        "{metrics}"
    );
    // A real failure among canceled jobs still opens one.
    let mut real = cancel_race(503);
    real["object_attributes"]["detailed_status"] = json!("failed");
    real["builds"][0]["status"] = json!("failed");
    real["builds"][0]["failure_reason"] = json!("script_failure");
    assert_eq!(app.hook(&real).await, StatusCode::OK);
    assert_eq!(queued(&app).await, 1);
}

/// A payload as GitLab sent it before 2017: no `project.id`, no `detailed_status`, no
/// pipeline `url`, commits without `title`.
fn before_2017(id: u64, status: &str) -> Value {
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": id, "ref": "master", "tag": false, "sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
            "before_sha": "0000000000000000000000000000000000000000", "status": status,
            "stages": ["test"], "created_at": "2016-08-12 15:23:28 UTC",
            "finished_at": format!("2016-08-12 15:{:02}:00 UTC", id % 60), "duration": 63
        },
        "user": {"name": "Ada Lovelace", "username": "ada", "avatar_url": "http://example.com/a.png"},
        "project": {
            "name": "Gitlab Test", "description": "Atque in sunt eos similique dolores voluptatem.",
            "web_url": "http://gitlab.example.com/gitlab-org/gitlab-test",
            "path_with_namespace": "gitlab-org/gitlab-test", "default_branch": "master"
        },
        "commit": {
            "id": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "message": "Fix the ARM image\n\nLonger explanation.",
            "timestamp": "2016-08-12T17:23:21+02:00",
            "url": "http://example.com/gitlab-org/gitlab-test/commit/bcbb5ec396a2c0f828686f14fac9b80b780504f2"
        },
        "builds": [{"id": 380, "stage": "test", "name": "rspec", "status": if status == "failed" { "failed" } else { "success" },
                    "created_at": "2016-08-12 15:23:28 UTC", "when": "on_success", "manual": false,
                    "user": {"name": "Ada Lovelace", "username": "ada"}, "runner": null}]
    })
}

#[tokio::test]
async fn payloads_from_before_project_ids_open_and_close_incidents() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let mut worker = app.worker(slack_transport(&fake));
    assert_eq!(app.hook(&before_2017(10, "failed")).await, StatusCode::OK);
    assert_eq!(app.hook(&before_2017(11, "success")).await, StatusCode::OK);
    // Only a web_url (a relay that trimmed the rest): the same project.
    let mut trimmed = before_2017(12, "failed");
    trimmed["project"] = json!({"web_url": "http://gitlab.example.com/gitlab-org/gitlab-test"});
    trimmed
        .as_object_mut()
        .expect("object")
        .remove("object_kind");
    assert_eq!(app.hook(&trimmed).await, StatusCode::OK);
    drain(&mut worker).await;
    let posted = fake.messages();
    let roots: Vec<_> = posted
        .iter()
        .filter(|p| p.method == "chat.postMessage" && p.thread_ts.is_none())
        .collect();
    assert_eq!(roots.len(), 2, "{posted:#?}");
    let fixed = posted
        .iter()
        .find(|p| {
            p.body["text"]
                .as_str()
                .is_some_and(|t| t.contains(" fixed by #"))
        })
        .expect("a fixed reply");
    // The fixed reply's title comes from the message, as the failure notice's does.
    assert!(all_text(&Message::new("", vec![fixed.body.clone()])).contains("Fix the ARM image"));
    let root = serde_json::to_string(&roots[0].body).expect("json");
    assert!(root.contains("Fix the ARM image"), "{root}");
    // Made from web_url: the pipeline page of a payload without `url`.
    assert!(
        root.contains(
            "http://gitlab.example.com/gitlab-org/gitlab-test/-/pipelines/10/failures|#10"
        ),
        "{root}"
    );
}

#[tokio::test]
async fn fields_an_ignored_event_does_not_need_never_fail_it() {
    let app = app(settings(&[])).await;
    let odd = [
        json!({"object_attributes": {"id": 1, "ref": "master", "status": "running"}}),
        json!({"object_kind": "pipeline", "object_attributes": {"id": 1, "ref": "f", "status": "failed",
               "tag": null, "duration": "x"}, "project": {"id": "seven"}, "user": "someone",
               "commit": null, "builds": null}),
        json!({"object_kind": "pipeline", "object_attributes": {"id": 2, "ref": "master", "status": "failed"},
               "project": {"name": "nameless"}}),
    ];
    for body in &odd {
        assert_eq!(app.hook(body).await, StatusCode::OK, "{body}");
    }
    assert_eq!(queued(&app).await, 0);
}

#[test]
fn long_lists_are_cut_by_whole_lines_and_say_how_many_more() {
    let mut p = pipeline(40, "master", "failed");
    let builds: Vec<Value> = (0..300)
        .map(|i| {
            json!({"id": 1000 + i, "stage": "pack&age", "status": "failed",
                   "name": format!("{}-{i} & <more>", "漢字😀".repeat(30)),
                   "failure_reason": "runner_system_failure", "allow_failure": false,
                   "runner": {"id": 7, "description": "d&d ".repeat(40), "tags": ["arm64"]}})
        })
        .collect();
    p["builds"] = json!(builds);
    let m = failure(&p);
    assert_eq!(m.problems(), Vec::<String>::new());
    {
        let text = m.blocks[0]["text"]["text"].as_str().expect("section");
        let shown = text.lines().filter(|l| l.starts_with('•')).count();
        assert!(shown >= 1, "{text}");
        assert!(
            text.contains(&format!("…and {} more", 300 - shown)),
            "the count was lost: {text}"
        );
        // Each job line is whole: its link closed, its name capped.
        for line in text.lines().filter(|l| l.starts_with('•')) {
            assert_eq!(mrkdwn::problem(line), None, "{line}");
            assert!(line.contains(">`"), "{line}");
        }
    }
    let jobs = m.blocks[0]["text"]["text"].as_str().expect("jobs");
    assert!(
        jobs.ends_with("`/arm status` shows whether any are stuck."),
        "{jobs}"
    );
}

#[test]
fn refs_are_encoded_in_links() {
    let mut p = pipeline(41, "release/1.0#rc 2?x=%41", "failed");
    p["project"]["default_branch"] = json!("release/1.0#rc 2?x=%41");
    let text = all_text(&failure(&p));
    assert!(
        text.contains("/-/tree/release/1.0%23rc%202%3Fx%3D%2541|release/1.0#rc 2?x=%41>"),
        "{text}"
    );
    let mut tag = pipeline(42, "v1.0+ee#1", "failed");
    tag["object_attributes"]["tag"] = json!(true);
    let text = all_text(&failure(&tag));
    assert!(text.contains("/-/tags/v1.0%2Bee%231|v1.0+ee#1>"), "{text}");
}

#[test]
fn job_names_show_literally() {
    let mut p = pipeline(43, "master", "failed");
    p["builds"][2]["name"] = json!("*bold* _it_ ~st~ `tick`");
    let text = failure(&p).blocks[0]["text"]["text"]
        .as_str()
        .expect("jobs")
        .to_string();
    assert!(
        text.contains("• `<https://gitlab.example.com/gitlab-org/gitlab-test/-/jobs/378|*bold* _it_ ~st~ ˋtickˋ>` — the script failed"),
        "{text}"
    );
}

#[test]
fn a_runner_without_description_is_shown_by_id_or_left_out() {
    let mut p = pipeline(44, "master", "failed");
    p["builds"][2]["failure_reason"] = json!("runner_system_failure");
    p["builds"][2]["runner"] = json!({"id": 7, "description": "", "tags": []});
    let text = all_text(&failure(&p));
    assert!(
        text.contains("runner system failure on runner #7: *infrastructure"),
        "{text}"
    );
    assert!(!text.contains("``"), "{text}");
    p["builds"][2]["runner"] = json!({"description": null});
    let text = all_text(&failure(&p));
    assert!(
        text.contains("test-build>` — runner system failure: *infrastructure"),
        "{text}"
    );
    assert!(!text.contains(" on runner"), "{text}");
}

#[test]
fn the_fixed_reply_takes_its_title_from_the_message_when_there_is_no_title() {
    let mut p = pipeline(45, "master", "success");
    p["commit"]["title"] = Value::Null;
    p["commit"]["message"] = json!("Repair the runner cache\n\nBecause.");
    let text = all_text(&render::FixedNotice::new(&hook(&p)).reply(60));
    assert!(
        text.contains("` Repair the runner cache · Administrator (root)"),
        "{text}"
    );
}

#[test]
fn over_long_fields_are_capped_and_long_urls_left_unlinked() {
    let mut p = pipeline(46, "master", "failed");
    let long = "x".repeat(10_000);
    p["user"]["name"] = json!(long);
    p["user"]["username"] = json!(long);
    p["project"]["path_with_namespace"] = json!(format!("g/{long}"));
    p["object_attributes"]["url"] = json!(format!("https://gitlab.example.com/{long}"));
    p["object_attributes"]["name"] = json!(long);
    p["commit"]["title"] = json!(long);
    let body = failure(&p);
    assert_eq!(body.problems(), Vec::<String>::new());
    let text = all_text(&body);
    assert!(!text.contains(&"x".repeat(200)), "a field was not capped");
    assert!(
        text.contains("pipeline #46 failed"),
        "the long URL stayed a link: {text}"
    );
    let h = hook(&p);
    let f = render::Failure::new(&h, &settings(&[]).notify);
    let since = chrono::DateTime::from_timestamp(NOW, 0).expect("time");
    assert_eq!(
        render::root_broken(&f, since, 2, 45).problems(),
        Vec::<String>::new()
    );
    assert_eq!(
        render::still_failing(Some(&f.kept()), &f).problems(),
        Vec::<String>::new()
    );
    let fixed = render::FixedNotice::new(&h);
    assert_eq!(fixed.reply(5).problems(), Vec::<String>::new());
    assert_eq!(fixed.root(5, 45, 46, 2).problems(), Vec::<String>::new());
}

#[test]
fn bidi_controls_never_reach_slack() {
    let mut p = pipeline(47, "master", "failed");
    p["builds"][2]["name"] = json!("build\u{202e}gnp.exe");
    p["commit"]["title"] = json!("fix \u{2066}thing\u{2069}\u{200d}");
    p["user"]["name"] = json!("Eve\u{202b}");
    let text = all_text(&failure(&p));
    for c in ['\u{202e}', '\u{2066}', '\u{2069}', '\u{200d}', '\u{202b}'] {
        assert!(!text.contains(c), "U+{:04X} in {text}", c as u32);
    }
    assert!(text.contains("buildgnp.exe"), "{text}");
}

#[test]
fn the_render_command_and_the_webhook_decide_alike() {
    let s = settings(&[]);
    let race = serde_json::to_vec(&cancel_race(48)).expect("json");
    let parsed = payload::parse_pipeline(&race, |_| true).expect("parse");
    assert_eq!(
        policy::decide(&parsed.hook, &s.notify),
        policy::Decision::Ignore(policy::CANCELED_WHILE_FAILED)
    );
}

#[tokio::test]
async fn when_slack_refuses_the_blocks_the_notice_goes_out_as_text() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let mut worker = app.worker(slack_transport(&fake));
    app.hook(&pipeline(60, "master", "failed")).await;
    fake.fail_next("chat.postMessage", 1, SlackFailure::error("invalid_blocks"));
    drain(&mut worker).await;
    assert_eq!(fake.count("chat.postMessage"), 2);
    let posted = fake.messages();
    assert_eq!(posted.len(), 1, "{posted:#?}");
    let body = &posted[0].body;
    assert!(body.get("blocks").is_none(), "{body}");
    let text = body["text"].as_str().expect("text");
    assert!(text.contains(":red_circle: *<"), "{text}");
    assert!(text.contains("test-build>` — the script failed"), "{text}");
    assert_eq!(app.store.outbox_count("delivered").await.expect("count"), 1);

    // An update refused the same way replaces the root's blocks with the text.
    app.hook(&pipeline(61, "master", "failed")).await;
    fake.fail_next("chat.update", 1, SlackFailure::error("invalid_blocks"));
    drain(&mut worker).await;
    let updates: Vec<_> = fake
        .messages()
        .into_iter()
        .filter(|p| p.method == "chat.update")
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].body["blocks"], json!([]));
    let text = updates[0].body["text"].as_str().expect("text");
    assert!(text.contains("2 failed pipelines"), "{text}");

    // Refused with blocks and then as text: given up, not retried forever.
    app.hook(&pipeline(62, "16-5-stable", "failed")).await;
    fake.fail_next("chat.postMessage", 2, SlackFailure::error("invalid_blocks"));
    drain(&mut worker).await;
    assert_eq!(app.store.outbox_count("failed").await.expect("count"), 1);
    assert_eq!(fake.count("chat.postMessage"), 5);
}
