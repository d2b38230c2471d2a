//! The durable outbox and its worker against a Slack that fails in the ways
//! Slack documents: 5xx, 429 with Retry-After, permanent `ok:false` errors.

use std::{sync::Arc, time::Duration};

use crate::common::*;
use armbot::{
    delivery::{Worker, WorkerConfig},
    slack::Message,
    store::{NewMessage, OutboxKind, now_ms},
};
use tokio::sync::{Notify, watch};

fn texts(fake: &FakeSlack) -> Vec<String> {
    fake.messages()
        .iter()
        .filter(|p| p.method == "chat.postMessage")
        .map(|p| p.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

on_both_engines! {
    async fn server_errors_are_retried_and_delivered_once(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        // The post fails, then the check whether it landed after all.
        fake.fail_next("chat.postMessage", 1, SlackFailure::http(500));
        fake.fail_next("conversations.history", 1, SlackFailure::http(503));
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        drain(&mut worker).await;
        assert_eq!(texts(&fake).len(), 1, "delivered exactly once");
        // Each retry after a 5xx first checked whether the post had landed after all.
        assert!(fake.count("conversations.history") >= 2);
        assert_eq!(app.store.outbox_count("delivered").await.expect("count"), 1);
    }
}

on_both_engines! {
    async fn a_post_that_landed_before_an_error_is_not_posted_again(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        // Simulate "Slack accepted it, we never heard": deliver, then roll the row back.
        drain(&mut worker).await;
        app.sql("UPDATE outbox SET state = 'attempting', ts = NULL")
            .await;
        drain(&mut worker).await;
        assert_eq!(texts(&fake).len(), 1, "found in history, not re-posted");
        assert_eq!(fake.count("conversations.history"), 1);
        assert_eq!(app.store.outbox_count("delivered").await.expect("count"), 1);
    }
}

on_both_engines! {
    async fn rate_limits_honour_retry_after(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        fake.fail_next("chat.postMessage", 1, SlackFailure::rate_limited(1));
        let worker = Worker::new(
            app.store.clone(),
            slack_transport(&fake),
            WorkerConfig {
                min_interval: Duration::ZERO,
                ..WorkerConfig::default()
            },
            app.state.metrics.clone(),
        );
        app.hook(&pipeline(100, "master", "failed")).await;
        let started = std::time::Instant::now();
        let wake = Arc::new(Notify::new());
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(worker.run(wake, rx));
        // Wait on the fake's signal (bounded), not on a fixed sleep.
        let delivered = fake.wait_for(1, Duration::from_secs(10)).await;
        let _ = stop.send(true);
        let _ = task.await;
        assert!(delivered.is_ok(), "not delivered after the rate limit");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After not honoured"
        );
        assert_eq!(texts(&fake).len(), 1);
        assert_eq!(fake.count("chat.postMessage"), 2);
    }
}

on_both_engines! {
    async fn permanent_errors_stop_and_are_counted(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        // A refusal retrying cannot fix (an operator's one, like `not_in_channel`, waits:
        // tests/it/blocked.rs).
        fake.fail_next("chat.postMessage", 1, SlackFailure::error("msg_too_long"));
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        app.hook(&pipeline(101, "master", "failed")).await; // reply + update to a root that never posts
        drain(&mut worker).await;
        assert_eq!(
            fake.count("chat.postMessage"),
            1,
            "no retry of a permanent error"
        );
        assert_eq!(app.store.outbox_count("failed").await.expect("count"), 3);
        assert_eq!(app.store.outbox_count("pending").await.expect("count"), 0);
        let metrics = app.state.metrics.render();
        assert!(
            metrics.contains(r#"armbot_outbox_failed_total{reason="msg_too_long"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"armbot_outbox_failed_total{reason="root_not_posted"} 2"#),
            "{metrics}"
        );
    }
}

on_both_engines! {
    async fn transient_errors_are_not_retried_forever(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        // Slack is down: every call fails.
        fake.fail_always("chat.postMessage", SlackFailure::http(502));
        fake.fail_always("conversations.history", SlackFailure::http(502));
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        drain(&mut worker).await;
        assert_eq!(app.store.outbox_count("failed").await.expect("count"), 1);
        assert!(texts(&fake).is_empty());
    }
}

on_both_engines! {
    async fn thread_order_holds_through_an_outage(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        fake.fail_next("chat.postMessage", 1, SlackFailure::http(500));
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        app.hook(&pipeline(101, "master", "failed")).await;
        app.hook(&pipeline(102, "master", "success")).await;
        drain(&mut worker).await;
        let seq: Vec<(String, Option<String>)> = fake
            .messages()
            .iter()
            .map(|p| (p.method.clone(), p.thread_ts.clone()))
            .collect();
        let root = fake.messages()[0].ts.clone();
        assert_eq!(
            seq,
            vec![
                ("chat.postMessage".into(), None),
                ("chat.postMessage".into(), Some(root.clone())),
                ("chat.update".into(), None),
                ("chat.postMessage".into(), Some(root.clone())),
                ("chat.update".into(), None),
            ]
        );
    }
}

on_both_engines! {
    async fn a_release_day_burst_is_delivered_in_order(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        let refs: Vec<String> = (0..50)
            .map(|i| format!("{}-{}-stable", 10 + i / 10, i % 10))
            .collect();
        for (i, r) in refs.iter().enumerate() {
            app.hook(&pipeline(1000 + i as u64, r, "failed")).await;
        }
        drain(&mut worker).await;
        let texts = texts(&fake);
        assert_eq!(texts.len(), 50);
        for (i, (t, r)) in texts.iter().zip(&refs).enumerate() {
            assert!(
                t.starts_with(&format!("gitlab-test {r} #{} failed: ", 1000 + i)),
                "{t}"
            );
        }
    }
}

on_both_engines! {
    async fn pacing_spaces_calls_per_channel(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = Worker::new(
            app.store.clone(),
            slack_transport(&fake),
            WorkerConfig {
                // Far longer than the first pass can take, even on a loaded machine.
                min_interval: Duration::from_secs(10),
                ..fast_worker()
            },
            app.state.metrics.clone(),
        );
        for (i, channel) in ["C1", "C1", "C2"].iter().enumerate() {
            let m = NewMessage {
                channel: (*channel).into(),
                kind: OutboxKind::Post,
                incident_id: None,
                target_ts: None,
                target_id: None,
                message: Message::plain(format!("m{i}")),
            };
            app.store.enqueue(&m, now_ms()).await.expect("enqueue");
        }
        let (_tx, rx) = watch::channel(false);
        let tick = worker.tick(&rx).await.expect("tick");
        assert_eq!(tick.calls, 2, "one per channel");
        let tick = worker.tick(&rx).await.expect("tick");
        assert_eq!(tick.calls, 0, "C1's second message waits for the gap");
        assert!(
            tick.next_due
                .is_some_and(|d| d > Duration::from_millis(500))
        );
        let backlog = app.store.outbox_backlog().await.expect("backlog");
        assert_eq!(backlog.len(), 1);
        assert_eq!((backlog[0].channel.as_str(), backlog[0].depth), ("C1", 1));
    }
}

on_both_engines! {
    async fn a_restart_resumes_pending_deliveries(db: Db) {
        let db = TestDb::new(db).await;
        {
            let store = db.store().await;
            let m = NewMessage {
                channel: "C1".into(),
                kind: OutboxKind::Post,
                incident_id: None,
                target_ts: None,
                target_id: None,
                message: Message::plain("survives a restart"),
            };
            store.enqueue(&m, now_ms()).await.expect("enqueue");
        }
        let store = db.store().await;
        let fake = FakeSlack::start().await;
        let mut worker = Worker::new(
            store.clone(),
            slack_transport(&fake),
            fast_worker(),
            Default::default(),
        );
        drain(&mut worker).await;
        assert_eq!(texts(&fake), vec!["survives a restart".to_string()]);
    }
}

on_both_engines! {
    async fn pruning_keeps_open_incidents_and_undelivered_rows(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        app.hook(&pipeline(100, "master", "failed")).await;
        drain(&mut worker).await;
        let m = NewMessage {
            channel: "C9".into(),
            kind: OutboxKind::Post,
            incident_id: None,
            target_ts: None,
            target_id: None,
            message: Message::plain("still queued"),
        };
        app.store.enqueue(&m, 0).await.expect("enqueue");
        let far_future = now_ms() + 30 * 86_400_000;
        let removed = app
            .store
            .prune(far_future, Duration::from_secs(86_400))
            .await
            .expect("prune");
        assert!(
            removed >= 2,
            "dedup keys and the delivered row go: {removed}"
        );
        assert_eq!(app.store.outbox_count("pending").await.expect("count"), 1);
        // The incident is still open: a new failure is a reply, not a new root.
        app.hook(&pipeline(101, "master", "failed")).await;
        assert_eq!(app.store.outbox_count("pending").await.expect("count"), 3);
    }
}

fn message_to(channel: &str, kind: OutboxKind, target_id: Option<i64>, text: &str) -> NewMessage {
    NewMessage {
        channel: channel.into(),
        kind,
        incident_id: None,
        target_ts: None,
        target_id,
        message: Message::plain(text),
    }
}

on_both_engines! {
    async fn a_row_can_answer_or_update_the_message_another_row_posted(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        let outbox = &app.state.outbox;
        let root = outbox
            .enqueue(&message_to("C1", OutboxKind::Post, None, "root"))
            .await
            .expect("enqueue");
        // Queued before the root is posted: they wait for it.
        for (kind, text) in [(OutboxKind::Reply, "in its thread"), (OutboxKind::Update, "root, edited")] {
            outbox
                .enqueue(&message_to("C1", kind, Some(root), text))
                .await
                .expect("enqueue");
        }
        drain(&mut worker).await;
        let m = fake.messages();
        assert_eq!(m.len(), 3);
        assert_eq!((m[1].thread_ts.as_deref(), m[1].text.as_str()), (Some(m[0].ts.as_str()), "in its thread"));
        assert_eq!((m[2].method.as_str(), m[2].ts.as_str()), ("chat.update", m[0].ts.as_str()));
        assert_eq!(m[2].text, "root, edited");

        // A message never posted takes its answers with it.
        fake.fail_next("chat.postMessage", 1, SlackFailure::error("msg_too_long"));
        let gone = outbox
            .enqueue(&message_to("C4", OutboxKind::Post, None, "refused"))
            .await
            .expect("enqueue");
        outbox
            .enqueue(&message_to("C4", OutboxKind::Reply, Some(gone), "orphan"))
            .await
            .expect("enqueue");
        drain(&mut worker).await;
        assert_eq!(app.store.outbox_count("failed").await.expect("count"), 2);
        assert!(fake.messages().iter().all(|p| p.text != "orphan"));
    }
}

on_both_engines! {
    async fn pruning_keeps_a_message_a_queued_reply_still_needs(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let mut worker = app.worker(slack_transport(&fake));
        let message = |kind, text: &str| message_to("C1", kind, None, text);
        let reply_to = |parent, text: &str| message_to("C1", OutboxKind::Reply, Some(parent), text);
        let parent = app
            .state
            .outbox
            .enqueue(&message(OutboxKind::Post, "a warning"))
            .await
            .expect("enqueue");
        // Queued before the parent is posted: it waits for the parent's ts.
        app.state
            .outbox
            .enqueue(&reply_to(parent, "it works again"))
            .await
            .expect("reply");
        drain(&mut worker).await;
        let posted = fake.messages();
        assert_eq!(posted.len(), 2);
        assert_eq!(posted[1].thread_ts.as_deref(), Some(posted[0].ts.as_str()));

        // Pruning keeps a delivered parent while a reply to it waits.
        let waiting = app
            .state
            .outbox
            .enqueue(&reply_to(parent, "later"))
            .await
            .expect("reply");
        let far_future = now_ms() + 30 * 86_400_000;
        app.store
            .prune(far_future, Duration::from_secs(86_400))
            .await
            .expect("prune");
        assert_eq!(
            app.store_scalar(&format!("SELECT COUNT(*) FROM outbox WHERE id = {parent}"))
                .await,
            1
        );
        assert!(waiting > parent);
        drain(&mut worker).await;
        let posted = fake.messages();
        assert_eq!(posted.last().and_then(|m| m.thread_ts.clone()), Some(posted[0].ts.clone()));
    }
}
