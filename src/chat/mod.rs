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
    slack::{
        Message, Reply,
        blocks::{context, section},
        mrkdwn::{code, truncate},
    },
    state::AppState,
};
use grammar::{ArmCommand, HELP, HELP_NOTE};
pub use responder::Responder;

/// A verified slash command with the fields every command needs.
#[derive(Debug, Clone)]
pub struct SlashRequest {
    pub text: String,
    pub user_id: String,
    pub response_url: String,
}

/// The help, after "I don't know that command" on a line of its own when `unknown` is set.
fn help(unknown: Option<&str>) -> Message {
    let mut blocks = Vec::new();
    let mut text = String::from("The /arm commands: status, reap, faq, help");
    if let Some(unknown) = unknown {
        let shown = code(&truncate(unknown, 100));
        text = if shown.is_empty() {
            "I don't know that command.".to_string()
        } else {
            format!("I don't know the command {shown}.")
        };
        blocks.push(section(&text));
    }
    blocks.push(section(HELP));
    blocks.push(context(HELP_NOTE));
    Message::new(text, blocks)
}

/// Answers `/arm …` at once; status and reap acknowledge now and answer later.
pub async fn slash(app: &AppState, req: SlashRequest) -> Reply {
    let started = Instant::now();
    let cmd = grammar::parse(&req.text);
    let span = tracing::info_span!("command", command = cmd.name(), user = %req.user_id);
    let _enter = span.enter();
    let name = cmd.name();
    let immediate = match cmd {
        ArmCommand::Help => Reply::Ephemeral(help(None)),
        ArmCommand::Unknown(text) => Reply::Ephemeral(help(Some(&text))),
        ArmCommand::Faq { question } => faq::slash(app, question.as_deref()),
        // These answer later and record their own outcome and duration.
        ArmCommand::Status { zones } => return status::start(app, &req, zones),
        ArmCommand::Reap => return reap::start(app, &req),
    };
    app.metrics
        .command(name, "ok", started.elapsed().as_secs_f64());
    immediate
}
