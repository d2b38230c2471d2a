//! `/arm reap` through Slack: plan, refusal, confirmation once, audit log.

mod common;

use armbot::config::FileSettings;
use common::*;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

const SERVER_ID: &str = "11111111-2222-3333-4444-555555555555";

fn stuck() -> Value {
    json!({
        "id": SERVER_ID, "name": "runner-arm-stuck", "arch": "arm64", "commercial_type": "BASIC2-A4C-8G",
        "state": "stopped in place", "zone": "fr-par-1", "project": "proj-1", "tags": [], "protected": false,
        "modification_date": "2026-01-01T00:00:00+00:00", "volumes": {}, "public_ips": []
    })
}

fn click(
    action: &str,
    user: &str,
    plan_id: &str,
    response_url: &str,
) -> axum::http::Request<axum::body::Body> {
    let payload = json!({
        "type": "block_actions", "user": {"id": user}, "channel": {"id": "C0CHAN"},
        "response_url": response_url, "actions": [{"action_id": action, "value": plan_id}]
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
async fn plan_refuse_confirm_once_and_audit() {
    let scw = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/instance/v1/zones/fr-par-1/servers"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-total-count", "1")
                .set_body_json(json!({"servers": [stuck()]})),
        )
        .mount(&scw)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/instance/v1/zones/fr-par-1/servers/{SERVER_ID}"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"server": stuck()})))
        .mount(&scw)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!(
            "/instance/v1/zones/fr-par-1/servers/{SERVER_ID}"
        )))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&scw)
        .await;
    let file: FileSettings =
        toml::from_str("[reap]\nallowed_users = [\"UADMIN\"]\nname_prefix = \"runner-arm\"\n")
            .expect("toml");
    let uri = scw.uri();
    let app = app(settings_with_file(
        file,
        &[
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", "fr-par-1"),
            ("SCW_API_URL", &uri),
        ],
    ))
    .await;
    let (fake, slack) = FakeSlack::start().await;
    let url = format!("{}/commands/T1/1/x", slack.uri());

    let (_, ack) = app.request(slash("reap", &url)).await;
    assert!(ack.contains("nothing is deleted"), "{ack}");
    let plan_msg = fake.wait_for(1).await.remove(0);
    assert_eq!(plan_msg.body["response_type"], "in_channel");
    let plan_text = plan_msg.body.to_string();
    assert!(
        plan_text.contains("runner-arm-stuck") && plan_text.contains("reap_confirm"),
        "{plan_text}"
    );
    let plan_id = plan_msg.body["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("confirm button")
        .to_string();

    // Someone not allowed: refused, nothing deleted.
    app.request(click("reap_confirm", "UNOBODY", &plan_id, &url))
        .await;
    let refusal = fake.wait_for(2).await.remove(1);
    assert!(
        refusal.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("allowed_users")),
        "{:?}",
        refusal.body
    );

    // A double click: the plan runs once (DELETE expected exactly once).
    app.request(click("reap_confirm", "UADMIN", &plan_id, &url))
        .await;
    app.request(click("reap_confirm", "UADMIN", &plan_id, &url))
        .await;
    let all = fake.wait_for(4).await;
    let texts: Vec<String> = all[2..]
        .iter()
        .map(|p| p.body["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(texts.iter().any(|t| t.contains("already")), "{texts:?}");
    assert!(
        all[2..].iter().any(|p| p.body["replace_original"] == true),
        "the plan message is updated"
    );
    let audit = app.store.audit_for(&plan_id).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(actions, vec!["plan", "refused", "confirm", "executed"]);
    assert!(audit[3].2.contains(SERVER_ID));
    assert_eq!(audit[2].0, "UADMIN");
}
