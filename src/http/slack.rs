//! Slack's three request URLs: slash commands, interactivity and events. Every request is
//! verified on its raw bytes, then parsed into its typed payload (400 when it is not one),
//! handed to the chat layer, and its [`Reply`] turned into the response.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    chat::{self, SlashRequest},
    slack::{
        Reply,
        payload::{Envelope, Interaction, SlashCommand},
        verify,
    },
    state::AppState,
};

/// Slack's requests are a few KiB: a form with a command's text, an interaction with the
/// clicked message (at most 50 blocks), an event with a message (at most 40,000 characters).
/// Anything bigger is not from Slack, and is refused before it is read.
pub const SLACK_BODY_LIMIT: usize = 256 * 1024;

/// What can be checked before the body is read: the signing secret is set, and the request
/// carries a fresh timestamp and a signature of the right form.
pub fn precheck(app: &AppState, headers: &HeaderMap) -> Result<(), super::budget::Refusal> {
    if app.settings.slack.signing_secret.is_none() {
        tracing::warn!("a Slack request arrived but SLACK_SIGNING_SECRET is not set");
        return Err(NO_SECRET);
    }
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    verify::verify_headers(
        h("x-slack-request-timestamp"),
        h("x-slack-signature"),
        (app.clock)(),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "Slack request refused on its headers, unread");
        (StatusCode::UNAUTHORIZED, "")
    })
}

const NO_SECRET: super::budget::Refusal = (
    StatusCode::SERVICE_UNAVAILABLE,
    "SLACK_SIGNING_SECRET is not set",
);

/// A request body whose Slack signature checked out.
pub struct Verified {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl FromRequest<AppState> for Verified {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let Some(secret) = app.settings.slack.signing_secret.clone() else {
            return Err(NO_SECRET.into_response());
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

/// The one place a chat reply becomes an HTTP response.
fn respond(reply: Reply) -> Response {
    if reply == Reply::RetryLater {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match reply.body() {
        Some(body) => Json(body).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

fn bad_request(why: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}

pub async fn commands(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<SlashCommand>(&v.body) else {
        return bad_request("not a slash command form");
    };
    if form.ssl_check.as_deref() == Some("1") {
        return StatusCode::OK.into_response();
    }
    if form.user_id.is_empty() || form.response_url.is_empty() {
        return bad_request("user_id and response_url are required");
    }
    let req = SlashRequest {
        text: form.text,
        user_id: form.user_id,
        response_url: form.response_url,
    };
    respond(chat::slash(&app, req).await)
}

#[derive(Debug, Deserialize)]
struct InteractionForm {
    payload: String,
}

pub async fn interactions(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<InteractionForm>(&v.body) else {
        return bad_request("expected a payload field");
    };
    let click = match serde_json::from_str::<Interaction>(&form.payload) {
        Ok(Interaction::BlockActions(click)) if !click.user.id.is_empty() => click,
        Ok(Interaction::BlockActions(_)) => return bad_request("block_actions without a user"),
        Ok(Interaction::Other) => return StatusCode::OK.into_response(),
        Err(_) => return bad_request("payload is not an interaction"),
    };
    respond(chat::buttons::handle(&app, click).await)
}

pub async fn events(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&v.body) else {
        return bad_request("not an Events API request");
    };
    let retry = v
        .headers
        .get("x-slack-retry-num")
        .and_then(|h| h.to_str().ok());
    respond(chat::events::handle(&app, envelope, retry).await)
}
