//! What `armbot render` prints: the decision the webhook would take on a payload and the
//! messages it would send, offline (no store, no Slack: the pipeline's user is mentioned only
//! when `[notify.users]` maps them).

use super::{
    mention,
    policy::{Decision, Outcome, decide},
    render::{self, Failure, FixedNotice},
    settings::NotifySettings,
};
use crate::{gitlab::PipelineHook, slack::blocks::Message};

/// The output of `armbot render`, and the problems Slack would have with its messages.
///
/// By default: `no message: <why>`, or `channel: <id>` then the failure notice's root (or the
/// "fixed" reply, which is sent only if the ref has an open incident). With `thread`: a JSON
/// list of the messages as posted, root first (what `slack_look.py` draws as a thread).
pub fn preview(
    hook: &PipelineHook,
    s: &NotifySettings,
    thread: bool,
) -> anyhow::Result<(String, Vec<String>)> {
    let (outcome, channel) = match decide(hook, s) {
        Decision::Ignore(reason) if thread => {
            return Ok(("[]\n".into(), vec![format!("no message: {reason}")]));
        }
        Decision::Ignore(reason) => return Ok((format!("no message: {reason}\n"), Vec::new())),
        Decision::Track { outcome, channel } => (outcome, channel),
    };
    let (shown, messages) = match outcome {
        Outcome::Failed => {
            let root = render::root_opened(&Failure::new(hook, s));
            let slack_user = match mention::who(hook, s) {
                mention::Who::Mapped(id) => Some(id),
                _ => None,
            };
            let mut messages = vec![root.clone()];
            messages.extend(mention::first_reply(hook, slack_user));
            (root, messages)
        }
        Outcome::Succeeded => {
            let fixed = FixedNotice::new(hook).reply(0);
            (fixed.clone(), vec![fixed])
        }
    };
    let problems: Vec<String> = messages
        .iter()
        .chain(std::iter::once(&shown))
        .flat_map(Message::problems)
        .collect();
    let out = if thread {
        format!("{}\n", serde_json::to_string_pretty(&messages)?)
    } else {
        let mut out = String::new();
        if outcome == Outcome::Succeeded {
            out.push_str(&format!(
                "no message unless {channel} has an open incident for this ref; then:\n"
            ));
        }
        out.push_str(&format!(
            "channel: {channel}\n{}\n",
            serde_json::to_string_pretty(&shown)?
        ));
        out
    };
    Ok((out, problems))
}
