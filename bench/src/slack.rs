//! Slack requests as Slack sends them to the bot: signed slash commands and button clicks.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The signing secret the bench bots are started with.
pub const SIGNING_SECRET: &str = "bench-signing-secret";

/// `(timestamp, signature)` of `body` now.
pub fn sign(body: &str) -> (String, String) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    (
        ts,
        format!("v0={}", hex::encode(mac.finalize().into_bytes())),
    )
}

/// POSTs a signed Slack request; returns the status, the body and the latency.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: String,
) -> anyhow::Result<(u16, String, Duration)> {
    let (ts, sig) = sign(&body);
    let t = Instant::now();
    let r = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((status, text, t.elapsed()))
}

/// A slash command's form body, from the fake Slack's workspace (the one the bot serves).
pub fn slash_body(text: &str, user: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("command", "/arm"),
        ("text", text),
        ("team_id", armbot_fakes::slack::TEAM_ID),
        ("user_id", user),
        ("channel_id", "C0BENCH"),
        ("response_url", response_url),
        ("trigger_id", "1.2.3"),
    ])
    .unwrap_or_default()
}

/// A button click's form body, from the fake Slack's workspace.
pub fn click_body(
    action: &str,
    value: &str,
    user: &str,
    channel: &str,
    response_url: &str,
) -> String {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": armbot_fakes::slack::TEAM_ID},
        "user": {"id": user},
        "channel": {"id": channel},
        "response_url": response_url,
        "actions": [{"action_id": action, "value": value}],
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default()
}

/// The plan id on a reap plan's Confirm button.
pub fn find_confirm(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => {
            if o.get("action_id").and_then(Value::as_str) == Some("reap_confirm") {
                return o.get("value").and_then(Value::as_str).map(str::to_string);
            }
            o.values().find_map(find_confirm)
        }
        Value::Array(a) => a.iter().find_map(find_confirm),
        _ => None,
    }
}
