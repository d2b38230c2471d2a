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

/// Whether a request from workspace `team` is to be refused: the bot serves one workspace
/// (`SLACK_TEAM_ID`, by default the bot token's). A refused request is answered 200 (Slack
/// would retry an error, and a stranger learns nothing from it), logged and counted.
fn foreign(app: &AppState, team: Option<&str>, endpoint: &'static str) -> bool {
    let ours = app.identity.get().map(|me| me.team_id.as_str());
    if !app.settings.slack.team.refuses(ours, team) {
        return false;
    }
    tracing::warn!(
        endpoint,
        team = team.unwrap_or("none"),
        "Slack request from another workspace ignored"
    );
    app.metrics
        .slack_foreign_team
        .get_or_create(&crate::metrics::SlackEndpoint {
            endpoint: endpoint.to_owned(),
        })
        .inc();
    true
}

/// What someone typing `/arm` in another workspace sees.
const FOREIGN_COMMAND: &str = "This bot only serves the Slack workspace it is installed in.";

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
    if foreign(
        &app,
        Some(form.team_id.as_str()).filter(|t| !t.is_empty()),
        "commands",
    ) {
        return respond(Reply::ephemeral(FOREIGN_COMMAND));
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
    if foreign(&app, click.team_id(), "interactions") {
        return StatusCode::OK.into_response();
    }
    respond(chat::buttons::handle(&app, click).await)
}

pub async fn events(State(app): State<AppState>, v: Verified) -> Response {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&v.body) else {
        return bad_request("not an Events API request");
    };
    let team = match &envelope {
        Envelope::EventCallback(callback) => Some(callback.team_id.as_deref()),
        Envelope::UrlVerification { .. } | Envelope::Other => None,
    };
    if team.is_some_and(|team| foreign(&app, team, "events")) {
        return StatusCode::OK.into_response();
    }
    let retry = v
        .headers
        .get("x-slack-retry-num")
        .and_then(|h| h.to_str().ok());
    respond(chat::events::handle(&app, envelope, retry).await)
}
