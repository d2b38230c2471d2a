//! The Slack app manifest matches the code: routes, command, scopes.

use std::collections::BTreeSet;

use crate::common::*;
use axum::http::StatusCode;

fn manifest() -> serde_json::Value {
    let text = include_str!("../../manifest/slack-app.yaml");
    serde_saphyr::from_str(text).expect("manifest is YAML")
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_string(), |i| rest[i..].to_string())
}

#[tokio::test]
async fn every_url_is_a_route_of_the_app() {
    let m = manifest();
    let urls = [
        m["features"]["slash_commands"][0]["url"].as_str(),
        m["settings"]["event_subscriptions"]["request_url"].as_str(),
        m["settings"]["interactivity"]["request_url"].as_str(),
    ];
    let app = app(settings(&[])).await;
    for url in urls {
        let url = url.expect("url present");
        let path = path_of(url);
        let (status, _) = app
            .request(slack_request(
                &path,
                "application/x-www-form-urlencoded",
                "",
            ))
            .await;
        assert_ne!(status, StatusCode::NOT_FOUND, "{path} is not routed");
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{path} does not take POST"
        );
    }
}

#[test]
fn the_command_is_arm_and_events_are_the_ones_handled() {
    let m = manifest();
    assert_eq!(
        m["features"]["slash_commands"][0]["command"].as_str(),
        Some("/arm")
    );
    let events: Vec<&str> = m["settings"]["event_subscriptions"]["bot_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(events, vec!["app_mention", "message.im"]);
    assert_eq!(
        m["settings"]["interactivity"]["is_enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        m["features"]["app_home"]["messages_tab_enabled"].as_bool(),
        Some(true),
        "DMs need the messages tab"
    );
}

#[test]
fn scopes_are_exactly_what_the_code_uses() {
    let m = manifest();
    let scopes: BTreeSet<&str> = m["oauth_config"]["scopes"]["bot"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let mut needed: BTreeSet<&str> =
        BTreeSet::from(["commands", "app_mentions:read", "im:history"]);
    for method in armbot::slack::api::METHODS {
        let for_method: &[&str] = match *method {
            "auth.test" => &[],
            "chat.postMessage" | "chat.update" => &["chat:write"],
            // The outbox looks for lost posts wherever it posts: channels, private channels, DMs.
            "conversations.history" | "conversations.replies" => {
                &["channels:history", "groups:history", "im:history"]
            }
            "usergroups.users.list" => &["usergroups:read"],
            // Optional: without them the pipeline's user is named, not mentioned. Slack grants
            // users:read.email only together with users:read.
            "users.lookupByEmail" => &["users:read", "users:read.email"],
            other => panic!("no scope mapping for {other}: add it here and to the manifest"),
        };
        needed.extend(for_method);
    }
    assert_eq!(scopes, needed);
}

/// `METHODS` is what the scope check above trusts, so it must list every method the client
/// calls: each `call("…")` / `get("…")` in the client's source.
#[test]
fn methods_list_every_method_the_client_calls() {
    let source = include_str!("../../src/slack/api.rs");
    let called = regex::Regex::new(r#"self\s*\.(?:call|get)\(\s*"([a-zA-Z.]+)""#).expect("regex");
    let mut in_source: Vec<&str> = called
        .captures_iter(source)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    in_source.sort_unstable();
    in_source.dedup();
    let mut listed = armbot::slack::api::METHODS.to_vec();
    listed.sort_unstable();
    assert_eq!(in_source, listed);
}
