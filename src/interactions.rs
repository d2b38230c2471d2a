//! Buttons (`block_actions`): sharing an FAQ answer, confirming or cancelling a reap.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{
    app::AppState,
    commands::{self, Responder, faq},
    reap,
    store::{NewMessage, OutboxKind, now_ms},
};

pub async fn handle(app: AppState, payload: Value) -> Response {
    if payload["type"] != "block_actions" {
        return StatusCode::OK.into_response();
    }
    let user = payload["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let action = &payload["actions"][0];
    let action_id = action["action_id"].as_str().unwrap_or_default();
    let value = action["value"].as_str().unwrap_or_default().to_string();
    let channel = payload["channel"]["id"]
        .as_str()
        .or(payload["container"]["channel_id"].as_str())
        .unwrap_or_default()
        .to_string();
    let response_url = payload["response_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if user.is_empty() {
        return (StatusCode::BAD_REQUEST, "block_actions without a user").into_response();
    }
    match action_id {
        faq::SHARE_ACTION => {
            let Some(message) = faq::shared(&app.faq, &value, &user) else {
                return StatusCode::OK.into_response();
            };
            let m = NewMessage {
                channel,
                kind: OutboxKind::Post,
                incident_id: None,
                target_ts: None,
                message,
            };
            if let Err(e) = app.store.enqueue(&m, now_ms()).await {
                tracing::error!(error = format!("{e:#}"), "could not queue a shared answer");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            app.wake.notify_one();
            if !response_url.is_empty() {
                tokio::spawn(async move {
                    Responder::for_url(app, &response_url, &user)
                        .send(json!({"delete_original": true}))
                        .await;
                });
            }
            StatusCode::OK.into_response()
        }
        reap::CONFIRM_ACTION_ID | reap::CANCEL_ACTION_ID => {
            let confirm = action_id == reap::CONFIRM_ACTION_ID;
            tokio::spawn(commands::reap::button(
                app,
                user,
                confirm,
                value,
                channel,
                response_url,
            ));
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}
