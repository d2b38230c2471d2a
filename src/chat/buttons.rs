//! Button clicks (`block_actions`): sharing an FAQ answer, confirming or cancelling a reap,
//! planning a reap from a fleet-watch incident.

use super::{Responder, faq, reap::Click};
use crate::{
    reap,
    slack::{Reply, payload::BlockActions},
    state::AppState,
    store::{NewMessage, OutboxKind},
    watch,
};

/// Answers at once; a reap runs in the background and answers on `response_url`.
pub async fn handle(app: &AppState, click: BlockActions) -> Reply {
    let Some(action) = click.actions.first() else {
        return Reply::Nothing;
    };
    let user = click.user.id.clone();
    let channel = click.channel_id().map(str::to_string);
    let response_url = click.response_url.clone().unwrap_or_default();
    match action.action_id.as_str() {
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
            if let Err(e) = app.outbox.enqueue(&m).await {
                tracing::error!(error = format!("{e:#}"), "could not queue a shared answer");
                return Reply::RetryLater;
            }
            if !response_url.is_empty() {
                let app = app.clone();
                tokio::spawn(async move {
                    Responder::new(app, &response_url, &user)
                        .send(Reply::DeleteOriginal)
                        .await;
                });
            }
            Reply::Nothing
        }
        reap::CONFIRM_ACTION_ID | reap::CANCEL_ACTION_ID => {
            let click = Click {
                user,
                confirm: action.action_id == reap::CONFIRM_ACTION_ID,
                plan_id: action.value.clone(),
                channel,
                response_url,
            };
            tokio::spawn(super::reap::click(app.clone(), click));
            Reply::Nothing
        }
        // The same plan as `/arm reap`, shown to the clicker alone.
        watch::PLAN_REAP_ACTION_ID => {
            tokio::spawn(super::reap::plan_for_clicker(
                app.clone(),
                user,
                response_url,
            ));
            Reply::Nothing
        }
        _ => Reply::Nothing,
    }
}
