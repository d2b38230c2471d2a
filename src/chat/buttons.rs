//! Button clicks (`block_actions`): sharing an FAQ answer or a status report, answering an FAQ
//! topic, confirming or cancelling a reap, planning a reap from a fleet-watch incident or a
//! status report.
//!
//! Every click acts once: a request replayed within Slack's signature window carries the same
//! `action_ts`, user and message, and changes nothing (no second message, no second audit row).

use super::{Responder, faq, reap::Click};
use crate::{
    reap,
    slack::{
        Reply,
        payload::{Action, BlockActions},
    },
    state::AppState,
    store::{NewMessage, OutboxKind, now_ms},
    watch,
};

/// The de-duplication key of one click: who clicked which button on which message, when.
/// `None` without an `action_ts` (Slack always sends one; such a request cannot be told from
/// a new click).
fn click_key(click: &BlockActions, action: &Action) -> Option<String> {
    let ts = action.action_ts.as_deref().filter(|t| !t.is_empty())?;
    Some(format!(
        "slack-click:{}:{}:{}:{ts}",
        click.user.id,
        click.message_ts().unwrap_or("-"),
        action.action_id,
    ))
}

/// `Some(reply)` when the click was seen before (nothing more to do) or cannot be recorded
/// (Slack should retry); `None` for a first click, now recorded.
async fn replayed(app: &AppState, key: Option<&str>, what: &str) -> Option<Reply> {
    let key = key?;
    match app.store.first_sighting(&[key.to_owned()], now_ms()).await {
        Ok(true) => None,
        Ok(false) => {
            tracing::info!(what, "a replayed click changed nothing");
            Some(Reply::Nothing)
        }
        Err(e) => {
            tracing::error!(what, error = format!("{e:#}"), "could not record a click");
            Some(Reply::RetryLater)
        }
    }
}

/// Answers at once; a reap runs in the background and answers on `response_url`.
pub async fn handle(app: &AppState, click: BlockActions) -> Reply {
    let Some(action) = click.actions.first() else {
        return Reply::Nothing;
    };
    let key = click_key(&click, action);
    let user = click.user.id.clone();
    let channel = click.channel_id().map(str::to_string);
    let response_url = click.response_url.clone().unwrap_or_default();
    match action.action_id.as_str() {
        // One of the closest topics under "I don't know": its answer, to the clicker alone.
        id if faq::is_topic_action(id) => {
            if let Some(done) = replayed(app, key.as_deref(), "topic").await {
                return done;
            }
            let Some(message) = faq::topic(&app.faq, &action.value, channel.as_deref()) else {
                return Reply::Nothing;
            };
            let responder = Responder::new(app.clone(), &response_url, &user);
            app.spawn("faq topic", async move {
                responder.send(Reply::Aside(message)).await;
            });
            Reply::Nothing
        }
        faq::SHARE_ACTION => {
            let (Some(message), Some(channel)) =
                (faq::shared(&app.faq, &action.value, &user), channel)
            else {
                return Reply::Nothing;
            };
            let m = NewMessage {
                channel,
                kind: OutboxKind::Post,
                incident_id: None,
                target_ts: None,
                target_id: None,
                message,
            };
            match app.outbox.enqueue_once(key.as_slice(), &m).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(user = %user, "a replayed share click changed nothing");
                    return Reply::Nothing;
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "could not queue a shared answer");
                    return Reply::RetryLater;
                }
            }
            if !response_url.is_empty() {
                let responder = Responder::new(app.clone(), &response_url, &user);
                app.spawn("faq share", async move {
                    responder.send(Reply::DeleteOriginal).await;
                });
            }
            Reply::Nothing
        }
        reap::CONFIRM_ACTION_ID | reap::CANCEL_ACTION_ID => {
            if let Some(done) = replayed(app, key.as_deref(), "reap").await {
                return done;
            }
            let click = Click {
                user,
                confirm: action.action_id == reap::CONFIRM_ACTION_ID,
                plan_id: action.value.clone(),
                channel,
                plan_seen_by_all: !click.is_ephemeral(),
                response_url,
            };
            app.spawn("reap click", super::reap::click(app.clone(), click));
            Reply::Nothing
        }
        super::status::SHARE_ACTION => {
            let Some(channel) = channel else {
                return Reply::Nothing;
            };
            // Recorded before the report is gathered, so a replay costs no fleet listing.
            if let Some(done) = replayed(app, key.as_deref(), "status share").await {
                return done;
            }
            let share = super::status::share(
                app.clone(),
                user,
                channel,
                action.value.clone(),
                response_url,
            );
            app.spawn("status share", share);
            Reply::Nothing
        }
        // The same plan as `/arm reap`, shown to the clicker alone.
        watch::PLAN_REAP_ACTION_ID => {
            if let Some(done) = replayed(app, key.as_deref(), "plan").await {
                return done;
            }
            let plan = super::reap::plan_for_clicker(app.clone(), user, response_url);
            app.spawn("reap plan", plan);
            Reply::Nothing
        }
        _ => Reply::Nothing,
    }
}
