//! Slack's three request URLs: slash commands, interactivity and events.
//! Every request is verified on its raw bytes before anything is parsed.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    app::AppState,
    commands::{self, SlashRequest},
    events, interactions,
    slack::verify,
};

/// Slack bodies are small; anything bigger is not from Slack.
pub const SLACK_BODY_LIMIT: usize = 1024 * 1024;

/// A request body whose Slack signature checked out.
pub struct Verified {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl FromRequest<AppState> for Verified {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let Some(secret) = app.settings.slack.signing_secret.clone() else {
            tracing::warn!("a Slack request arrived but SLACK_SIGNING_SECRET is not set");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "SLACK_SIGNING_SECRET is not set",
            )
                .into_response());
        };
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        if let Err(e) = verify::verify(
            &secret,
            h("x-slack-request-timestamp"),
            h("x-slack-signature"),
            &body,
            (app.clock)(),
        ) {
            tracing::warn!(reason = %e, "Slack request refused");
            return Err(StatusCode::UNAUTHORIZED.into_response());
        }
        Ok(Self { headers, body })
    }
}

/// An ephemeral reply to the person who typed the command.
pub fn ephemeral(text: impl Into<String>, blocks: Option<Vec<Value>>) -> Response {
    let mut v = json!({"response_type": "ephemeral", "text": text.into()});
    if let Some(b) = blocks {
        v["blocks"] = Value::Array(b);
    }
    Json(v).into_response()
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    #[serde(default)]
    ssl_check: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    response_url: String,
}

pub async fn commands(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<CommandForm>(&v.body) else {
        return (StatusCode::BAD_REQUEST, "not a slash command form").into_response();
    };
    if form.ssl_check.as_deref() == Some("1") {
        return StatusCode::OK.into_response();
    }
    if form.user_id.is_empty() || form.response_url.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "user_id and response_url are required",
        )
            .into_response();
    }
    let req = SlashRequest {
        text: form.text,
        user_id: form.user_id,
        channel_id: form.channel_id,
        response_url: form.response_url,
    };
    commands::handle(app, req).await
}

#[derive(Debug, Deserialize)]
struct InteractionForm {
    payload: String,
}

pub async fn interactions(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<InteractionForm>(&v.body) else {
        return (StatusCode::BAD_REQUEST, "expected a payload field").into_response();
    };
    let Ok(payload) = serde_json::from_str::<Value>(&form.payload) else {
        return (StatusCode::BAD_REQUEST, "payload is not JSON").into_response();
    };
    interactions::handle(app, payload).await
}

pub async fn events(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(envelope) = serde_json::from_slice::<Value>(&v.body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let retry = v
        .headers
        .get("x-slack-retry-num")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    events::handle(app, envelope, retry).await
}
