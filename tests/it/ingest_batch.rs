//! Group commit decides in memory and writes a batch with one statement per table: a batch
//! must leave the store exactly as the same events applied one at a time would, on the
//! pool's transactions (both engines) and on the SQLite writer's own connection.

use armbot::{
    delivery::ingest::apply,
    gitlab::payload::PipelineHook,
    notify::{
        NotifySettings,
        event::{Applied, PipelineEvent},
        policy::Outcome,
    },
    store::Store,
};
use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::common::{Db, TestDb, on_both_engines, pipeline, settings};

fn event(id: u64, git_ref: &str, status: &str, notify: &NotifySettings) -> PipelineEvent {
    let mut v = pipeline(id, git_ref, status);
    if git_ref.starts_with('v') {
        v["object_attributes"]["tag"] = json!(true);
    }
    let body = serde_json::to_vec(&v).expect("JSON");
    let hook: PipelineHook = serde_json::from_slice(&body).expect("a pipeline hook");
    let outcome = if status == "failed" {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    };
    PipelineEvent::new(&hook, outcome, "C0NOTIFY".into(), None, notify, None).expect("an event")
}

/// Three batches: a failure; then a stored incident failing twice more and fixed, a tag
/// opening, a duplicate within the batch and a new incident; then a stale pipeline, fixes of
/// stored incidents, and an incident opened and fixed inside the batch.
fn batches(notify: &NotifySettings) -> Vec<Vec<PipelineEvent>> {
    let e = |id, r, s| event(id, r, s, notify);
    vec![
        vec![e(10, "master", "failed")],
        vec![
            e(11, "master", "failed"),
            e(12, "master", "failed"),
            e(13, "master", "success"),
            e(14, "v1.0", "failed"),
            e(14, "v1.0", "failed"),
            e(15, "master", "failed"),
        ],
        vec![
            e(9, "master", "failed"),
            e(16, "master", "success"),
            e(17, "v1.0", "success"),
            e(18, "master", "failed"),
            e(19, "master", "success"),
        ],
    ]
}

#[derive(Clone, Copy, Debug)]
enum Path {
    /// Each event in a transaction of its own, through the pool.
    OneByOne,
    /// Each batch in one transaction through the pool (PostgreSQL's writer).
    Pool,
    /// Each batch on the SQLite writer's own connection.
    Lite,
}

/// Applies the batches along `path`; returns what each event did and the store's rows.
async fn ingest_along(db: Db, path: Path) -> (Vec<String>, Vec<String>) {
    let test_db = TestDb::new(db).await;
    let store: Store = test_db.store().await;
    let notify = settings(&[]).notify;
    let now = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("a time");
    let mut lite = store.ingest_connection().expect("the writer's connection");
    let mut applied: Vec<Applied> = Vec::new();
    for batch in batches(&notify) {
        match path {
            Path::OneByOne => {
                for ev in batch {
                    let tx = store.begin_ingest().await.expect("begin");
                    applied.extend(apply(tx, &[ev], &[], now).await.expect("apply"));
                }
            }
            Path::Pool => {
                let tx = store.begin_ingest().await.expect("begin");
                applied.extend(apply(tx, &batch, &[], now).await.expect("apply"));
            }
            Path::Lite => {
                let lite = lite.as_mut().expect("SQLite has a writer's connection");
                let tx = lite.begin_ingest().expect("begin");
                applied.extend(apply(tx, &batch, &[], now).await.expect("apply"));
            }
        }
    }
    let mut rows = test_db
        .column::<String>(
            "SELECT 'incident ' || CAST(id AS TEXT) || ' ' || git_ref || ' first '
                    || CAST(first_pipeline AS TEXT) || ' latest ' || CAST(latest_pipeline AS TEXT)
                    || ' ' || latest_url || ' failures ' || CAST(failures AS TEXT)
                    || ' fixed ' || COALESCE(CAST(fixed_at AS TEXT), '-') || ' by '
                    || COALESCE(CAST(fixed_by AS TEXT), '-')
               FROM incidents ORDER BY id",
        )
        .await;
    rows.extend(
        test_db
            .column::<String>(
                "SELECT 'outbox|' || kind || '|' || COALESCE(CAST(incident_id AS TEXT), '-')
                        || '|' || channel || '|' || payload
                   FROM outbox ORDER BY id",
            )
            .await,
    );
    rows.extend(
        test_db
            .column::<String>(
                "SELECT 'head ' || git_ref || ' ' || COALESCE(CAST(last_pipeline AS TEXT), '-')
                        || ' ' || COALESCE(CAST(open_incident AS TEXT), '-')
                   FROM ref_heads ORDER BY project_id, git_ref",
            )
            .await,
    );
    let applied = applied.iter().map(|a| format!("{a:?}")).collect();
    (applied, rows)
}

on_both_engines! {
    async fn a_batch_writes_what_one_event_at_a_time_writes(db: Db) {
        let (one_by_one, expected_rows) = ingest_along(db, Path::OneByOne).await;
        assert_eq!(
            one_by_one,
            [
                "Opened { incident: 1 }",
                "StillFailing { incident: 1 }",
                "StillFailing { incident: 1 }",
                "Fixed { incident: 1 }",
                "Opened { incident: 2 }",
                "Duplicate",
                "Opened { incident: 3 }",
                "Stale { newest: 15 }",
                "Fixed { incident: 3 }",
                "Fixed { incident: 2 }",
                "Opened { incident: 4 }",
                "Fixed { incident: 4 }",
            ]
        );
        let incidents: Vec<&String> =
            expected_rows.iter().filter(|r| r.starts_with("incident")).collect();
        assert_eq!(incidents.len(), 4, "{incidents:#?}");
        assert!(incidents[0].contains("first 10 latest 12"), "{}", incidents[0]);
        assert!(incidents[0].contains("failures 3 fixed 1471014780 by 13"), "{}", incidents[0]);
        assert!(incidents[3].contains("first 18 latest 18"), "{}", incidents[3]);
        assert!(incidents[3].contains("by 19"), "{}", incidents[3]);
        assert!(
            expected_rows.contains(&"head master 19 -".to_string()),
            "{expected_rows:#?}"
        );

        let mut paths = vec![Path::Pool];
        if db == Db::Sqlite {
            paths.push(Path::Lite);
        }
        for path in paths {
            let (applied, rows) = ingest_along(db, path).await;
            assert_eq!(applied, one_by_one, "{path:?}");
            // Everything but the root updates, in order: incidents, posts, replies, heads.
            assert_eq!(without_updates(&rows), without_updates(&expected_rows), "{path:?}");
            // Each incident's root ends as it would have; a batch sends only an incident's
            // last update: incident 1 was updated three times in the second batch.
            assert_eq!(last_updates(&rows), last_updates(&expected_rows), "{path:?}");
            assert_eq!(updates(&expected_rows).len(), 6);
            assert_eq!(updates(&rows).len(), 4, "{path:?}: {:#?}", updates(&rows));
        }
    }
}

fn updates(rows: &[String]) -> Vec<&String> {
    rows.iter()
        .filter(|r| r.starts_with("outbox|update|"))
        .collect()
}

fn without_updates(rows: &[String]) -> Vec<&String> {
    rows.iter()
        .filter(|r| !r.starts_with("outbox|update|"))
        .collect()
}

/// Incident → its last root update.
fn last_updates(rows: &[String]) -> std::collections::BTreeMap<String, String> {
    updates(rows)
        .into_iter()
        .filter_map(|r| {
            let mut parts = r.splitn(4, '|').skip(2);
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// The writer's commits leave the log alone (no checkpoint inside a commit); its own
/// checkpoint, run between batches, copies all of it.
#[tokio::test]
async fn the_writer_checkpoints_between_batches_not_in_commits() {
    let test_db = TestDb::new(Db::Sqlite).await;
    let store = test_db.store().await;
    let notify = settings(&[]).notify;
    let now = Utc::now();
    let mut lite = store
        .ingest_connection()
        .expect("the writer's connection")
        .expect("SQLite has one");
    // From an empty log: the next write after a full checkpoint starts it over.
    lite.checkpoint().expect("checkpoint");
    // Enough pages to pass SQLite's default threshold of 1,000 for an automatic checkpoint.
    for i in 0..400u64 {
        let events: Vec<PipelineEvent> = (0..4)
            .map(|j| event(1000 + i * 4 + j, &format!("v{i}.{j}"), "failed", &notify))
            .collect();
        let tx = lite.begin_ingest().expect("begin");
        apply(tx, &events, &[], now).await.expect("apply");
    }
    let (log, copied) = lite.checkpoint().expect("checkpoint");
    assert!(
        log > 1_000,
        "the commits checkpointed the log themselves: {log} frames left"
    );
    assert_eq!(copied, log, "no reader holds the log back");
}
