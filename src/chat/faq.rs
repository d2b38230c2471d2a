//! FAQ answers as Slack messages, for `/arm faq`, mentions and DMs, and the clicks on their
//! buttons: "Share in channel" and the closest topics offered when there is no answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    faq::{Answer, Entry, KnowledgeBase},
    notify::settings::is_slack_user_id,
    slack::{
        Message, Reply,
        blocks::{
            MAX_BUTTON_LABEL, MAX_BUTTON_VALUE, MAX_TEXT_CHARS, actions, button, context,
            fit_lines, section,
        },
        mrkdwn::{code, escape, len, link, name, one_line, truncate, unescape},
    },
    state::AppState,
};

pub const SHARE_ACTION: &str = "faq_share";
/// A topic button's action id is this, `_` and its place: Slack wants the action ids of one
/// block distinct.
const TOPIC_ACTION: &str = "faq_topic_";

/// How much of a question is quoted back ("@dana asked: …") and carried by a button.
pub const MAX_QUESTION: usize = 300;

const ALL_TOPICS: &str = "All topics: `/arm faq` · or ask the Distribution team";

pub fn is_topic_action(action_id: &str) -> bool {
    action_id.starts_with(TOPIC_ACTION)
}

/// What an FAQ button carries back with its click: the entry, and the question it was offered
/// for with who asked it, so that a shared answer can start with "@dana asked: …" when Dana
/// shares it herself.
///
/// Slack returns a button's value with the click, so the question needs no storage: nothing
/// to expire or clean up, and any replica can take the click. The value is bounded (see
/// [`Asked::value`]) and, though Slack signs the click, read back as untrusted text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Asked {
    #[serde(rename = "e")]
    entry: String,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    question: Option<String>,
    /// Who asked; absent when only the asker can click (an ephemeral reply). Read back only to
    /// tell whether the sharer asked: a value is no proof of what someone else asked.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    asker: Option<String>,
}

impl Asked {
    fn new(entry: &Entry, question: &str, asker: Option<&str>) -> Self {
        let question = truncate(one_line(question).trim(), MAX_QUESTION);
        Self {
            entry: entry.id.clone(),
            question: (!question.is_empty()).then_some(question),
            asker: asker.and_then(user_id).map(str::to_owned),
        }
    }

    /// The button value: JSON, within Slack's 2,000 characters. The question is cut to
    /// [`MAX_QUESTION`] UTF-16 units, and JSON at most doubles a character (`"` -> `\"`), so
    /// it fits; the question is dropped rather than letting Slack refuse the message.
    fn value(&self) -> String {
        let json = |a: &Asked| serde_json::to_string(a).unwrap_or_else(|_| a.entry.clone());
        let full = json(self);
        if len(&full) <= MAX_BUTTON_VALUE {
            return full;
        }
        json(&Asked {
            question: None,
            ..self.clone()
        })
    }

    /// Reads a button value. Buttons sent before questions travelled with them carry the
    /// bare entry id.
    fn read(value: &str) -> Self {
        serde_json::from_str(value).unwrap_or_else(|_| Asked {
            entry: value.to_owned(),
            ..Asked::default()
        })
    }

    /// The question as mrkdwn, quoted, on one line.
    fn quoted(&self) -> Option<String> {
        let q = self.question.as_deref()?;
        let q = name(q.trim(), MAX_QUESTION);
        (!q.trim().is_empty()).then(|| format!("“{q}”"))
    }
}

/// A Slack user id (`U…`, `W…`), safe to put in `<@…>`.
fn user_id(id: &str) -> Option<&str> {
    is_slack_user_id(id).then_some(id)
}

/// A direct message channel: there, "Share in channel" would share with no one.
fn is_dm(channel: Option<&str>) -> bool {
    channel.is_some_and(|c| c.starts_with('D'))
}

/// The answer, and its source in small print followed by `note` (mrkdwn) if any.
fn answer_blocks(entry: &Entry, note: Option<&str>) -> Vec<Value> {
    let mut small = format!(
        "Source: {}",
        link(&entry.link, "ARM infrastructure handbook")
    );
    if let Some(note) = note {
        small.push_str(" · ");
        small.push_str(note);
    }
    vec![
        section(&format!("*{}*\n{}", escape(&entry.title), entry.answer)),
        context(&small),
    ]
}

/// An answer shown to one person, with a button to share it in the channel.
fn private_answer(entry: &Entry, asked: &Asked, shareable: bool) -> Message {
    let mut blocks = answer_blocks(entry, None);
    if shareable {
        blocks.push(actions(
            None,
            vec![button(
                SHARE_ACTION,
                "Share in channel",
                &asked.value(),
                None,
            )],
        ));
    }
    Message::new(escape(&entry.title), blocks)
}

/// `/arm faq` alone: every topic, one a line.
fn topics(kb: &KnowledgeBase) -> Message {
    let lines: Vec<String> = kb
        .entries()
        .iter()
        .map(|e| format!("• {}", name(&e.title, MAX_BUTTON_LABEL)))
        .collect();
    let list = fit_lines(
        "*Topics I can answer*",
        &lines,
        0,
        |n| format!("…and {n} more"),
        None,
        MAX_TEXT_CHARS,
    );
    Message::new(
        "Topics I can answer",
        vec![
            section(&list),
            context(
                "Ask with `/arm faq [question]`, for example `/arm faq why are my builds pending`",
            ),
        ],
    )
}

/// "I don't know": the question quoted back, the closest topics as buttons that answer them,
/// and where to go next. `asker` is set when others may click (a reply in a channel).
fn unknown(closest: &[&Entry], question: &str, asker: Option<&str>) -> Message {
    let quoted = name(question.trim(), MAX_QUESTION);
    let head = if quoted.trim().is_empty() {
        "Ask me a question about the ARM build fleet.".to_string()
    } else {
        format!("I don't know the answer to “{quoted}”.")
    };
    let mut blocks = Vec::new();
    if closest.is_empty() {
        blocks.push(section(&head));
    } else {
        blocks.push(section(&format!("{head}\nThe closest topics I know:")));
        let buttons = closest
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let value = Asked::new(entry, question, asker).value();
                let label = truncate(&one_line(&entry.title), MAX_BUTTON_LABEL);
                button(&format!("{TOPIC_ACTION}{i}"), &label, &value, None)
            })
            .collect();
        blocks.push(actions(None, buttons));
    }
    blocks.push(context(ALL_TOPICS));
    Message::new(head, blocks)
}

/// The reply to a mention or a DM, posted where everyone in the conversation sees it: the
/// answer, or "I don't know" with the closest topics. `text` is the message as Slack sends it
/// (markup, `&amp;`-escaped); `asker` is who wrote it.
pub fn answer(kb: &KnowledgeBase, text: &str, asker: &str) -> Message {
    match kb.answer(text) {
        Answer::Hit { entry, .. } => Message::new(escape(&entry.title), answer_blocks(entry, None)),
        Answer::Unknown { closest } => unknown(&closest, &readable(text), Some(asker)),
    }
}

/// Slack message text as its reader saw it, to quote back: a link shows its label (or its
/// address), a channel its name, `<!here>` nothing, and `&amp;`, `&lt;`, `&gt;` their
/// characters. A `<` in the text is always markup: Slack escapes a typed one.
fn readable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push('<');
            rest = after;
            break;
        };
        let inner = &after[..end];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        match target.chars().next() {
            Some('#') if label.is_empty() => out.push_str(target),
            Some('#') => {
                out.push('#');
                out.push_str(label);
            }
            // Mentions and broadcasts: a label if Slack gave one (`<!subteam^S1|@team>`).
            Some('@' | '!') => out.push_str(label),
            _ if label.is_empty() => out.push_str(target),
            _ => out.push_str(label),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    unescape(&out)
}

/// `/arm faq [question]`: answered at once, visible to the asker, with a button to share the
/// answer in the channel. Only the asker sees it, so the buttons need not say who asked.
pub fn slash(app: &AppState, question: Option<&str>) -> Reply {
    let Some(question) = question else {
        return Reply::Ephemeral(topics(&app.faq));
    };
    match app.faq.answer(question) {
        Answer::Hit { entry, .. } => Reply::Ephemeral(private_answer(
            entry,
            &Asked::new(entry, question, None),
            true,
        )),
        Answer::Unknown { closest } => Reply::Ephemeral(unknown(&closest, question, None)),
    }
}

/// A topic button's answer, for the person who clicked it alone, with its own share button
/// (none in a DM). `None` for an entry the knowledge base no longer has.
pub fn topic(kb: &KnowledgeBase, value: &str, channel: Option<&str>) -> Option<Message> {
    let asked = Asked::read(value);
    let entry = kb.entry(&asked.entry)?;
    Some(private_answer(entry, &asked, !is_dm(channel)))
}

/// The message posted when someone shares an answer: the question, then the answer. The
/// question is attributed only to the sharer, whose click this is: "@dana asked: …" when she
/// asked it, "@bob shared an answer to …" otherwise. Naming the asker from the button's
/// value would let a crafted value put any words in anyone's mouth, and ping them.
pub fn shared(kb: &KnowledgeBase, value: &str, sharer: &str) -> Option<Message> {
    let asked = Asked::read(value);
    let entry = kb.entry(&asked.entry)?;
    let title = escape(&entry.title);
    let who = format!("<@{}>", escape(sharer));
    let Some(quoted) = asked.quoted() else {
        let note = format!("shared by {who} with {}", code("/arm faq"));
        return Some(Message::new(title, answer_blocks(entry, Some(&note))));
    };
    let line = match asked.asker.as_deref() {
        Some(asker) if asker != sharer => format!("{who} shared an answer to {quoted}"),
        _ => format!("{who} asked: {quoted}"),
    };
    let mut blocks = vec![section(&line)];
    blocks.extend(answer_blocks(entry, None));
    Some(Message::new(format!("{line} {title}"), blocks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(id: &str) -> KnowledgeBase {
        KnowledgeBase::from_toml_str(&format!(
            r#"
            [[entry]]
            id = "{id}"
            title = "Pending builds"
            questions = ["why are builds pending", "builds stuck in pending", "pending jobs"]
            answer = "Failed machines hold the slots."
            link = "https://example.com/arm"
            "#
        ))
        .expect("valid")
    }

    #[test]
    fn a_button_value_round_trips_and_stays_within_slacks_limit() {
        let one = kb("pending");
        let entry = &one.entries()[0];
        let asked = Asked::new(entry, "  why\npending?  ", Some("U0DANA"));
        assert_eq!(asked.question.as_deref(), Some("why pending?"));
        assert_eq!(Asked::read(&asked.value()), asked);
        // An entry id long enough to crowd out the question: the question goes, not the button.
        let long = kb(&"a".repeat(1900));
        let asked = Asked::new(&long.entries()[0], &"\"".repeat(400), None);
        let value = asked.value();
        assert!(len(&value) <= MAX_BUTTON_VALUE, "{}", len(&value));
        assert_eq!(Asked::read(&value).question, None);
    }

    #[test]
    fn slack_text_is_quoted_as_its_reader_saw_it() {
        assert_eq!(
            readable("is <https://x.example/y|this page> about <#C1|general> &amp; <#C2>?"),
            "is this page about #general & #C2?"
        );
        assert_eq!(
            readable("<!here> see <https://x.example> &lt;b&gt; <!subteam^S1|@dist>"),
            " see https://x.example <b> @dist"
        );
        assert_eq!(readable("a <b"), "a <b");
        assert_eq!(readable("&amp;lt;"), "&lt;");
    }

    #[test]
    fn values_from_older_buttons_and_odd_asker_ids_are_read_safely() {
        assert_eq!(Asked::read("pending").entry, "pending");
        assert_eq!(Asked::read("").entry, "");
        for bad in ["", "U", "u123", "U1>", "<!here>", "C123", &"U".repeat(40)] {
            assert_eq!(user_id(bad), None, "{bad}");
        }
        assert_eq!(user_id("U024BE7LH"), Some("U024BE7LH"));
        assert_eq!(user_id("W0123"), Some("W0123"));
    }

    #[test]
    fn a_title_is_escaped_in_the_notification_text_too() {
        let kb = KnowledgeBase::from_toml_str(
            r#"
            [[entry]]
            id = "pi"
            title = "Raspberry Pi & <CE>"
            questions = ["raspberry pi builds", "pi and ce", "arm boards"]
            answer = "They build elsewhere."
            link = "https://example.com/arm"
            "#,
        )
        .expect("valid");
        let entry = &kb.entries()[0];
        let value = Asked::new(entry, "pi?", None).value();
        for m in [
            private_answer(entry, &Asked::read(&value), true),
            answer(&kb, "raspberry pi builds", "U0DANA"),
            shared(&kb, &value, "U0BOB").expect("shared"),
        ] {
            assert!(
                m.text.ends_with("Raspberry Pi &amp; &lt;CE&gt;"),
                "{}",
                m.text
            );
            assert!(m.problems().is_empty(), "{:?}", m.problems());
        }
    }

    #[test]
    fn a_shared_question_is_attributed_to_the_sharer_alone() {
        let one = kb("pending");
        let share = |value: &str| shared(&one, value, "U0BOB").expect("shared");
        // Bob's own question.
        let own = share(r#"{"e":"pending","q":"why pending?","u":"U0BOB"}"#);
        assert_eq!(
            own.blocks[0]["text"]["text"],
            "<@U0BOB> asked: “why pending?”"
        );
        // A value naming someone else, as a crafted one could: no words put in their mouth,
        // no ping; the line says what Bob did.
        for other in ["U0BOSS", "<!channel>", ""] {
            let value = format!(r#"{{"e":"pending","q":"I quit","u":"{other}"}}"#);
            let m = share(&value);
            assert_eq!(
                m.blocks[0]["text"]["text"],
                "<@U0BOB> shared an answer to “I quit”"
            );
            assert!(!serde_json::to_string(&m).expect("json").contains("U0BOSS"));
            assert!(m.problems().is_empty(), "{:?}", m.problems());
        }
    }
}
