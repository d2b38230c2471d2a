//! The chat layer, free of HTTP types: `/arm` commands, button clicks and Events API
//! messages in, a typed [`Reply`] out. Slow work runs in the background and answers through
//! a [`Responder`].

pub mod buttons;
pub mod events;
pub mod faq;
pub mod grammar;
pub mod reap;
pub mod responder;
pub mod status;

use std::time::Instant;

use crate::{
    slack::{Reply, mrkdwn::escape, mrkdwn::truncate},
    state::AppState,
};
use grammar::{ArmCommand, HELP};
pub use responder::Responder;

/// A verified slash command with the fields every command needs.
#[derive(Debug, Clone)]
pub struct SlashRequest {
    pub text: String,
    pub user_id: String,
    pub response_url: String,
}

/// Answers `/arm …` at once; status and reap acknowledge now and answer later.
pub async fn slash(app: &AppState, req: SlashRequest) -> Reply {
    let started = Instant::now();
    let cmd = grammar::parse(&req.text);
    let span = tracing::info_span!("command", command = cmd.name(), user = %req.user_id);
    let _enter = span.enter();
    let name = cmd.name();
    let immediate = match cmd {
        ArmCommand::Help => Reply::ephemeral(HELP),
        ArmCommand::Unknown(text) => Reply::ephemeral(format!(
            "I don't know `{}`. {HELP}",
            escape(&truncate(&text, 100))
        )),
        ArmCommand::Faq { question } => faq::slash(app, question.as_deref()),
        // These answer later and record their own outcome and duration.
        ArmCommand::Status { zones } => return status::start(app, &req, zones),
        ArmCommand::Reap => return reap::start(app, &req),
    };
    app.metrics
        .command(name, "ok", started.elapsed().as_secs_f64());
    immediate
}
