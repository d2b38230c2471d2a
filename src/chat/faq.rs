//! FAQ answers as Slack messages, for `/arm faq`, mentions and DMs.

use serde_json::Value;

use crate::{
    faq::{Answer, Entry, KnowledgeBase},
    slack::{
        Message, Reply,
        blocks::{actions, button, context, section},
        mrkdwn::{escape, link},
    },
    state::AppState,
};

pub const SHARE_ACTION: &str = "faq_share";

fn answer_blocks(entry: &Entry) -> Vec<Value> {
    vec![
        section(&format!("*{}*\n{}", escape(&entry.title), entry.answer)),
        context(&format!(
            "Source: {}",
            link(&entry.link, "ARM infrastructure handbook")
        )),
    ]
}

/// The topic list, for "I don't know" and `/arm faq` alone.
pub fn topics(kb: &KnowledgeBase) -> String {
    let mut out = String::from("Topics I can answer:");
    for e in kb.entries() {
        out.push_str(&format!("\n• {}", escape(&e.title)));
    }
    out
}

/// The answer to `question` as a plain message (mentions and DMs).
pub fn answer(kb: &KnowledgeBase, question: &str) -> Message {
    match kb.answer(question) {
        Answer::Hit { entry, .. } => Message::new(entry.title.clone(), answer_blocks(entry)),
        Answer::Unknown { .. } => unknown(kb),
    }
}

fn unknown(kb: &KnowledgeBase) -> Message {
    let text = format!(
        "I don't know the answer to that one. {}\nTry `/arm faq <question>` with one of them, or ask the Distribution team.",
        topics(kb)
    );
    Message::new(text.clone(), vec![section(&text)])
}

/// `/arm faq [question]`: answered at once, visible to the asker, with a button to share the
/// answer in the channel.
pub fn slash(app: &AppState, question: Option<&str>) -> Reply {
    let Some(question) = question else {
        return Reply::ephemeral(format!(
            "{}\nAsk with `/arm faq <question>`.",
            topics(&app.faq)
        ));
    };
    match app.faq.answer(question) {
        Answer::Hit { entry, .. } => {
            let mut blocks = answer_blocks(entry);
            blocks.push(actions(
                None,
                vec![button(SHARE_ACTION, "Share in channel", &entry.id, None)],
            ));
            Reply::Ephemeral(Message::new(entry.title.clone(), blocks))
        }
        Answer::Unknown { .. } => Reply::Ephemeral(unknown(&app.faq)),
    }
}

/// The message posted when someone shares an answer.
pub fn shared(kb: &KnowledgeBase, entry_id: &str, user_id: &str) -> Option<Message> {
    let entry = kb.entries().iter().find(|e| e.id == entry_id)?;
    let mut blocks = answer_blocks(entry);
    blocks.push(context(&format!(
        "Shared by <@{}> with `/arm faq`",
        escape(user_id)
    )));
    Some(Message::new(entry.title.clone(), blocks))
}
