//! `/arm reap` through Slack: plan, who may confirm (user list and user group), confirmation
//! once, what Scaleway's answers do to the report, where the report goes, and the audit log.

use crate::common::*;
use armbot::{check_config, config::FileSettings};
use armbot_fakes::{FakeScaleway, ScwFailure, ScwOp, ScwServer};
use serde_json::Value;

const SERVER_ID: &str = "11111111-2222-3333-4444-555555555555";
const OTHER_ID: &str = "66666666-7777-8888-9999-000000000000";
const GROUP: &str = "S0ARM";

fn stuck() -> ScwServer {
    stuck_server(SERVER_ID, "runner-arm-stuck")
}

fn stuck_server(id: &str, name: &str) -> ScwServer {
    ScwServer::new("fr-par-1", id, name)
        .commercial_type("BASIC2-A4C-8G")
        .state("stopped in place")
}

/// A plan shown in Slack, ready for clicks. The caller scripts Scaleway's failures.
struct Planned {
    app: TestApp,
    fake: FakeSlack,
    scw: FakeScaleway,
    url: String,
    plan_id: String,
}

/// `/arm reap` with these servers stuck and this `[reap]` table (after `name_prefix`).
async fn planned(db: Db, servers: Vec<ScwServer>, reap: &str) -> Planned {
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    scw.set_zone("fr-par-1", servers);
    let file: FileSettings =
        toml::from_str(&format!("[reap]\nname_prefix = \"runner-arm\"\n{reap}")).expect("toml");
    let fake = FakeSlack::start().await;
    let (scw_uri, slack_api) = (scw.uri(), fake.api_url());
    let app = app_on(
        db,
        settings_with_file(
            file,
            &[
                ("SCW_SECRET_KEY", "scw-key"),
                ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
                ("SCW_DEFAULT_ZONE", "fr-par-1"),
                ("SCW_API_URL", &scw_uri),
                ("SLACK_BOT_TOKEN", "xoxb-test-token"),
                ("SLACK_API_URL", &slack_api),
            ],
        ),
    )
    .await;
    let url = fake.response_url("commands/T1/1/x");

    let (_, ack) = app.request(slash("reap", &url)).await;
    assert!(ack.contains("nothing is deleted"), "{ack}");
    let plan_msg = wait_messages(&fake, 1).await.remove(0);
    assert_eq!(plan_msg.body["response_type"], "in_channel");
    let plan_text = plan_msg.body.to_string();
    assert!(plan_text.contains("reap_confirm"), "{plan_text}");
    let plan_id = plan_msg.body["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("confirm button")
        .to_string();
    Planned {
        app,
        fake,
        scw,
        url,
        plan_id,
    }
}

impl Planned {
    async fn click(&self, action: &str, user: &str) {
        let (status, _) = self
            .app
            .request(button_click(action, &self.plan_id, user, &self.url))
            .await;
        assert_eq!(status, axum::http::StatusCode::OK);
    }

    /// The `n`th message sent to Slack in all (1-based: the plan is the first).
    async fn nth(&self, n: usize) -> Value {
        wait_messages(&self.fake, n).await.remove(n - 1).body
    }

    async fn actions(&self) -> Vec<(String, String, String)> {
        self.app
            .store
            .audit_for(&self.plan_id)
            .await
            .expect("audit")
    }

    /// The plan's message replaced by the report of the one click made: its fallback text.
    async fn report(&self) -> String {
        let report = self.nth(2).await;
        assert_eq!(report["replace_original"], true, "{report:?}");
        report["text"].as_str().expect("text").to_string()
    }

    /// What the outbox posts in the channel once delivered in full.
    async fn channel_posts(&self) -> Vec<Value> {
        let mut worker = self.app.worker(slack_transport(&self.fake));
        drain(&mut worker).await;
        self.fake
            .messages()
            .into_iter()
            .filter(|p| p.method == "chat.postMessage" && p.channel == "C0CHAN")
            .map(|p| p.body)
            .collect()
    }
}

fn audit_actions(rows: &[(String, String, String)]) -> Vec<&str> {
    rows.iter().map(|(_, a, _)| a.as_str()).collect()
}

/// The server deletes Scaleway received, and the servers they removed.
fn deletes(scw: &FakeScaleway) -> (usize, Vec<String>) {
    (
        scw.count(ScwOp::DeleteServer),
        scw.deleted(ScwOp::DeleteServer),
    )
}

on_both_engines! {
    async fn plan_refuse_confirm_once_and_audit(db: Db) {
        let p = planned(db, vec![stuck()], "allowed_users = [\"UADMIN\"]\n").await;

        // Someone not allowed: refused, nothing deleted.
        p.click("reap_confirm", "UNOBODY").await;
        let refusal = p.nth(2).await;
        assert_eq!(
            refusal["text"],
            "Only <@UADMIN> can confirm this reap; nothing changed.",
            "{refusal:?}"
        );

        // A double click: the plan runs once (DELETE expected exactly once).
        p.click("reap_confirm", "UADMIN").await;
        p.click("reap_confirm", "UADMIN").await;
        let all = wait_messages(&p.fake, 4).await;
        let texts: Vec<String> = all[2..]
            .iter()
            .map(|p| p.body["text"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(texts.iter().any(|t| t.contains("already")), "{texts:?}");
        assert!(
            all[2..].iter().any(|p| p.body["replace_original"] == true),
            "the plan message is updated"
        );
        let audit = p.actions().await;
        assert_eq!(
            audit_actions(&audit),
            vec!["plan", "refused", "confirm", "executed"]
        );
        assert!(audit[3].2.contains(SERVER_ID));
        assert_eq!(audit[2].0, "UADMIN");
        // No group configured: Slack is never asked.
        assert_eq!(p.fake.count("usergroups.users.list"), 0);
        // The DELETE is made exactly once, double click or not.
        assert_eq!(deletes(&p.scw), (1, vec![SERVER_ID.to_owned()]));
    }
}

on_both_engines! {
    async fn an_expired_or_unknown_plan_is_refused_and_nothing_runs(db: Db) {
        let p = planned(db, vec![stuck()], "allowed_users = [\"UADMIN\"]\n").await;
        // Stored as `/arm reap` stores a plan, but its time to be confirmed ran out.
        let now = armbot::store::now_ms();
        p.app
            .store
            .save_plan(
                "plan-old",
                "{}",
                "UASKER",
                now - 20 * 60_000,
                now - 10 * 60_000,
            )
            .await
            .expect("saved");

        for (n, plan) in [(2, "plan-old"), (3, "no-such-plan")] {
            let (status, _) = p
                .app
                .request(button_click("reap_confirm", plan, "UADMIN", &p.url))
                .await;
            assert_eq!(status, axum::http::StatusCode::OK);
            let refusal = p.nth(n).await;
            assert_eq!(refusal["response_type"], "ephemeral", "{refusal:?}");
            let expected = if plan == "plan-old" {
                "That plan has expired; run `/arm reap` again for a fresh one."
            } else {
                "I don't know that plan; run `/arm reap` again."
            };
            assert_eq!(refusal["text"], expected);
        }
        // The expired plan was never claimed: a retry still finds it expired, not running.
        p.app
            .request(button_click("reap_confirm", "plan-old", "UADMIN", &p.url))
            .await;
        assert_eq!(
            p.nth(4).await["text"],
            "That plan has expired; run `/arm reap` again for a fresh one."
        );
        assert_eq!(deletes(&p.scw), (0, vec![]));
    }
}

const WITH_GROUP: &str = "allowed_users = [\"UADMIN\"]\nallowed_usergroup = \"S0ARM\"\n";

on_both_engines! {
    async fn a_usergroup_member_can_confirm_and_the_reap_runs(db: Db) {
        let p = planned(db, vec![stuck()], WITH_GROUP).await;
        p.fake.set_usergroup(GROUP, &["UOTHER", "UMEMBER"]);

        p.click("reap_confirm", "UMEMBER").await;
        let done = p.nth(2).await;
        assert_eq!(done["replace_original"], true, "{done:?}");
        assert!(
            done["text"]
                .as_str()
                .is_some_and(|t| t == "<@UMEMBER> removed 1 stuck builder."),
            "{done:?}"
        );
        let audit = p.actions().await;
        assert_eq!(audit_actions(&audit), vec!["plan", "confirm", "executed"]);
        assert_eq!(audit[1].0, "UMEMBER");
        assert_eq!(audit[1].2, r#"{"via":"allowed_usergroup"}"#);
        assert_eq!(p.fake.count("usergroups.users.list"), 1);
        let metrics = p.app.state.metrics.render();
        // The reap's own Scaleway calls are counted, not only those of `/arm status`.
        for line in [
            r#"armbot_reaps_total{outcome="ok"} 1"#,
            "armbot_servers_removed_total 1",
            r#"armbot_scaleway_calls_total{endpoint="list_servers",outcome="200"} 1"#,
            r#"armbot_scaleway_calls_total{endpoint="delete_server",outcome="204"} 1"#,
        ] {
            assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
        }
        assert_eq!(deletes(&p.scw), (1, vec![SERVER_ID.to_owned()]));
    }
}

on_both_engines! {
    async fn someone_outside_the_usergroup_is_refused_and_nothing_is_deleted(db: Db) {
        let p = planned(db, vec![stuck()], WITH_GROUP).await;
        p.fake.set_usergroup(GROUP, &["UMEMBER"]);

        p.click("reap_confirm", "UOUTSIDER").await;
        let refusal = p.nth(2).await;
        assert_eq!(refusal["response_type"], "ephemeral");
        assert_eq!(
            refusal["text"],
            "Only <@UADMIN> or members of <!subteam^S0ARM> can confirm this reap; nothing \
             changed."
        );
        let audit = p.actions().await;
        assert_eq!(audit_actions(&audit), vec!["plan", "refused"]);
        assert_eq!(audit[1].2, r#"{"confirm":true,"reason":"not_allowed"}"#);
        assert_eq!(deletes(&p.scw), (0, vec![]));
    }
}

on_both_engines! {
    async fn a_failing_usergroup_lookup_refuses(db: Db) {
        // The fake knows no group S0ARM: Slack answers `no_such_subteam`.
        let p = planned(db, vec![stuck()], WITH_GROUP).await;

        p.click("reap_confirm", "UMEMBER").await;
        let refusal = p.nth(2).await;
        assert_eq!(refusal["response_type"], "ephemeral");
        assert_eq!(
            refusal["text"],
            "I couldn't check whether you are in the reap group: Slack knows no user group \
             `S0ARM`; ask an admin to give the bot the group's id (S…), not its handle. \
             <@UADMIN> can confirm meanwhile. Nothing changed."
        );
        assert!(!refusal.to_string().contains("xoxb"));
        let audit = p.actions().await;
        assert_eq!(audit_actions(&audit), vec!["plan", "refused"]);
        assert!(
            audit[1].2.contains("usergroup_unavailable"),
            "{:?}",
            audit[1]
        );
        assert_eq!(deletes(&p.scw), (0, vec![]));
    }
}

on_both_engines! {
    async fn clicks_within_the_cache_window_make_one_usergroup_call(db: Db) {
        let p = planned(db, vec![stuck()], WITH_GROUP).await;
        p.fake.set_usergroup(GROUP, &["UMEMBER"]);

        p.click("reap_confirm", "UOUTSIDER").await;
        p.click("reap_confirm", "UMEMBER").await;
        let answers = wait_messages(&p.fake, 3).await;
        let texts: Vec<&str> = answers[1..]
            .iter()
            .filter_map(|m| m.body["text"].as_str())
            .collect();
        assert!(texts.iter().any(|t| t.starts_with("Only")), "{texts:?}");
        assert!(texts.iter().any(|t| t.contains("removed")), "{texts:?}");
        assert_eq!(p.fake.count("usergroups.users.list"), 1);
        assert_eq!(deletes(&p.scw), (1, vec![SERVER_ID.to_owned()]));
    }
}

on_both_engines! {
    async fn a_server_already_gone_is_counted_as_such(db: Db) {
        let p = planned(db, vec![stuck()], "allowed_users = [\"UADMIN\"]\n").await;
        // Gone between the re-read and the delete.
        p.scw.fail_next(
            ScwOp::DeleteServer.on(SERVER_ID),
            1,
            ScwFailure::not_found("instance_server", SERVER_ID),
        );

        p.click("reap_confirm", "UADMIN").await;
        assert_eq!(p.report().await, "<@UADMIN> removed 1 stuck builder.");
        let blocks = p.nth(2).await["blocks"].to_string();
        assert!(blocks.contains(":white_check_mark: `stuck` was already gone."), "{blocks}");
        let audit = p.actions().await;
        assert_eq!(audit_actions(&audit), vec!["plan", "confirm", "executed"]);
        let executed: Value = serde_json::from_str(&audit[2].2).expect("json");
        assert_eq!(executed["results"][0]["outcome"], "AlreadyGone");
        assert_eq!(executed["stopped_early"], Value::Null);
        assert_eq!(deletes(&p.scw), (1, vec![]));
    }
}

on_both_engines! {
    async fn a_transient_state_is_retried_within_the_run(db: Db) {
        let p = planned(db,
            vec![stuck()],
            "allowed_users = [\"UADMIN\"]\ntransient_delay_ms = 1\n",
        )
        .await;
        // Busy once, then the delete goes through.
        p.scw.fail_next(
            ScwOp::DeleteServer.on(SERVER_ID),
            1,
            ScwFailure::transient_state(SERVER_ID, "stopping"),
        );

        p.click("reap_confirm", "UADMIN").await;
        assert_eq!(p.report().await, "<@UADMIN> removed 1 stuck builder.");
        let audit = p.actions().await;
        assert_eq!(audit_actions(&audit), vec!["plan", "confirm", "executed"]);
        let executed: Value = serde_json::from_str(&audit[2].2).expect("json");
        assert_eq!(executed["results"][0]["outcome"], "Removed");
        assert_eq!(deletes(&p.scw), (2, vec![SERVER_ID.to_owned()]));
    }
}

on_both_engines! {
    async fn permission_denied_stops_the_run_and_the_summary_says_so(db: Db) {
        // One at a time, so the second server is reached only after the first was refused.
        let p = planned(db,
            vec![
                stuck_server(SERVER_ID, "runner-arm-one"),
                stuck_server(OTHER_ID, "runner-arm-two"),
            ],
            "allowed_users = [\"UADMIN\"]\nconcurrency = 1\n",
        )
        .await;
        p.scw.fail_always(
            ScwOp::DeleteServer,
            ScwFailure::permissions_denied("delete", "instance_server"),
        );

        p.click("reap_confirm", "UADMIN").await;
        assert_eq!(
            p.report().await,
            "<@UADMIN> removed 0 of 2 stuck builders; 1 with a failure, 1 not attempted."
        );
        let blocks = p.nth(2).await["blocks"].to_string();
        assert!(blocks.contains(":octagonal_sign: Scaleway refused"), "{blocks}");
        let audit = p.actions().await;
        assert_eq!(audit_actions(&audit), vec!["plan", "confirm", "executed"]);
        let executed: Value = serde_json::from_str(&audit[2].2).expect("json");
        let stopped = executed["stopped_early"].as_str().expect("stopped early");
        assert!(
            stopped.contains(
                "lacks permission to delete a server (`delete` on `instance_server`) in project \
                 `proj-1`: give it InstancesFullAccess in that project. The run stopped"
            ),
            "{stopped}"
        );
        let outcomes: Vec<&str> = executed["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["outcome"].as_str())
            .collect();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes[0].starts_with("Failed"), "{outcomes:?}");
        assert!(outcomes[1].starts_with("NotAttempted"), "{outcomes:?}");
        assert_eq!(deletes(&p.scw), (1, vec![]));
    }
}

#[test]
fn check_config_warns_about_a_usergroup_it_cannot_check() {
    let file = |group: &str| -> FileSettings {
        toml::from_str(&format!("[reap]\nallowed_usergroup = \"{group}\"\n")).expect("toml")
    };
    // Console mode (no bot token) and a handle instead of an id: both said.
    let problems = check_config::problems(&settings_with_file(file("arm-admins"), &[]));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`arm-admins` is not a user group id")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("SLACK_BOT_TOKEN is not")),
        "{problems:?}"
    );
    let fine = settings_with_file(file(GROUP), &[("SLACK_BOT_TOKEN", "xoxb-test-token")]);
    assert!(
        !check_config::problems(&fine)
            .iter()
            .any(|p| p.contains("allowed_usergroup")),
        "{:?}",
        check_config::problems(&fine)
    );
}

on_both_engines! {
    async fn a_plan_posted_in_the_channel_is_not_reported_twice(db: Db) {
        let p = planned(db, vec![stuck()], "allowed_users = [\"UADMIN\"]\n").await;
        p.click("reap_confirm", "UADMIN").await;
        // The plan's message in the channel became the report: everyone sees it there.
        assert_eq!(p.report().await, "<@UADMIN> removed 1 stuck builder.");
        assert_eq!(p.channel_posts().await, Vec::<Value>::new());
    }
}

on_both_engines! {
    async fn a_plan_only_the_clicker_saw_is_reported_in_the_channel(db: Db) {
        let p = planned(db, vec![stuck()], "allowed_users = [\"UADMIN\"]\n").await;
        // As Slack sends a click on an ephemeral message ("Plan a reap" on an incident).
        let payload = serde_json::json!({
            "type": "block_actions", "user": {"id": "UADMIN"},
            "container": {"type": "message", "channel_id": "C0CHAN", "message_ts": "1.2",
                          "is_ephemeral": true},
            "response_url": p.url,
            "actions": [{"action_id": "reap_confirm", "value": p.plan_id}],
        });
        let form =
            serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
        let (status, _) = p
            .app
            .request(slack_request(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                &form,
            ))
            .await;
        assert_eq!(status, axum::http::StatusCode::OK);
        assert_eq!(p.report().await, "<@UADMIN> removed 1 stuck builder.");
        let posts = p.channel_posts().await;
        assert_eq!(posts.len(), 1, "{posts:?}");
        assert_eq!(posts[0]["text"], "<@UADMIN> removed 1 stuck builder.");
        assert!(
            posts[0]["blocks"].to_string().contains(":broom: <@UADMIN> removed *1 stuck builder*."),
            "{:?}",
            posts[0]
        );
        assert_eq!(deletes(&p.scw), (1, vec![SERVER_ID.to_owned()]));
    }
}
