//! `/arm status` end to end: the ack comes at once, the report arrives on
//! `response_url`, missing settings and bad zones get a helpful sentence.

use std::time::Duration;

use crate::common::*;
use armbot_fakes::{FakeScaleway, ScwFailure, ScwOp, ScwServer};
use axum::http::StatusCode;
use serde_json::Value;

const KEY: &str = "scw-secret-key";

/// A running builder and a stuck one in fr-par-1, answering after `delay`.
async fn scaleway(delay: Duration) -> FakeScaleway {
    let scw = FakeScaleway::start().await;
    scw.require_key(KEY);
    scw.set_latency(delay);
    let server = |i: usize, state: &str| {
        ScwServer::new(
            "fr-par-1",
            format!("00000000-0000-0000-0000-{i:012}"),
            format!("runner-arm-{i}"),
        )
        .commercial_type("BASIC2-A4C-8G")
        .state(state)
    };
    scw.set_zone(
        "fr-par-1",
        [server(1, "running"), server(2, "stopped in place")],
    );
    scw
}

/// The one list of fr-par-1 a status makes, with the key.
fn assert_listed_once(scw: &FakeScaleway) {
    let lists = scw.calls_to(ScwOp::ListServers);
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(lists[0].zone.as_deref(), Some("fr-par-1"));
    assert_eq!(lists[0].auth_token.as_deref(), Some(KEY));
}

fn fleet_env(scw: &str) -> Vec<(&str, &str)> {
    vec![
        ("SCW_SECRET_KEY", KEY),
        ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
        ("SCW_DEFAULT_ZONE", "fr-par-1"),
        ("SCW_API_URL", scw),
    ]
}

#[tokio::test]
async fn the_ack_does_not_wait_for_a_slow_scaleway() {
    let scw = scaleway(Duration::from_millis(1500)).await;
    let uri = scw.uri();
    let app = app(settings(&fleet_env(&uri))).await;
    let fake = FakeSlack::start().await;
    let response_url = fake.response_url("commands/T1/123/abc");

    let (status, body) = app.request(slash("status", &response_url)).await;
    assert_eq!(status, StatusCode::OK);
    let ack: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(
        ack["text"].as_str().is_some_and(|t| t.contains("fr-par-1")),
        "{ack}"
    );
    assert!(
        fake.messages().is_empty(),
        "the result cannot be there before Scaleway answered"
    );

    let posted = wait_messages(&fake, 1).await;
    assert_eq!(posted[0].method, "response_url");
    let text = posted[0].body.to_string();
    assert!(
        text.contains("• `2` · stopped in place for ")
            && text.contains("names listed without `runner-arm-`"),
        "the stuck builder is listed: {text}"
    );
    assert!(!text.contains(KEY));
    let m = app.state.metrics.render();
    assert!(
        m.contains(r#"armbot_commands_total{command="status",outcome="ok"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"armbot_scaleway_calls_total{endpoint="list_servers",outcome="200"} 1"#),
        "{m}"
    );
    assert_listed_once(&scw);
}

#[tokio::test]
async fn missing_scaleway_settings_are_named() {
    let app = app(settings(&[])).await;
    let (status, body) = app
        .request(slash("status", "https://hooks.example/commands/x"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).expect("json");
    let text = v["text"].as_str().expect("text");
    for var in [
        "SCW_SECRET_KEY",
        "SCW_DEFAULT_PROJECT_ID",
        "SCW_DEFAULT_ZONE",
    ] {
        assert!(text.contains(var), "{text}");
    }
}

#[tokio::test]
async fn a_bad_zone_is_a_user_mistake_not_an_error() {
    let scw = FakeScaleway::start().await;
    let uri = scw.uri();
    let app = app(settings(&fleet_env(&uri))).await;
    let (_, body) = app
        .request(slash(
            "status fr-par-1 <!here>",
            "https://hooks.example/commands/x",
        ))
        .await;
    let v: Value = serde_json::from_str(&body).expect("json");
    let text = v["text"].as_str().expect("text");
    assert!(
        text.contains("is not a Scaleway zone") && text.contains("&lt;!here&gt;"),
        "{text}"
    );
    assert!(scw.calls().is_empty(), "nothing was asked of Scaleway");
}

#[tokio::test]
async fn an_expired_response_url_falls_back_to_a_direct_message() {
    let scw = scaleway(Duration::ZERO).await;
    let uri = scw.uri();
    let app = app(settings(&fleet_env(&uri))).await;
    let fake = FakeSlack::start().await;
    // Slack answers 404 `expired_url` for a response_url past its life.
    fake.fail_always(RESPONSE_URL, SlackFailure::expired_url());
    let (status, _) = app
        .request(slash("status", &fake.response_url("commands/x")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut worker = app.worker(slack_transport(&fake));
    // The fallback is queued in the outbox; wait for it to be queued, then deliver.
    let queued = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            app.state.outbox.signal().notified().await;
            if app.store.outbox_count("pending").await.expect("count") > 0 {
                return;
            }
        }
    })
    .await;
    assert!(queued.is_ok(), "no fallback queued");
    drain(&mut worker).await;
    assert!(fake.count(RESPONSE_URL) >= 1, "the response_url was tried");
    let posted = fake.messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].channel, "U0ASKER", "sent to the user directly");
    assert_listed_once(&scw);
}

// ---------------------------------------------------------------------------------------
// The report as Slack shows it, on a small fleet and a 360-builder one, and its buttons.

const PREFIX: &str = "runner-qasr7s6-arm-";

/// Builder `n` of `zone`, named as docker-machine names them
/// (`runner-qasr7s6-arm-<unix>-<hex>`), in `state` since `minutes_ago`.
fn named(zone: &str, n: usize, state: &str, minutes_ago: i64) -> ScwServer {
    let zone_no = zone.bytes().map(usize::from).sum::<usize>();
    ScwServer::new(
        zone,
        format!("{zone_no:08x}-0000-4000-8000-{n:012x}"),
        format!(
            "{PREFIX}{}-{:08x}",
            1_799_000_000 + n * 61,
            (n * 2_654_435_761 + zone_no) % (1 << 32)
        ),
    )
    .state(state)
    .modified(chrono::DateTime::from_timestamp(NOW - minutes_ago * 60, 0).expect("date"))
}

/// `count` builders of `zone` numbered from `from`, in `state`, the i-th since `age(i)`.
fn several(
    zone: &str,
    from: usize,
    count: usize,
    state: &str,
    age: impl Fn(i64) -> i64,
) -> Vec<ScwServer> {
    (0..count)
        .map(|i| named(zone, from + i, state, age(i as i64)))
        .collect()
}

fn quotum(limits: &[(&str, u64)]) -> Value {
    let limits: Vec<Value> = limits
        .iter()
        .map(|(zone, limit)| serde_json::json!({"zone": zone, "limit": limit}))
        .collect();
    serde_json::json!({
        "name": "instances_coparm1_4c_16g", "pretty_name": "Instances COPARM1-4C-16G",
        "locality_type": "zone", "limits": limits
    })
}

/// The app over `zones`, with quotas, the fleet named by [`PREFIX`] and a runner cap.
async fn fleet_app(scw: &FakeScaleway, zones: &[&str], cap: u32) -> TestApp {
    let zones: Vec<String> = zones.iter().map(|z| format!("{z:?}")).collect();
    let file: armbot::config::FileSettings = toml::from_str(&format!(
        "[fleet]\nzones = [{}]\nname_prefix = \"{PREFIX}\"\nrunner_cap = {cap}\n",
        zones.join(", ")
    ))
    .expect("valid TOML");
    let uri = scw.uri();
    let mut env = fleet_env(&uri);
    env.push(("SCW_DEFAULT_ORGANIZATION_ID", "org-1"));
    app(settings_with_file(file, &env)).await
}

/// `/arm status {args}`: the report as posted on `response_url`.
async fn status_report(app: &TestApp, fake: &FakeSlack, args: &str) -> Value {
    let url = fake.response_url("commands/T1/1/status");
    let before = fake.messages().len();
    let (status, _) = app.request(slash(&format!("status {args}"), &url)).await;
    assert_eq!(status, StatusCode::OK);
    let posted = wait_messages(fake, before + 1).await;
    assert_eq!(posted[before].method, RESPONSE_URL);
    posted[before].body.clone()
}

/// The report's blocks are within Slack's limits and its mrkdwn well formed.
fn assert_slack_takes(body: &Value) {
    let message: armbot::slack::Message = serde_json::from_value(body.clone()).expect("a message");
    assert_eq!(message.problems(), Vec::<String>::new(), "{body}");
}

fn buttons(body: &Value) -> Vec<(String, String)> {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["text"]["text"].as_str().unwrap_or_default().to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn texts(body: &Value) -> Vec<String> {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            b.pointer("/text/text")
                .or_else(|| b.pointer("/elements/0/text"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// fr-par-1: 4 running, one reapable, one protected, one in its grace period; nl-ams-1
/// empty, and its quota far from full.
async fn small_fleet() -> FakeScaleway {
    let scw = FakeScaleway::start().await;
    scw.require_key(KEY);
    let mut servers = several("fr-par-1", 1, 4, "running", |_| 30);
    servers.push(named("fr-par-1", 5, "stopped in place", 192));
    servers.push(named("fr-par-1", 6, "stopped", 3 * 1440 + 125).protected(true));
    servers.push(named("fr-par-1", 7, "stopped", 5));
    scw.set_zone("fr-par-1", servers);
    scw.set_zone("nl-ams-1", Vec::<ScwServer>::new());
    scw.set_quotas("org-1", vec![quotum(&[("fr-par-1", 8), ("nl-ams-1", 20)])]);
    scw
}

#[tokio::test]
async fn a_small_fleet_lists_each_builder_without_the_common_prefix() {
    let scw = small_fleet().await;
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1"], 30).await;
    let fake = FakeSlack::start().await;
    let body = status_report(&app, &fake, "").await;
    insta::assert_json_snapshot!("status_small_fleet", body);
    assert_slack_takes(&body);

    let t = texts(&body);
    let zone = |z: &str| {
        t.iter()
            .find(|x| x.starts_with(&format!("*{z}*")))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        t[0],
        "*ARM fleet: 7 builders in 2 zones, 3 shut down, 1 reapable*\nNot reapable: 1 \
         protected, 1 in the 15 min grace period."
    );
    let par = zone("fr-par-1");
    assert!(
        par.starts_with("*fr-par-1* · 7 builders: 4 running, 2 stopped, 1 stopped in place\n• `"),
        "{par}"
    );
    assert!(
        par.contains(" · stopped for 3 d 2 h · protected\n"),
        "{par}"
    );
    assert!(
        par.contains(" · stopped in place for 3 h 12 min\n"),
        "{par}"
    );
    assert!(
        par.ends_with(" · stopped for 5 min · in grace period"),
        "{par}"
    );
    assert!(!par.contains(PREFIX), "names are listed without the prefix");
    assert_eq!(zone("nl-ams-1"), "*nl-ams-1* · no builders");
    // Only the quota in use: nl-ams-1's 0 of 20 says nothing.
    let quotas = zone("Quotas");
    assert!(
        quotas.contains("• COPARM1-4C-16G in fr-par-1: 7 of 8 :warning: nearly full"),
        "{quotas}"
    );
    assert!(!quotas.contains("nl-ams-1"), "{quotas}");
    let footer = t.last().expect("a footer");
    assert!(
        footer.contains(&format!("named `{PREFIX}`… (listed without it) · as of")),
        "{footer}"
    );
    assert!(footer.contains("as of <!date^1800000000^"), "{footer}");
    assert!(!body.to_string().contains("proj-1"), "no project id");
    assert_eq!(
        buttons(&body),
        [
            ("Plan a reap".to_owned(), "status".to_owned()),
            // Slack refuses an empty value: a marker stands for the configured zones.
            ("Share in channel".to_owned(), "*".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_360_builder_fleet_fits_in_a_screen() {
    let scw = FakeScaleway::start().await;
    scw.require_key(KEY);
    let mut par = several("fr-par-1", 0, 185, "running", |_| 40);
    par.extend(several("fr-par-1", 185, 4, "starting", |_| 1));
    par.extend(several("fr-par-1", 189, 2, "stopping", |_| 1));
    par.extend(several("fr-par-1", 191, 30, "stopped", |i| 90 + i));
    par.extend(several("fr-par-1", 221, 12, "stopped in place", |i| {
        185 + 20 * i
    }));
    par.extend(several("fr-par-1", 233, 4, "stopped", |i| 2 + 3 * i));
    par.extend(
        several("fr-par-1", 237, 2, "stopped", |i| 3 * 1440 + 180 + i)
            .into_iter()
            .map(|s| s.protected(true)),
    );
    par.push(named("fr-par-1", 239, "locked", 300));
    let mut ams = several("nl-ams-1", 0, 107, "running", |_| 40);
    ams.push(named("nl-ams-1", 107, "starting", 1));
    ams.extend(several("nl-ams-1", 108, 8, "stopped in place", |i| {
        20 + 4 * i
    }));
    ams.extend(several("nl-ams-1", 116, 3, "stopped", |i| {
        1440 + 120 + 500 * i
    }));
    ams.push(named("nl-ams-1", 119, "stopped", 6 * 60));
    assert_eq!(par.len() + ams.len(), 360);
    scw.set_zone("fr-par-1", par);
    scw.set_zone("nl-ams-1", ams);
    scw.set_zone("pl-waw-1", Vec::<ScwServer>::new());
    scw.set_quotas(
        "org-1",
        vec![quotum(&[
            ("fr-par-1", 250),
            ("nl-ams-1", 200),
            ("pl-waw-1", 100),
        ])],
    );
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1", "pl-waw-1"], 400).await;
    let fake = FakeSlack::start().await;
    let body = status_report(&app, &fake, "").await;
    insta::assert_json_snapshot!("status_360_builders", body);
    assert_slack_takes(&body);

    let t = texts(&body);
    assert_eq!(
        t[0],
        "*ARM fleet: 360 builders in 3 zones, 60 shut down, 54 reapable*\nNot reapable: 2 \
         protected, 4 in the 15 min grace period."
    );
    // Alike builders share a line, so the whole report is a screenful.
    let lines: usize = t.iter().map(|x| x.lines().count()).sum();
    assert!(lines <= 25, "{lines} lines: {t:#?}");
    let zone = |z: &str| {
        t.iter()
            .find(|x| x.starts_with(&format!("*{z}*")))
            .cloned()
            .unwrap_or_default()
    };
    let par = zone("fr-par-1");
    assert!(
        par.contains("\n• 30 stopped for 1 h 30 min to 1 h 59 min\n"),
        "{par}"
    );
    assert!(
        par.contains("\n• 4 stopped for 2 min to 11 min · in grace period"),
        "{par}"
    );
    let ams = zone("nl-ams-1");
    assert!(
        ams.contains("\n• 8 stopped in place for 20 min to 48 min"),
        "{ams}"
    );
    // pl-waw-1's quota is neither used nor near its limit.
    let quotas = zone("Quotas");
    assert!(!quotas.contains("pl-waw-1"), "{quotas}");
    assert!(
        quotas.contains("fr-par-1: 240 of 250 :warning: nearly full"),
        "{quotas}"
    );
    assert_eq!(buttons(&body).len(), 2);
}

/// A click as Slack sends it, with the message it was on and when it happened.
/// What the worker posted to channels once it has delivered everything queued.
async fn channel_posts(app: &TestApp, fake: &FakeSlack) -> Vec<SlackCall> {
    let mut worker = app.worker(slack_transport(fake));
    drain(&mut worker).await;
    fake.messages()
        .into_iter()
        .filter(|m| m.method == "chat.postMessage")
        .collect()
}

fn share_click(
    zones: &str,
    response_url: &str,
    action_ts: &str,
) -> axum::http::Request<axum::body::Body> {
    let payload = serde_json::json!({
        "type": "block_actions", "user": {"id": "U0OPS1"}, "channel": {"id": "C0CHAN"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0CHAN", "is_ephemeral": true},
        "response_url": response_url,
        "actions": [{"action_id": "status_share", "value": zones, "type": "button", "action_ts": action_ts}]
    })
    .to_string();
    let form = serde_urlencoded::to_string([("payload", payload.as_str())]).expect("form");
    slack_request(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &form,
    )
}

#[tokio::test]
async fn share_in_channel_posts_the_report_once_saying_who_shared_it() {
    let scw = small_fleet().await;
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1"], 30).await;
    let fake = FakeSlack::start().await;
    let mine = status_report(&app, &fake, "").await;
    let url = fake.response_url("actions/T1/2/share");

    let listed = scw.calls_to(ScwOp::ListServers).len();
    // The click, and the same request replayed twice: one report gathered, one queued.
    for _ in 0..3 {
        let (status, _) = app
            .request(share_click("*", &url, "1700000001.000200"))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.state.tasks.close();
    app.state.tasks.wait().await;
    assert_eq!(
        scw.calls_to(ScwOp::ListServers).len(),
        listed + 2,
        "one listing of each zone, for the one genuine click"
    );
    // The clicker's ephemeral copy is removed once the shared one is queued.
    let sent = fake.messages();
    assert_eq!(sent.len(), 2, "the report, then one delete: {sent:#?}");
    assert_eq!(sent[1].body, serde_json::json!({"delete_original": true}));
    assert_eq!(app.store.outbox_count("pending").await.expect("count"), 1);

    let posted = channel_posts(&app, &fake).await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].channel, "C0CHAN");
    let shared = &posted[0].body;
    insta::assert_json_snapshot!("status_shared", shared);
    assert_slack_takes(shared);
    assert_eq!(
        shared["text"], mine["text"],
        "the same report, gathered again"
    );
    let t = texts(shared);
    assert!(
        t.iter()
            .any(|x| x == "Shared by <@U0OPS1> with `/arm status`"),
        "{t:?}"
    );
    // Anyone may plan a reap from it (only they see the plan); it is not shared again.
    assert_eq!(
        buttons(shared),
        [("Plan a reap".to_owned(), "status".to_owned())]
    );
}

#[tokio::test]
async fn the_shared_report_covers_the_zones_asked_for() {
    let scw = small_fleet().await;
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1"], 30).await;
    let fake = FakeSlack::start().await;
    let mine = status_report(&app, &fake, "nl-ams-1").await;
    // Nothing reapable there: no "Plan a reap".
    assert_eq!(
        buttons(&mine),
        [("Share in channel".to_owned(), "nl-ams-1".to_owned())]
    );
    let url = fake.response_url("actions/T1/3/share");
    app.request(share_click("nl-ams-1", &url, "1700000002.000300"))
        .await;
    // A value the bot never made is ignored.
    app.request(share_click("nl-ams-1 <!here>", &url, "1700000003.000300"))
        .await;
    wait_messages(&fake, 2).await;
    let posted = channel_posts(&app, &fake).await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    let t = texts(&posted[0].body);
    assert!(
        t[0].starts_with("*ARM fleet: 0 builders in 1 zone, none shut down*"),
        "{t:?}"
    );
    assert!(buttons(&posted[0].body).is_empty());
    let lists = scw.calls_to(ScwOp::ListServers.in_zone("fr-par-1"));
    assert!(lists.is_empty(), "only nl-ams-1 was listed: {lists:?}");
}

#[tokio::test]
async fn zones_named_twice_are_listed_once_and_the_share_button_stays_within_slacks_limit() {
    let scw = small_fleet().await;
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1"], 30).await;
    let fake = FakeSlack::start().await;
    let mine = status_report(&app, &fake, &"nl-ams-1 NL-AMS-1, ".repeat(300)).await;
    assert_slack_takes(&mine);
    assert_eq!(
        buttons(&mine),
        [("Share in channel".to_owned(), "nl-ams-1".to_owned())]
    );
    assert_eq!(scw.calls_to(ScwOp::ListServers).len(), 1);

    // A zone name too long for a button's value: the report comes, without the button.
    let long = format!("fr-par-{}", "1".repeat(2000));
    let report = status_report(&app, &fake, &long).await;
    assert_slack_takes(&report);
    assert!(buttons(&report).is_empty(), "{report}");
}

#[tokio::test]
async fn a_share_button_sent_with_an_empty_value_shares_the_configured_zones() {
    let scw = small_fleet().await;
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1"], 30).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/4/share");
    app.request(share_click("", &url, "1700000004.000300"))
        .await;
    app.state.tasks.close();
    app.state.tasks.wait().await;
    let posted = channel_posts(&app, &fake).await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    let t = texts(&posted[0].body);
    assert!(t[0].contains(" in 2 zones"), "{t:?}");
}

#[tokio::test]
async fn a_share_when_scaleway_cannot_be_read_tells_the_clicker_and_a_new_click_shares() {
    let scw = small_fleet().await;
    let app = fleet_app(&scw, &["fr-par-1", "nl-ams-1"], 30).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/5/share");
    scw.fail_next(
        ScwOp::ListServers,
        2,
        ScwFailure::permissions_denied("read", "instance_server"),
    );
    app.request(share_click("*", &url, "1700000005.000300"))
        .await;
    app.state.tasks.close();
    app.state.tasks.wait().await;
    let sent = fake.messages();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let told = sent[0].body["text"].as_str().unwrap_or_default();
    assert!(
        told.starts_with("The report was not shared: ") && told.contains("InstancesReadOnly"),
        "{told}"
    );
    assert_ne!(
        sent[0].body["replace_original"], true,
        "the clicker keeps their copy"
    );
    assert_eq!(app.store.outbox_count("pending").await.expect("count"), 0);

    // Clicked again (a new action_ts), once Scaleway answers: shared.
    app.state.tasks.reopen();
    app.request(share_click("*", &url, "1700000006.000300"))
        .await;
    app.state.tasks.close();
    app.state.tasks.wait().await;
    assert_eq!(app.store.outbox_count("pending").await.expect("count"), 1);
    assert_eq!(
        fake.messages()[1].body,
        serde_json::json!({"delete_original": true})
    );
}
