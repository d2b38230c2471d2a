//! The fleet watch against the fake Scaleway, a fake runner manager and the fake Slack: one
//! incident per stuck spell with its root updated (never posted again), a builder that shut
//! down by itself named in the thread, "all clear"; nothing new after a restart; builders
//! outside the fleet never counted; one warning when Scaleway refuses the key; auto-reap off
//! deletes nothing, on deletes only what reap would, within `max_per_run`, audited as the
//! fleet watch; the "Plan a reap" button. Time is the test's clock, moved by hand; each poll
//! is driven directly and its messages delivered before the next.

use armbot::{
    config::{FileSettings, Settings},
    delivery::Worker,
    fleet::ScwError,
    watch::{PLAN_REAP_ACTION_ID, PollReport, Watcher},
};
use armbot_fakes::{FakeScaleway, ScwFailure, ScwOp, ScwServer};
use chrono::{DateTime, Utc};
use serde_json::Value;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::common::*;

const ZONE: &str = "fr-par-1";
const CHANNEL: &str = "C0NOTIFY";
const FLEET: &str = "[fleet]\nname_prefix = \"runner-arm-\"\n";

fn id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Builder `n` of the fleet, running.
fn builder(n: usize) -> ScwServer {
    ScwServer::new(ZONE, id(n), format!("runner-arm-{n}"))
}

/// Builder `n`, shut down (standby, as a builder that powers itself off) since `at`.
fn down(n: usize, at: i64) -> ScwServer {
    builder(n).state("stopped in place").modified(date(at))
}

fn date(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).expect("a date")
}

fn settings_for(scw: &FakeScaleway, slack: &FakeSlack, toml_text: &str) -> Settings {
    let file: FileSettings = toml::from_str(toml_text).expect("valid TOML");
    settings_with_file(
        file,
        &[
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", ZONE),
            ("SCW_API_URL", &scw.uri()),
            ("SLACK_BOT_TOKEN", DEFAULT_TOKEN),
            ("SLACK_API_URL", &slack.api_url()),
        ],
    )
}

/// The app with its watch, on the fakes, at the test's clock.
struct Watch {
    app: TestApp,
    scw: FakeScaleway,
    slack: FakeSlack,
    clock: TestClock,
    watcher: Watcher,
    worker: Worker,
    toml: String,
}

async fn watch(db: Db, toml_text: &str) -> Watch {
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    let slack = FakeSlack::start().await;
    let clock = TestClock::new();
    let app = app_on_with_clock(db, settings_for(&scw, &slack, toml_text), clock.clock()).await;
    let watcher = app.state.watcher().expect("the watch runs");
    let worker = app.worker(slack_transport(&slack));
    Watch {
        app,
        scw,
        slack,
        clock,
        watcher,
        worker,
        toml: toml_text.to_owned(),
    }
}

impl Watch {
    /// One poll at the clock's time, then what it queued delivered.
    async fn poll(&mut self) -> PollReport {
        let report = self.watcher.poll_once().await;
        drain(&mut self.worker).await;
        report
    }

    fn fleet(&self, servers: Vec<ScwServer>) {
        self.scw.set_zone(ZONE, servers);
    }

    fn messages(&self) -> Vec<SlackCall> {
        self.slack.messages()
    }

    fn metrics(&self) -> String {
        self.app.state.metrics.render()
    }
}

fn body(m: &SlackCall) -> String {
    m.body.to_string()
}

fn has(metrics: &str, line: &str) {
    assert!(
        metrics.lines().any(|l| l == line),
        "missing `{line}` in\n{metrics}"
    );
}

/// The value of the first button in a message's blocks with this `action_id`.
fn button_value(m: &Value, action_id: &str) -> Option<String> {
    m["blocks"]
        .as_array()?
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["action_id"] == action_id)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

const SCRAPE: &str = "gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"used\"} 20\n\
gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"stuck-on-removing\"} 3\n\
gitlab_runner_limit{runner=\"qasr7s6xy\",system_id=\"s_1\"} 30\n";

async fn runner_manager() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_string(SCRAPE))
        .mount(&server)
        .await;
    server
}

on_both_engines! {
    async fn an_incident_opens_is_updated_notes_a_builder_that_stopped_by_itself_and_clears(db: Db) {
        let runner = runner_manager().await;
        let mut w = watch(
            db,
            &format!("{FLEET}runner_metrics_url = \"{}\"\n", runner.uri()),
        )
        .await;
        let t0 = w.clock.now();
        // Builder 2 is stuck past the 15 min grace period; builder 5 only shut down 5
        // minutes ago. An x86 server and an arm64 server outside the fleet are stuck too.
        let outsiders = || {
            vec![
                builder(8).arch("x86_64").state("stopped").modified(date(t0 - 86_400)),
                ScwServer::new(ZONE, id(9), "cache-arm64")
                    .state("stopped in place")
                    .modified(date(t0 - 86_400)),
            ]
        };
        let fleet_at = |servers: Vec<ScwServer>| {
            let mut all = servers;
            all.extend(outsiders());
            all
        };
        w.fleet(fleet_at(vec![builder(1), down(2, t0 - 20 * 60), down(5, t0 - 5 * 60)]));

        let r = w.poll().await;
        assert_eq!((r.outcome, r.opened, r.stuck, r.queued), ("ok", true, 1, 1));
        let messages = w.messages();
        assert_eq!(messages.len(), 1);
        let root = messages[0].clone();
        assert_eq!((root.method.as_str(), root.channel.as_str()), ("chat.postMessage", CHANNEL));
        assert_eq!(root.thread_ts, None);
        let text = body(&root);
        for want in [
            "1 ARM builder is stuck shut down",
            "\\n• `2` · fr-par-1 · stopped in place for 20 min (since <!date^1799998800^{time}|07:40 UTC>)",
            "names without `runner-arm-`",
            "for longer than the 15 min grace period",
            "checks every 5 min · opened <!date^1800000000^{time}|08:00 UTC> · as of <!date^1800000000^{time}|08:00 UTC>",
            "*Runner cap:* 23 of 30 slots used, 3 by machines the runner cannot remove.",
            "Plan a reap",
            "auto-reap off",
        ] {
            assert!(text.contains(want), "`{want}` not in {text}");
        }
        for never in ["`8` ·", "cache-arm64", "`5` ·", "`1` ·"] {
            assert!(!text.contains(never), "`{never}` in {text}");
        }
        assert_eq!(
            button_value(&root.body, PLAN_REAP_ACTION_ID).as_deref(),
            Some("fleet")
        );

        // Five minutes later builder 1, running at the last check, is in standby.
        w.clock.advance_minutes(5);
        let t1 = w.clock.now();
        w.fleet(fleet_at(vec![
            down(1, t1 - 60),
            down(2, t0 - 20 * 60),
            down(5, t0 - 5 * 60),
        ]));
        let r = w.poll().await;
        assert_eq!((r.opened, r.stuck, r.queued), (false, 1, 1));
        let note = w.messages()[1].clone();
        assert_eq!(note.method, "chat.postMessage");
        assert_eq!(note.thread_ts.as_deref(), Some(root.ts.as_str()));
        let text = body(&note);
        assert!(text.contains("shut down by itself since the last check"), "{text}");
        assert!(text.contains("\\n• `1` · fr-par-1 · was running, now stopped in place"), "{text}");
        assert!(text.contains("names without `runner-arm-`"), "{text}");
        // Builder 5 was not running at the last check: not named.
        assert!(!text.contains("`5`"), "{text}");

        // Twenty minutes later builders 1 and 5 are past the grace period too: the root is
        // updated in place, never posted again.
        w.clock.advance_minutes(20);
        let r = w.poll().await;
        assert_eq!((r.opened, r.stuck, r.queued), (false, 3, 1));
        let update = w.messages()[2].clone();
        assert_eq!(update.method, "chat.update");
        assert_eq!((update.channel.as_str(), update.ts.as_str()), (CHANNEL, root.ts.as_str()));
        let text = body(&update);
        assert!(text.contains("3 ARM builders are stuck shut down"), "{text}");
        assert!(text.contains("\\n• `1` · fr-par-1 · stopped in place for 21 min"), "{text}");
        assert!(text.contains("· shut down by itself"), "{text}");
        assert!(text.contains("\\n• `2` · fr-par-1 · stopped in place for 45 min"), "{text}");

        // Nothing changed: nothing said.
        w.clock.advance_minutes(5);
        assert_eq!(w.poll().await.queued, 0);

        // Someone removed them: "all clear" in the thread, the root resolved.
        w.clock.advance_minutes(5);
        w.fleet(fleet_at(vec![builder(6)]));
        let r = w.poll().await;
        assert_eq!((r.stuck, r.queued), (0, 2));
        let messages = w.messages();
        let (clear, resolved) = (&messages[3], &messages[4]);
        assert_eq!(clear.thread_ts.as_deref(), Some(root.ts.as_str()));
        assert!(body(clear).contains("All clear"), "{}", body(clear));
        assert_eq!((resolved.method.as_str(), resolved.ts.as_str()), ("chat.update", root.ts.as_str()));
        assert!(body(resolved).contains("Resolved: no ARM builder is stuck any more"));
        assert!(body(resolved).contains("Up to 3 were stuck at once"));
        assert_eq!(button_value(&resolved.body, PLAN_REAP_ACTION_ID), None);
        assert_eq!(w.poll().await.queued, 0);

        // The next stuck builder opens a new incident, in a new thread.
        w.clock.advance_minutes(60);
        let t2 = w.clock.now();
        w.fleet(fleet_at(vec![builder(6), down(7, t2 - 16 * 60)]));
        let r = w.poll().await;
        assert!(r.opened);
        let again = w.messages().last().cloned().expect("a message");
        assert_eq!((again.method.as_str(), again.thread_ts.as_deref()), ("chat.postMessage", None));
        assert_ne!(again.ts, root.ts);
        assert!(body(&again).contains("runner-arm-7"));

        let roots = w
            .messages()
            .iter()
            .filter(|m| m.method == "chat.postMessage" && m.thread_ts.is_none())
            .count();
        assert_eq!(roots, 2, "one root per incident");
        let incidents = w.app.store.watch_incidents("fleet").await.expect("incidents");
        assert_eq!(incidents.len(), 2);
        assert!(incidents[0].2.is_some() && incidents[1].2.is_none());
        let metrics = w.metrics();
        has(&metrics, "armbot_watch_incidents_total 2");
        has(&metrics, "armbot_fleet_stuck_builders 1");
        has(&metrics, r#"armbot_watch_polls_total{outcome="ok"} 7"#);
        assert_eq!(w.scw.count(ScwOp::DeleteServer), 0);
    }
}

on_both_engines! {
    async fn a_restart_mid_incident_posts_nothing_new(db: Db) {
        let mut w = watch(db, FLEET).await;
        let t0 = w.clock.now();
        w.fleet(vec![builder(1), down(2, t0 - 30 * 60)]);
        assert!(w.poll().await.opened);
        assert_eq!(w.messages().len(), 1);
        let root = w.messages()[0].clone();

        // A new process on the same store (or the replica that leads next).
        let settings = settings_for(&w.scw, &w.slack, &w.toml);
        let restarted = w.app.replica_with_clock(settings, w.clock.clock()).await;
        let watcher = restarted.state.watcher().expect("the watch runs");
        let mut worker = restarted.worker(slack_transport(&w.slack));
        for _ in 0..3 {
            w.clock.advance_minutes(5);
            let r = watcher.poll_once().await;
            assert_eq!((r.outcome, r.opened, r.queued, r.stuck), ("ok", false, 0, 1));
        }
        drain(&mut worker).await;
        assert_eq!(w.messages().len(), 1, "nothing new after the restart");

        // It still knows its incident: the all-clear goes in the same thread.
        w.fleet(vec![builder(1)]);
        let r = watcher.poll_once().await;
        assert_eq!(r.queued, 2);
        drain(&mut worker).await;
        let messages = w.messages();
        assert_eq!(messages[1].thread_ts.as_deref(), Some(root.ts.as_str()));
        assert_eq!((messages[2].method.as_str(), messages[2].ts.as_str()), ("chat.update", root.ts.as_str()));
    }
}

on_both_engines! {
    async fn servers_outside_the_fleet_and_x86_servers_are_never_counted(db: Db) {
        let mut w = watch(db, "[fleet]\nname_prefix = \"runner-arm-\"\ntags = [\"arm-builder\"]\n").await;
        let long_ago = date(w.clock.now() - 3 * 86_400);
        w.fleet(vec![
            builder(1),
            // x86 with the fleet's name and tag, 32-bit ARM, arm64 without prefix or tag.
            builder(2).arch("x86_64").tag("arm-builder").state("stopped").modified(long_ago),
            builder(3).arch("arm").state("stopped in place").modified(long_ago),
            ScwServer::new(ZONE, id(4), "gitlab-cache").state("stopped").modified(long_ago),
            ScwServer::new(ZONE, id(5), "other-team").tag("x").state("stopped").modified(long_ago),
        ]);
        for _ in 0..3 {
            let r = w.poll().await;
            assert_eq!((r.outcome, r.stuck, r.queued), ("ok", 0, 0));
            w.clock.advance_minutes(5);
        }
        // The running builder and one outsider stop: still nothing, nothing remembered.
        w.fleet(vec![
            ScwServer::new(ZONE, id(5), "other-team").state("stopped").modified(long_ago),
            builder(1).arch("x86_64").state("stopped"),
        ]);
        assert_eq!(w.poll().await.queued, 0);
        assert!(w.messages().is_empty());
        has(&w.metrics(), "armbot_fleet_stuck_builders 0");

        // A builder known by its tag alone does count.
        w.fleet(vec![
            ScwServer::new(ZONE, id(6), "elegant-shirley")
                .tag("arm-builder")
                .state("stopped")
                .modified(long_ago),
        ]);
        let r = w.poll().await;
        assert_eq!((r.opened, r.stuck), (true, 1));
        assert!(body(&w.messages()[0]).contains("elegant-shirley"));
    }
}

on_both_engines! {
    async fn scaleway_refusing_the_key_three_polls_in_a_row_gives_one_warning_and_one_recovery(db: Db) {
        let mut w = watch(db, FLEET).await;
        let t0 = w.clock.now();
        w.fleet(vec![down(1, t0 - 60 * 60)]);
        assert!(w.poll().await.opened);
        let root = w.messages()[0].clone();

        w.scw.fail_next(
            ScwOp::ListServers,
            5,
            ScwFailure::denied_authentication("expired"),
        );
        let mut queued = Vec::new();
        for _ in 0..5 {
            w.clock.advance_minutes(5);
            let r = w.poll().await;
            assert_eq!(r.outcome, "scaleway_error");
            // What Scaleway cannot show is not fixed: the incident stands.
            assert_eq!(r.stuck, 1);
            queued.push(r.queued);
        }
        assert_eq!(queued, [0, 0, 1, 0, 0], "one warning, at the third failing poll");
        let messages = w.messages();
        assert_eq!(messages.len(), 2);
        let warning = messages[1].clone();
        assert_eq!((warning.channel.as_str(), warning.thread_ts.as_deref()), (CHANNEL, None));
        let sentence = ScwError::InvalidKey {
            reason: "expired".into(),
        }
        .user_message(Some("proj-1"));
        let text = body(&warning);
        assert!(text.contains(&sentence), "`{sentence}` not in {text}");
        assert!(text.contains("3 checks in a row have failed"), "{text}");
        assert!(text.contains("*fr-par-1*:"), "{text}");

        // Scaleway answers again: one reply to the warning, nothing in the incident's thread.
        w.clock.advance_minutes(5);
        let r = w.poll().await;
        assert_eq!((r.outcome, r.queued), ("ok", 1));
        let recovery = w.messages()[2].clone();
        assert_eq!(recovery.thread_ts.as_deref(), Some(warning.ts.as_str()));
        assert!(body(&recovery).contains("Scaleway answers again"), "{}", body(&recovery));
        assert!(body(&recovery).contains("5 checks failed in a row"), "{}", body(&recovery));
        assert!(w.messages().iter().all(|m| m.thread_ts.as_deref() != Some(root.ts.as_str())));
        w.clock.advance_minutes(5);
        assert_eq!(w.poll().await.queued, 0);
        has(&w.metrics(), r#"armbot_watch_polls_total{outcome="scaleway_error"} 5"#);
    }
}

on_both_engines! {
    async fn with_auto_reap_off_nothing_is_ever_deleted(db: Db) {
        let mut w = watch(
            db,
            &format!("{FLEET}[reap]\nallowed_users = [\"UADMIN\"]\n[watch]\nauto_reap_after_minutes = 1\n"),
        )
        .await;
        let t0 = w.clock.now();
        w.fleet(vec![
            down(1, t0 - 3 * 86_400).volume("vol-1", "l_ssd").ip("ip-1", false),
            down(2, t0 - 5 * 3600),
            builder(3),
        ]);
        for _ in 0..6 {
            let r = w.poll().await;
            assert_eq!((r.stuck, r.reaped), (2, 0));
            w.clock.advance_minutes(60);
        }
        assert!(body(&w.messages()[0]).contains("auto-reap off"));
        for op in [ScwOp::GetServer, ScwOp::DeleteServer, ScwOp::DeleteVolume, ScwOp::DeleteIp] {
            assert_eq!(w.scw.count(op), 0, "{op:?}");
        }
        assert_eq!(w.app.store_scalar("SELECT COUNT(*) FROM audit_log").await, 0);
        assert_eq!(w.app.store_scalar("SELECT COUNT(*) FROM reap_plans").await, 0);
    }
}

on_both_engines! {
    async fn auto_reap_removes_only_eligible_builders_within_the_cap_and_audits(db: Db) {
        let mut w = watch(
            db,
            &format!("{FLEET}[reap]\nmax_per_run = 2\n[watch]\nauto_reap = true\n"),
        )
        .await;
        let t0 = w.clock.now();
        let min = |m: i64| t0 - m * 60;
        let outsiders = vec![
            builder(8).arch("x86_64").state("stopped").modified(date(min(300))),
            ScwServer::new(ZONE, id(9), "cache-arm64").state("stopped").modified(date(min(300))),
        ];
        let mut fleet = vec![
            down(1, min(180)).volume("vol-1", "l_ssd").ip("ip-1", false),
            down(2, min(120)),
            down(3, min(90)),
            // Past the grace period, not past `auto_reap_after_minutes` (60).
            down(4, min(30)),
            down(5, min(300)).protected(true),
            builder(6),
        ];
        fleet.extend(outsiders);
        w.fleet(fleet);

        let r = w.poll().await;
        assert!(r.opened);
        // Three are due; `max_per_run` takes the two stuck longest.
        assert_eq!((r.reaped, r.stuck), (2, 3));
        let mut deleted = w.scw.deleted(ScwOp::DeleteServer);
        deleted.sort();
        assert_eq!(deleted, vec![id(1), id(2)]);
        assert!(!w.scw.has_volume(ZONE, "vol-1") && !w.scw.has_ip(ZONE, "ip-1"));
        let messages = w.messages();
        assert_eq!(messages.len(), 3, "root, what was removed, root updated");
        assert!(body(&messages[0]).contains("5 ARM builders are stuck shut down"));
        assert!(body(&messages[0]).contains("auto-reap after 1 h"));
        let told = &messages[1];
        assert_eq!(told.thread_ts.as_deref(), Some(messages[0].ts.as_str()));
        let text = body(told);
        for want in [
            "The fleet watch removed 2 stuck builders.",
            ":broom: The fleet watch removed *2 builders stuck over 1 h*.",
            ":white_check_mark: Removed `1` and `2`.",
            "1 volume and 1 flexible IP removed",
        ] {
            assert!(text.contains(want), "`{want}` not in {text}");
        }
        assert!(!text.contains("`3`"), "{text}");
        assert_eq!(messages[2].method, "chat.update");
        assert!(body(&messages[2]).contains("3 ARM builders are stuck shut down"));

        // The audit log says the fleet watch planned, confirmed and ran it.
        let plan_id = text
            .split("plan ")
            .nth(1)
            .map(|rest| rest.split(|c: char| !c.is_ascii_hexdigit() && c != '-').next())
            .and_then(|id| id.filter(|id| id.len() == 36))
            .expect("the plan id")
            .to_owned();
        let audit = w.app.store.audit_for(&plan_id).await.expect("audit");
        let actions: Vec<(&str, &str)> =
            audit.iter().map(|(u, a, _)| (u.as_str(), a.as_str())).collect();
        assert_eq!(
            actions,
            [("fleet watch", "plan"), ("fleet watch", "confirm"), ("fleet watch", "executed")]
        );
        assert!(audit[2].2.contains(&id(1)) && audit[2].2.contains(&id(2)));

        // Next poll: the third one.
        w.clock.advance_minutes(5);
        let r = w.poll().await;
        assert_eq!((r.reaped, r.stuck), (1, 2));
        // Builder 4 passes the hour.
        w.clock.advance_minutes(30);
        let r = w.poll().await;
        assert_eq!((r.reaped, r.stuck), (1, 1));
        w.clock.advance_minutes(60);
        assert_eq!(w.poll().await.reaped, 0);

        let mut deleted = w.scw.deleted(ScwOp::DeleteServer);
        deleted.sort();
        assert_eq!(deleted, vec![id(1), id(2), id(3), id(4)]);
        // Protected, running, x86 and outside the fleet: never touched.
        for n in [5, 6, 8, 9] {
            assert!(w.scw.has_server(ZONE, &id(n)), "server {n}");
        }
        // The protected one keeps the incident open.
        let last = w.messages().last().cloned().expect("a message");
        assert_eq!(last.method, "chat.update");
        assert!(body(&last).contains("1 ARM builder is stuck shut down"), "{}", body(&last));
        assert!(body(&last).contains("protected: reap leaves it alone"));
        let metrics = w.metrics();
        has(&metrics, "armbot_servers_removed_total 4");
        has(&metrics, r#"armbot_reaps_total{outcome="ok"} 3"#);
        assert_eq!(
            w.app
                .store_scalar("SELECT COUNT(*) FROM audit_log WHERE user_id = 'fleet watch' AND action = 'executed'")
                .await,
            3
        );
    }
}

on_both_engines! {
    async fn the_plan_a_reap_button_shows_the_clicker_the_same_plan_as_arm_reap(db: Db) {
        let mut w = watch(
            db,
            &format!("{FLEET}[reap]\nallowed_users = [\"UADMIN\"]\n"),
        )
        .await;
        // Shut down since the fakes' default date: past the grace period by any clock.
        w.fleet(vec![
            builder(1).state("stopped in place").volume("vol-1", "l_ssd"),
            builder(2).state("stopped"),
            builder(3),
        ]);
        assert!(w.poll().await.opened);
        let root = w.messages()[0].clone();
        let value = button_value(&root.body, PLAN_REAP_ACTION_ID).expect("the button");

        let url = w.slack.response_url("actions/T1/1/plan");
        let (status, ack) = w
            .app
            .request(button_click(PLAN_REAP_ACTION_ID, &value, "UASKER", &url))
            .await;
        assert_eq!((status, ack.as_str()), (axum::http::StatusCode::OK, ""));
        let shown = w
            .slack
            .wait_for_message(WAIT, |m| m.method == RESPONSE_URL && m.channel == "actions/T1/1/plan")
            .await
            .expect("the plan reaches the clicker");
        assert_eq!(shown.body["response_type"], "ephemeral");
        assert_eq!(shown.body["replace_original"], false, "the incident's root stays");
        let plan_id = button_value(&shown.body, "reap_confirm").expect("Confirm");
        assert!(body(&shown).contains("2 stuck ARM builders can be removed"), "{}", body(&shown));

        // `/arm reap` plans the same.
        let slash_url = w.slack.response_url("commands/T1/1/reap");
        w.app.request(slash("reap", &slash_url)).await;
        let planned = w
            .slack
            .wait_for_message(WAIT, |m| m.channel == "commands/T1/1/reap")
            .await
            .expect("the /arm reap plan");
        let sections = |v: &Value| -> Vec<Value> {
            v["blocks"]
                .as_array()
                .map(|b| b.iter().filter(|b| b["type"] == "section").cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(sections(&shown.body), sections(&planned.body));
        assert_eq!(shown.body["text"], planned.body["text"]);

        // Only an allowed user can confirm it.
        w.app
            .request(button_click("reap_confirm", &plan_id, "UASKER", &url))
            .await;
        let refused = w
            .slack
            .wait_for_message(WAIT, |m| {
                m.method == RESPONSE_URL && body(m).contains("Only <@UADMIN> can confirm")
            })
            .await
            .expect("refused");
        assert_eq!(refused.body["response_type"], "ephemeral");
        assert_eq!(w.scw.count(ScwOp::DeleteServer), 0);

        w.app
            .request(button_click("reap_confirm", &plan_id, "UADMIN", &url))
            .await;
        let done = w
            .slack
            .wait_for_message(WAIT, |m| m.method == RESPONSE_URL && m.body["replace_original"] == true)
            .await
            .expect("the plan replaced by its outcome");
        assert!(body(&done).contains("<@UADMIN> removed 2 stuck builders"), "{}", body(&done));
        let mut deleted = w.scw.deleted(ScwOp::DeleteServer);
        deleted.sort();
        assert_eq!(deleted, vec![id(1), id(2)]);
        let audit = w.app.store.audit_for(&plan_id).await.expect("audit");
        let actions: Vec<(&str, &str)> =
            audit.iter().map(|(u, a, _)| (u.as_str(), a.as_str())).collect();
        assert_eq!(
            actions,
            [("UASKER", "plan"), ("UASKER", "refused"), ("UADMIN", "confirm"), ("UADMIN", "executed")]
        );

        // The watch sees them gone and closes the incident.
        w.clock.advance_minutes(5);
        let r = w.poll().await;
        assert_eq!(r.stuck, 0);
        assert!(w.messages().iter().any(|m| body(m).contains("All clear")));
    }
}

on_both_engines! {
    async fn an_open_incidents_root_outlives_the_retention(db: Db) {
        let mut w = watch(db, FLEET).await;
        let t0 = w.clock.now();
        w.fleet(vec![down(1, t0 - 3600)]);
        assert!(w.poll().await.opened);
        assert_eq!(outbox_rows(&w.app).await, 1);
        let later = armbot::store::now_ms() + 30 * 86_400_000;
        let retention = std::time::Duration::from_secs(14 * 86_400);
        w.app.store.prune(later, retention).await.expect("prune");
        assert_eq!(outbox_rows(&w.app).await, 1, "the open incident's root is kept");

        // Weeks later the builder is gone: the all-clear still finds the thread.
        w.fleet(vec![]);
        assert_eq!(w.poll().await.queued, 2);
        let messages = w.messages();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].thread_ts.as_deref(), Some(messages[0].ts.as_str()));
        assert_eq!(messages[2].ts, messages[0].ts);

        // Closed, everything goes with the retention.
        let much_later = later + 30 * 86_400_000;
        w.app.store.prune(much_later, retention).await.expect("prune");
        assert_eq!(outbox_rows(&w.app).await, 0);
        assert!(w.app.store.watch_incidents("fleet").await.expect("incidents").is_empty());
    }
}

async fn outbox_rows(app: &TestApp) -> i64 {
    app.store_scalar("SELECT COUNT(*) FROM outbox").await
}

on_both_engines! {
    async fn two_replicas_polling_at_once_open_one_incident(db: Db) {
        // Only the replica holding the lease watches; at a change of leader the old one may
        // still be finishing a poll when the new one starts.
        let mut w = watch(db, FLEET).await;
        let t0 = w.clock.now();
        w.fleet(vec![down(1, t0 - 30 * 60), down(2, t0 - 40 * 60)]);
        let settings = settings_for(&w.scw, &w.slack, &w.toml);
        let other = w.app.replica_with_clock(settings, w.clock.clock()).await;
        let other_watcher = other.state.watcher().expect("the watch runs");
        let (a, b) = futures::join!(w.watcher.poll_once(), other_watcher.poll_once());
        assert_eq!(u8::from(a.opened) + u8::from(b.opened), 1, "{a:?} {b:?}");
        assert_eq!(a.queued + b.queued, 1, "{a:?} {b:?}");
        drain(&mut w.worker).await;
        assert_eq!(w.messages().len(), 1);
        assert_eq!(w.app.store.watch_incidents("fleet").await.expect("incidents").len(), 1);
    }
}

#[tokio::test]
async fn check_config_reports_the_watch() {
    let scw = FakeScaleway::start().await;
    let slack = FakeSlack::start().await;
    let on = settings_for(
        &scw,
        &slack,
        &format!(
            "{FLEET}[watch]\ninterval_secs = 120\nauto_reap = true\nauto_reap_after_minutes = 5\n"
        ),
    );
    let (report, ok) = armbot::check_config::report(&on);
    assert!(ok, "{report}");
    for want in [
        "watch enabled                  true",
        "watch interval_secs            120",
        "watch channel                  C0NOTIFY",
        "watch auto_reap                true",
        "watch auto_reap_after_minutes  5 (acts after 15: [reap] grace_minutes is longer)",
        "on   fleet watch\n",
        "on   fleet watch auto-reap",
    ] {
        assert!(report.contains(want), "`{want}` not in\n{report}");
    }

    // Asked for without Scaleway: an error that says what is missing.
    let file: FileSettings = toml::from_str("[watch]\nenabled = true\n").expect("toml");
    let off = settings_with_file(file, &[]);
    assert!(!off.watch.enabled);
    let (report, ok) = armbot::check_config::report(&off);
    assert!(!ok, "{report}");
    assert!(
        report.contains("error: [watch] enabled = true, but the watch cannot run: Scaleway is not set up (missing SCW_SECRET_KEY"),
        "{report}"
    );
    assert!(
        report.contains("off  fleet watch: Scaleway is not set up"),
        "{report}"
    );
}

#[tokio::test]
async fn the_leading_replica_runs_the_watch() {
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    scw.set_zone(ZONE, vec![builder(1).state("stopped")]);
    let slack = FakeSlack::start().await;
    let file: FileSettings = toml::from_str(FLEET).expect("toml");
    let settings = settings_with_file(
        file,
        &[
            ("ARMBOT_LISTEN", "127.0.0.1:0"),
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", ZONE),
            ("SCW_API_URL", &scw.uri()),
            ("SLACK_BOT_TOKEN", DEFAULT_TOKEN),
            ("SLACK_API_URL", &slack.api_url()),
        ],
    );
    let app = app(settings).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(armbot::server::run(app.state.clone(), async {
        let _ = stopped.await;
    }));
    // No poll is driven here: the replica that leads starts the watch, whose root the
    // delivery worker posts.
    let root = slack
        .wait_for_message(WAIT, |m| m.method == "chat.postMessage")
        .await
        .expect("the watch's root reaches Slack");
    assert_eq!(root.channel, CHANNEL);
    assert!(
        body(&root).contains("1 ARM builder is stuck shut down"),
        "{}",
        body(&root)
    );
    let _ = stop.send(());
    server.await.expect("joined").expect("clean stop");
}

/// The watch's messages as Slack shows them, on the sample of `docs/fleet-watch.md`: one
/// duration format, and every time a Slack date each reader sees in their own time zone.
#[test]
fn the_watch_messages_read_at_a_glance() {
    use armbot::{
        fleet::{ServerState, status::CapStatus},
        runner::MachineStates,
        watch::{
            incident::{Incident, Stuck, Trouble},
            render::{self, View},
        },
    };
    let view = |minutes: i64| View {
        now: NOW + minutes * 60,
        grace_minutes: 15,
        interval_secs: 300,
        auto_reap_after: Some(120),
        project: Some("proj-1".into()),
        cap: Some(CapStatus::Runner {
            states: MachineStates {
                used: 20,
                stuck_on_removing: 3,
                limit: Some(30),
                seen: true,
                ..MachineStates::default()
            },
            limit: Some(30),
        }),
        shown_without: "runner-arm-".into(),
    };
    let stuck = |n: usize, minutes: i64, protected: bool, by_itself: bool| Stuck {
        id: id(n),
        name: format!("runner-arm-{n}"),
        zone: ZONE.into(),
        commercial_type: "COPARM1-4C-16G".into(),
        state: ServerState::StoppedInPlace,
        since: NOW + 25 * 60 - minutes * 60,
        protected,
        by_itself,
    };
    let shown = vec![
        stuck(14, 7 * 60 + 5, true, false),
        stuck(12, 72, false, false),
        stuck(11, 22, false, true),
    ];
    let root = render::root(&shown, NOW, &view(25));
    let by_itself = render::by_itself(&shown[2..], &view(25));
    let incident = Incident {
        opened_at: NOW,
        shown: shown.clone(),
        peak: 3,
        reaped: 1,
        ..Incident::default()
    };
    let resolved = [
        render::resolved_root(&incident, &view(55)),
        render::all_clear(&incident, &view(55)),
    ];
    let failed = [(
        ZONE.to_owned(),
        ScwError::InvalidKey {
            reason: "expired".into(),
        },
    )];
    let trouble = [
        render::warning(&failed, 3, NOW + 60 * 60, &view(70)),
        render::recovered(
            &Trouble {
                failed_polls: 3,
                since: Some(NOW + 60 * 60),
                ..Trouble::default()
            },
            &view(75),
        ),
    ];
    for m in [&root, &by_itself]
        .into_iter()
        .chain(&resolved)
        .chain(&trouble)
    {
        assert_eq!(m.problems(), Vec::<String>::new(), "{m:?}");
        let text = serde_json::to_string(m).expect("json");
        // Times are Slack dates; no bare clock time, no old "5m"-style duration.
        assert!(!text.contains(" UTC "), "{text}");
        assert!(!text.contains("UTC)") && !text.contains("UTC ·"), "{text}");
        assert_eq!(terse_duration(&text), None, "{text}");
    }
    assert_eq!(terse_duration("over 2h: 5m"), Some(5));
    insta::assert_json_snapshot!("watch_incident_root", root);
    insta::assert_json_snapshot!("watch_by_itself", by_itself);
    insta::assert_json_snapshot!("watch_resolved", resolved);
    insta::assert_json_snapshot!("watch_scaleway_trouble", trouble);

    let root = root
        .blocks
        .iter()
        .map(|b| b.to_string())
        .collect::<String>();
    for want in [
        "for longer than the 15 min grace period",
        // Within 12 hours: the time of day; the duration says how long.
        "\\n• `14` · fr-par-1 · stopped in place for 7 h 5 min (since <!date^1799976000^{time}|01:20 UTC>)",
        "\\n• `11` · fr-par-1 · stopped in place for 22 min (since <!date^1800000180^{time}|08:03 UTC>)",
        "Fleet watch · checks every 5 min · opened <!date^1800000000^{time}|08:00 UTC> · as of <!date^1800001500^{time}|08:25 UTC> · auto-reap after 2 h · names without `runner-arm-`",
    ] {
        assert!(root.contains(want), "`{want}` not in {root}");
    }
    let resolved = serde_json::to_string(&resolved).expect("json");
    assert!(
        resolved.contains("resolved <!date^1800003300^{time}|08:55 UTC>, after 55 min"),
        "{resolved}"
    );
    let trouble = serde_json::to_string(&trouble).expect("json");
    assert!(
        trouble.contains("since <!date^1800003600^{time}|09:00 UTC>."),
        "{trouble}"
    );
    assert!(
        trouble.contains("after 15 min (3 checks failed in a row)"),
        "{trouble}"
    );
    // A name made to end the code span and fake a line of its own stays inside its line.
    let mut forged = stuck(2, 30, false, true);
    forged.name = "x`\n• `runner-arm-9` · fine `y".into();
    for m in [
        render::root(std::slice::from_ref(&forged), NOW, &view(25)),
        render::by_itself(std::slice::from_ref(&forged), &view(25)),
    ] {
        assert_eq!(m.problems(), Vec::<String>::new(), "{m:?}");
        let text = serde_json::to_string(&m).expect("json");
        assert!(
            text.contains(r"\n• `xˋ • ˋrunner-arm-9ˋ · fine ˋy` · fr-par-1 · "),
            "{text}"
        );
        assert!(!text.contains(r"\n• `runner-arm-9`"), "{text}");
    }
    // Older than 12 hours: with the day.
    let old = render::root(&[stuck(1, 3 * 1440, false, false)], NOW, &view(25));
    let old = serde_json::to_string(&old).expect("json");
    assert!(
        old.contains(
            "for 3 d (since <!date^1799742300^{date_short_pretty} at {time}|2027-01-12 08:25 UTC>)"
        ),
        "{old}"
    );
}

/// Where an old terse duration ("5m", "2h") starts: a digit, `m` or `h`, then no letter
/// (so "5 min" and "16G" are not one).
fn terse_duration(text: &str) -> Option<usize> {
    let padded = format!("{text} ");
    padded.as_bytes().windows(3).position(|w| {
        w[0].is_ascii_digit() && matches!(w[1], b'm' | b'h') && !w[2].is_ascii_alphabetic()
    })
}
