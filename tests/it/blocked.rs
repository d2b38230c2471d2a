//! A message Slack refuses until an operator acts (the bot is not in the channel, the token is
//! wrong) waits, in order, with its thread behind it, and is delivered once the operator fixes
//! it; a root that can truly never be posted does not silence its ref; a store file deleted
//! underneath the service makes it unready and refuse webhooks rather than accept them into a
//! file that will vanish.

use crate::common::*;
use axum::http::StatusCode;

on_both_engines! {
    async fn a_channel_the_bot_is_not_in_holds_its_notices_until_it_is_invited(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        fake.fail_always("chat.postMessage", SlackFailure::error("not_in_channel"));
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        app.hook(&pipeline(101, "master", "failed")).await;
        let mut fixed = pipeline(102, "master", "success");
        fixed["object_attributes"]["finished_at"] = serde_json::json!("2016-08-12 17:00:00 UTC");
        app.hook(&fixed).await;
        drain(&mut worker).await;
        assert!(fake.messages().is_empty());
        assert_eq!(app.store.outbox_count("failed").await.expect("count"), 0, "nothing given up");
        assert_eq!(app.store.outbox_count("pending").await.expect("count"), 5);
        let metrics = app.request(get("/metrics")).await.1;
        assert!(
            metrics.contains(r#"armbot_outbox_blocked{channel="C0NOTIFY",reason="not_in_channel"} 1"#),
            "{metrics}"
        );
        let (status, ready) = app.request(get("/readyz")).await;
        assert_eq!(status, StatusCode::OK, "a blocked channel does not make the bot unready");
        assert!(ready.contains("C0NOTIFY waits for an operator"), "{ready}");
        // Retried later, not at once: nothing was due in the drain above after the first try.
        assert_eq!(fake.count("chat.postMessage"), 1, "the head tried once, its thread waits");

        // The operator invites the bot; the retry comes due.
        fake.stop_failing();
        app.sql("UPDATE outbox SET next_attempt_at = 0").await;
        drain(&mut worker).await;
        let sent: Vec<String> = fake
            .messages()
            .iter()
            .map(|m| format!("{} {}", m.method, m.thread_ts.is_some()))
            .collect();
        assert_eq!(
            sent,
            [
                "chat.postMessage false",
                "chat.postMessage true",
                "chat.update false",
                "chat.postMessage true",
                "chat.update false"
            ],
            "root, still failing, update, fixed, update: all, in order"
        );
        let metrics = app.request(get("/metrics")).await.1;
        assert!(!metrics.contains("armbot_outbox_blocked{"), "{metrics}");
    }

    async fn a_root_that_can_never_be_posted_does_not_silence_the_ref(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        fake.fail_next("chat.postMessage", 1, SlackFailure::error("msg_too_long"));
        app.hook(&pipeline(100, "master", "failed")).await;
        drain(&mut worker).await;
        assert_eq!(app.store.outbox_count("failed").await.expect("count"), 1);
        // The next failure on the ref starts a thread of its own instead of being dropped.
        app.hook(&pipeline(101, "master", "failed")).await;
        drain(&mut worker).await;
        let roots: Vec<_> = fake
            .messages()
            .into_iter()
            .filter(|m| m.method == "chat.postMessage" && m.thread_ts.is_none())
            .collect();
        assert_eq!(roots.len(), 1, "{roots:#?}");
        assert!(roots[0].text.contains("#101 failed"), "{}", roots[0].text);
        assert_eq!(app.store.outbox_count("failed").await.expect("count"), 1);
        let open: i64 = app
            .store_scalar("SELECT COUNT(*) FROM incidents WHERE fixed_at IS NULL")
            .await;
        assert_eq!(open, 1, "the abandoned incident is closed, the new one open");
    }
}

#[tokio::test]
async fn a_store_file_deleted_underneath_makes_the_bot_unready() {
    let app = app(settings(&[])).await;
    assert_eq!(
        app.hook(&pipeline(100, "master", "failed")).await,
        StatusCode::OK
    );
    assert_eq!(app.request(get("/readyz")).await.0, StatusCode::OK);
    let path = app
        .db
        .url
        .expose()
        .trim_start_matches("sqlite://")
        .to_string();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let (status, body) = app.request(get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("is gone"), "{body}");
    assert_eq!(
        app.hook(&pipeline(101, "master", "failed")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not acknowledged into a file that will vanish"
    );
}
