//! `POST /gitlab/webhook`: authentication, limits, which refs notify, the
//! incident thread, duplicates, stale events, escaping and console mode.

use crate::common::*;
use armbot::{config::FileSettings, gitlab::auth::sign};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use base64::Engine;
use serde_json::{Value, json};

async fn queued(app: &TestApp) -> i64 {
    app.store.outbox_count("pending").await.expect("count")
}

on_both_engines! {
    async fn token_paths(db: Db) {
        let app = app_on(db, settings(&[(
            "GITLAB_WEBHOOK_TOKEN",
            "old-token, gitlab-secret",
        )]))
        .await;
        let body = serde_json::to_vec(&pipeline(100, "master", "failed")).expect("json");
        let post = |token: Option<&str>| {
            let mut r = Request::post("/gitlab/webhook").header("x-gitlab-event", "Pipeline Hook");
            if let Some(t) = token {
                r = r.header("x-gitlab-token", t);
            }
            r.body(Body::from(body.clone())).expect("request")
        };
        assert_eq!(app.request(post(None)).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.request(post(Some("gitlab-secreT"))).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(queued(&app).await, 0, "a refused webhook stores nothing");
        let (status, body_text) = app.request(post(Some("old-token"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body_text.is_empty());
        assert_eq!(queued(&app).await, 1);
    }
}

fn signed_request(key: &[u8], id: &str, ts: i64, body: &[u8], tamper: bool) -> Request<Body> {
    let sig =
        base64::engine::general_purpose::STANDARD.encode(sign(key, id, &ts.to_string(), body));
    let mut sent = body.to_vec();
    if tamper {
        sent.extend_from_slice(b" ");
    }
    Request::post("/gitlab/webhook")
        .header("x-gitlab-event", "Pipeline Hook")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", format!("v1,{sig}"))
        .body(Body::from(sent))
        .expect("request")
}

on_both_engines! {
    async fn signed_deliveries(db: Db) {
        let key = [42u8; 32];
        let token = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let app = app_on(db, settings(&[
            ("GITLAB_WEBHOOK_TOKEN", ""),
            ("GITLAB_WEBHOOK_SIGNING_TOKEN", &token),
        ]))
        .await;
        let body = serde_json::to_vec(&pipeline(100, "master", "failed")).expect("json");
        let (status, _) = app
            .request(signed_request(&key, "msg_1", NOW, &body, true))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "tampered body");
        let (status, _) = app
            .request(signed_request(&key, "msg_1", NOW - 301, &body, false))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "stale timestamp");
        let (status, _) = app
            .request(signed_request(&[1u8; 32], "msg_1", NOW, &body, false))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong key");
        assert_eq!(queued(&app).await, 0);
        let (status, _) = app
            .request(signed_request(&key, "msg_1", NOW, &body, false))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(queued(&app).await, 1);
        // The same delivery again (GitLab's resend keeps webhook-id): nothing new.
        let (status, _) = app
            .request(signed_request(&key, "msg_1", NOW, &body, false))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(queued(&app).await, 1);
    }
}

on_both_engines! {
    async fn size_and_shape(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let huge = vec![b' '; 25 * 1024 * 1024 + 1];
        let req = Request::post("/gitlab/webhook")
            .header("x-gitlab-token", TOKEN)
            .body(Body::from(huge))
            .expect("request");
        assert_eq!(app.request(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);

        let req = |body: &str, event: &str| {
            Request::post("/gitlab/webhook")
                .header("x-gitlab-token", TOKEN)
                .header("x-gitlab-event", event)
                .body(Body::from(body.to_string()))
                .expect("request")
        };
        assert_eq!(
            app.request(req("{not json", "Pipeline Hook")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            app.request(req(
                r#"{"object_kind":"pipeline","object_attributes":{}}"#,
                "Pipeline Hook"
            ))
            .await
            .0,
            StatusCode::BAD_REQUEST
        );
        let (status, body) = app
            .request(req(r#"{"object_kind":"push"}"#, "Push Hook"))
            .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        let (status, _) = app
            .request(req(r#"{"object_kind":"build","build_id":1}"#, "Job Hook"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(queued(&app).await, 0);

        // A large but legal body (thousands of jobs) is accepted, well past Slack's 1 MB limit.
        let mut big = pipeline(99, "master", "failed");
        let job = big["builds"][1].clone();
        let builds: Vec<Value> = (0..12_000)
            .map(|i| {
                let mut j = job.clone();
                j["id"] = json!(10_000 + i);
                j["name"] = json!(format!("job-{i}"));
                j
            })
            .collect();
        big["builds"] = json!(builds);
        let big_bytes = serde_json::to_vec(&big).expect("json");
        assert!(big_bytes.len() > 5 * 1024 * 1024);
        // From a stranger, it is refused on its headers, before it is read.
        let stranger = Request::post("/gitlab/webhook")
            .header("x-gitlab-token", "not-the-token")
            .header("content-length", big_bytes.len())
            .body(Body::from(big_bytes))
            .expect("request");
        assert_eq!(app.request(stranger).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(queued(&app).await, 0);
        assert_eq!(app.hook(&big).await, StatusCode::OK);
        assert_eq!(queued(&app).await, 1);
    }
}

on_both_engines! {
    async fn which_refs_notify(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let cases: &[(&str, bool, bool)] = &[
            ("master", false, true),
            ("16-5-stable", false, true),
            ("16-5-stable-ee", false, true),
            ("16.5.1+ee.0", true, true),
            ("fix-arm-build", false, false),
            ("16-5-stable-backport", false, false),
        ];
        for (i, (r, tag, notify)) in cases.iter().enumerate() {
            let mut p = pipeline(200 + i as u64, r, "failed");
            p["object_attributes"]["tag"] = json!(tag);
            let before = queued(&app).await;
            assert_eq!(app.hook(&p).await, StatusCode::OK);
            assert_eq!(queued(&app).await - before, i64::from(*notify), "{r}");
        }
        // Merge request pipelines never notify, even for master's branch name.
        let mut mr = pipeline(300, "master", "failed");
        mr["object_attributes"]["source"] = json!("merge_request_event");
        let before = queued(&app).await;
        assert_eq!(app.hook(&mr).await, StatusCode::OK);
        assert_eq!(queued(&app).await, before);
        // Canceled and skipped are not failures.
        for (id, st) in [(301, "canceled"), (302, "skipped"), (303, "running")] {
            let p = pipeline(id, "main", st);
            assert_eq!(app.hook(&p).await, StatusCode::OK);
        }
        assert_eq!(queued(&app).await, before);
    }
}

on_both_engines! {
    /// The policy reads a borrowed subset of the payload before the jobs are
    /// parsed: it must decide as the full parse would, and odd but valid
    /// payloads must still be accepted.
    async fn policy_reads_the_head_first(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let raw = |body: &str, event: Option<&str>| {
            let mut r = Request::post("/gitlab/webhook").header("x-gitlab-token", TOKEN);
            if let Some(e) = event {
                r = r.header("x-gitlab-event", e);
            }
            r.body(Body::from(body.to_string())).expect("request")
        };

        // Another kind of event without the header: acknowledged, nothing queued.
        let (status, _) = app
            .request(raw(
                r#"{"object_kind":"push","ref":"refs/heads/master"}"#,
                None,
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        // A pipeline that is not JSON, or lacks the policy's fields, is refused.
        for body in [
            r#"{"object_kind":"pipeline","#,
            r#"{"object_kind":"pipeline","object_attributes":{"id":1,"ref":"master"},"project":{"id":1,"path_with_namespace":"g/p"}}"#,
            r#"{"object_kind":"pipeline","object_attributes":{"id":"1","ref":"master","status":"failed"},"project":{"id":1,"path_with_namespace":"g/p"}}"#,
        ] {
            assert_eq!(
                app.request(raw(body, None)).await.0,
                StatusCode::BAD_REQUEST,
                "{body}"
            );
        }
        // A watched pipeline whose jobs are malformed is refused by the full parse.
        let mut bad_jobs = pipeline(10, "master", "failed");
        bad_jobs["builds"][0]["id"] = json!("not a number");
        assert_eq!(app.hook(&bad_jobs).await, StatusCode::BAD_REQUEST);
        // An ignored one is decided before its jobs, which GitLab sends last, are read.
        let mut ignored = bad_jobs.clone();
        ignored["object_attributes"]["ref"] = json!("my-feature");
        let jobs = ignored
            .as_object_mut()
            .and_then(|o| o.remove("builds"))
            .expect("builds");
        let head = ignored.to_string();
        let jobs_last = format!(
            r#"{},"builds":{jobs}}}"#,
            head.strip_suffix('}').expect("an object")
        );
        assert_eq!(
            app.request(raw(&jobs_last, Some("Pipeline Hook"))).await.0,
            StatusCode::OK
        );
        // A merge request object of any shape marks a merge request pipeline.
        let mut mr = pipeline(11, "master", "failed");
        mr["merge_request"] = json!({"iid": "x", "url": 5});
        assert_eq!(app.hook(&mr).await, StatusCode::OK);
        assert_eq!(queued(&app).await, 0);

        // Escaped strings (not borrowable), null jobs, unused fields of odd types
        // and fields in an unusual order are all accepted.
        let odd = r#"{"builds":null,"project":{"path_with_namespace":"gitlab-org\/gitlab-test",
            "id":1,"default_branch":"ma\u0073ter","web_url":"https://gitlab.example.com/g/p","name":7},
            "object_attributes":{"status":"failed","ref":"ma\u0073ter","id":12,"iid":"three",
            "sha":null,"created_at":5,"detailed_status":{"x":1},"finished_at":"soon"},
            "merge_request":null,"object_kind":"pipeline","commit":{"id":"abc","author":"me"}}"#;
        assert_eq!(
            app.request(raw(odd, Some("Pipeline Hook"))).await.0,
            StatusCode::OK
        );
        assert_eq!(
            queued(&app).await,
            1,
            "the escaped ref is the default branch"
        );
    }
}

on_both_engines! {
    async fn project_allow_list(db: Db) {
        let file: FileSettings =
            toml::from_str("[notify]\nprojects = [\"gitlab-org/omnibus-gitlab\"]\n").expect("toml");
        let app = app_on(db, settings_with_file(file, &[])).await;
        assert_eq!(
            app.hook(&pipeline(1, "master", "failed")).await,
            StatusCode::OK
        );
        assert_eq!(queued(&app).await, 0);
        let mut p = pipeline(2, "master", "failed");
        p["project"]["path_with_namespace"] = json!("gitlab-org/omnibus-gitlab");
        app.hook(&p).await;
        assert_eq!(queued(&app).await, 1);
    }
}

on_both_engines! {
    async fn one_thread_per_broken_ref_then_fixed(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));

        app.hook(&pipeline(100, "master", "failed")).await;
        app.hook(&pipeline(99, "16-5-stable", "failed")).await; // another ref: its own thread
        drain(&mut worker).await;
        app.hook(&pipeline(101, "master", "failed")).await;
        let mut retried = pipeline(101, "master", "success"); // the same pipeline retried to green
        retried["object_attributes"]["finished_at"] = json!("2016-08-12 17:00:00 UTC");
        app.hook(&retried).await;
        drain(&mut worker).await;

        let posted = fake.messages();
        let roots: Vec<_> = posted
            .iter()
            .filter(|p| p.method == "chat.postMessage" && p.thread_ts.is_none())
            .collect();
        assert_eq!(roots.len(), 2, "one root per broken ref: {posted:#?}");
        let master_root = &roots[0].ts;
        let in_thread: Vec<_> = posted
            .iter()
            .filter(|p| p.thread_ts.as_ref() == Some(master_root))
            .collect();
        assert_eq!(in_thread.len(), 2, "still failing + fixed replies");
        assert!(
            in_thread[0].body["text"]
                .as_str()
                .is_some_and(|t| t.contains(" still failing: "))
        );
        assert!(
            in_thread[1].body["text"]
                .as_str()
                .is_some_and(|t| t.contains(" fixed by #"))
        );
        let updates: Vec<_> = posted
            .iter()
            .filter(|p| p.method == "chat.update")
            .collect();
        assert_eq!(updates.len(), 2);
        assert!(
            updates
                .iter()
                .all(|u| &u.ts == master_root && u.channel == "C0NOTIFY")
        );
        let last = serde_json::to_string(&updates[1].body).expect("json");
        assert!(last.contains("|#101> on retry (`<"), "{last}");
        assert!(last.contains("after 1 h 20 min; <"), "{last}");

        // Next failure after the fix opens a new thread.
        app.hook(&pipeline(102, "master", "failed")).await;
        drain(&mut worker).await;
        let roots = fake
            .messages()
            .iter()
            .filter(|p| p.method == "chat.postMessage" && p.thread_ts.is_none())
            .count();
        assert_eq!(roots, 3);
    }
}

on_both_engines! {
    async fn duplicates_and_stale_events_change_nothing(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let failed = pipeline(100, "master", "failed");
        app.hook_with(&failed, &[("idempotency-key", "k1")]).await;
        app.hook_with(&failed, &[("idempotency-key", "k1")]).await; // GitLab resend
        app.hook_with(&failed, &[("idempotency-key", "k2")]).await; // same event, new key
        assert_eq!(queued(&app).await, 1);

        app.hook(&pipeline(102, "master", "success")).await; // fixed: reply + update
        assert_eq!(queued(&app).await, 3);
        app.hook(&pipeline(101, "master", "failed")).await; // an older pipeline finishing late
        assert_eq!(queued(&app).await, 3, "stale event ignored");
        let notified = app.state.metrics.render();
        assert!(
            notified.contains(r#"armbot_webhooks_ignored_total{reason="stale"} 1"#),
            "{notified}"
        );
        assert!(
            notified.contains(r#"armbot_webhooks_ignored_total{reason="duplicate"} 2"#),
            "{notified}"
        );
    }
}

on_both_engines! {
    async fn allowed_failures_are_not_culprits_and_untrusted_text_is_escaped(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        let mut p = pipeline(100, "master", "failed");
        p["commit"]["title"] = json!("<!channel> see <https://evil.example|this>");
        p["builds"].as_array_mut().expect("builds").push(json!({
            "id": 390, "stage": "test", "name": "flaky-allowed", "status": "failed",
            "failure_reason": "script_failure", "allow_failure": true, "runner": null
        }));
        p["object_attributes"]["variables"] = json!([{"key": "SECRET", "value": "hunter2-value"}]);
        app.hook(&p).await;
        drain(&mut worker).await;
        let posted = fake.messages();
        assert_eq!(posted.len(), 1);
        let sent = serde_json::to_string(&posted[0].body).expect("json");
        assert!(
            !sent.contains("<!channel>") && !sent.contains("<https://evil.example"),
            "{sent}"
        );
        assert!(
            sent.contains("&lt;!channel&gt; see &lt;https://evil.example|this&gt;"),
            "{sent}"
        );
        assert!(
            !sent.contains("flaky-allowed"),
            "allowed failure listed: {sent}"
        );
        assert!(sent.contains("test-build"));
        assert!(!sent.contains("hunter2-value"), "pipeline variables leaked");
    }
}

on_both_engines! {
    async fn failed_pipeline_without_failed_jobs_says_so(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let (transport, out) = console();
        let mut worker = app.worker(transport);
        let mut p = pipeline(100, "master", "failed");
        p["builds"] = json!([]);
        app.hook(&p).await;
        drain(&mut worker).await;
        let printed = String::from_utf8(out.lock().expect("lock").clone()).expect("utf8");
        assert!(printed.contains("── armbot → C0NOTIFY"), "{printed}");
        assert!(printed.contains("GitLab listed no jobs"), "{printed}");
    }
}

on_both_engines! {
    async fn console_mode_prints_and_says_so(db: Db) {
        let s = settings(&[("ARMBOT_NOTIFY_CHANNEL", "")]);
        assert!(s.console_mode());
        assert_eq!(s.notify.channel, "console");
        let app = app_on(db, s).await;
        let (transport, out) = console();
        let mut worker = app.worker(transport);
        app.hook(&pipeline(100, "master", "failed")).await;
        drain(&mut worker).await;
        let printed = String::from_utf8(out.lock().expect("lock").clone()).expect("utf8");
        assert!(printed.contains("── armbot → console"), "{printed}");
        assert!(printed.contains("test-build>` — the script failed"), "{printed}");
    }
}

on_both_engines! {
    async fn child_pipelines_join_their_parents_incident(db: Db) {
        let app = app_on(db, settings(&[])).await;
        app.hook(&pipeline(100, "master", "failed")).await;
        let mut child = pipeline(105, "master", "failed");
        child["object_attributes"]["source"] = json!("parent_pipeline");
        child["source_pipeline"] = json!({"project": {"id": 1}, "pipeline_id": 100, "job_id": 9});
        app.hook(&child).await;
        // One root, then a reply and an update for the child's failure.
        assert_eq!(queued(&app).await, 3);
        // The child id is higher, but the parent's retry is not stale.
        let mut parent_retry = pipeline(100, "master", "success");
        parent_retry["object_attributes"]["finished_at"] = json!("2016-08-12 16:00:00 UTC");
        app.hook(&parent_retry).await;
        assert_eq!(queued(&app).await, 5);
    }
}
