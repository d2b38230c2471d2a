//! FAQ answers as Slack messages, for `/arm faq`, mentions and DMs.

use axum::response::Response;
use serde_json::{Value, json};

use crate::{
    app::AppState,
    faq::{Answer, Entry, KnowledgeBase},
    http::slack::ephemeral,
    notify::render::Message,
    slack::mrkdwn::{escape, link},
};

pub const SHARE_ACTION: &str = "faq_share";

fn answer_blocks(entry: &Entry) -> Vec<Value> {
    vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", escape(&entry.title), entry.answer)}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Source: {}", link(&entry.link, "ARM infrastructure handbook"))}]}),
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
        Answer::Hit { entry, .. } => Message {
            text: entry.title.clone(),
            blocks: answer_blocks(entry),
        },
        Answer::Unknown => unknown(kb),
    }
}

fn unknown(kb: &KnowledgeBase) -> Message {
    let text = format!(
        "I don't know the answer to that one. {}\nTry `/arm faq <question>` with one of them, or ask the Distribution team.",
        topics(kb)
    );
    Message {
        text: text.clone(),
        blocks: vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})],
    }
}

/// `/arm faq [question]`: answered at once, visible to the asker, with a
/// button to share the answer in the channel.
pub fn slash(app: &AppState, question: Option<&str>) -> Response {
    let Some(question) = question else {
        return ephemeral(
            format!("{}\nAsk with `/arm faq <question>`.", topics(&app.faq)),
            None,
        );
    };
    match app.faq.answer(question) {
        Answer::Hit { entry, .. } => {
            let mut blocks = answer_blocks(entry);
            blocks.push(json!({"type": "actions", "elements": [{
                "type": "button",
                "action_id": SHARE_ACTION,
                "text": {"type": "plain_text", "text": "Share in channel"},
                "value": entry.id,
            }]}));
            ephemeral(entry.title.clone(), Some(blocks))
        }
        Answer::Unknown => {
            let m = unknown(&app.faq);
            ephemeral(m.text, Some(m.blocks))
        }
    }
}

/// The message posted when someone shares an answer.
pub fn shared(kb: &KnowledgeBase, entry_id: &str, user_id: &str) -> Option<Message> {
    let entry = kb.entries().iter().find(|e| e.id == entry_id)?;
    let mut blocks = answer_blocks(entry);
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Shared by <@{}> with `/arm faq`", escape(user_id))}]}));
    Some(Message {
        text: entry.title.clone(),
        blocks,
    })
}
