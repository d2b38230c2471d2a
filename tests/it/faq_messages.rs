//! Every FAQ, help and unknown-command message as Slack receives it: Block Kit snapshots, the
//! facts a reader needs asserted plainly, and Slack's limits checked on each.

use crate::common::*;
use armbot::slack::Message;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::{Value, json};

/// The text and blocks of a body, as Slack would lay them out; fails on anything Slack would
/// refuse or garble, and on a `<` the bot did not mean as a link.
fn checked(body: &Value) -> Message {
    let m: Message =
        serde_json::from_value(json!({"text": body["text"], "blocks": body["blocks"]}))
            .expect("a message");
    assert_eq!(m.problems(), Vec::<String>::new(), "{body:#}");
    for b in &m.blocks {
        for button in b["elements"].as_array().into_iter().flatten() {
            if button["type"] != "button" {
                continue;
            }
            let label = button["text"]["text"].as_str().expect("label");
            let value = button["value"].as_str().expect("value");
            assert!((1..=75).contains(&label.chars().count()), "{label}");
            assert!((1..=2000).contains(&value.chars().count()), "{value}");
        }
    }
    m
}

/// Every mrkdwn text of the blocks, in order.
fn texts(m: &Message) -> Vec<String> {
    let mut out = Vec::new();
    for b in &m.blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            out.push(t.to_string());
        }
        for e in b["elements"].as_array().into_iter().flatten() {
            if let Some(t) = e["text"].as_str() {
                out.push(t.to_string());
            }
        }
    }
    out
}

fn buttons(m: &Message) -> Vec<Value> {
    m.blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .collect()
}

async fn command(app: &TestApp, text: &str) -> Value {
    let (status, body) = app.request(slash(text, "https://hooks.example/x")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    v
}

/// A click as Slack sends it, in `channel`.
fn click_in(channel: &str, action: &str, value: &str, user: &str, url: &str) -> Request<Body> {
    let payload = json!({
        "type": "block_actions", "user": {"id": user}, "channel": {"id": channel},
        "response_url": url, "actions": [{"action_id": action, "value": value}]
    })
    .to_string();
    let form = serde_urlencoded::to_string([("payload", payload.as_str())]).expect("form");
    slack_request(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &form,
    )
}

#[tokio::test]
async fn help_has_one_command_a_line() {
    let app = app(settings(&[])).await;
    let v = command(&app, "help").await;
    insta::assert_json_snapshot!("help", v);
    let m = checked(&v);
    let t = texts(&m);
    let lines: Vec<&str> = t[0].lines().collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    for (line, cmd) in lines[1..].iter().zip(["status", "reap", "faq", "help"]) {
        assert!(line.starts_with(&format!("• `/arm {cmd}")), "{line}");
    }
    assert!(t[1].contains("direct message"), "{t:?}");
}

#[tokio::test]
async fn an_unknown_command_is_named_on_its_own_line_above_the_help() {
    let app = app(settings(&[])).await;
    let v = command(&app, "deploy <!here> & `prod`").await;
    insta::assert_json_snapshot!("unknown_command", v);
    let m = checked(&v);
    let t = texts(&m);
    assert_eq!(
        t[0],
        "I don't know the command `deploy &lt;!here&gt; &amp; ˋprodˋ`."
    );
    assert_eq!(m.text, t[0]);
    assert!(t[1].starts_with("*`/arm` commands*\n"), "{t:?}");
}

#[tokio::test]
async fn the_topic_list_has_one_topic_a_line_and_an_escaped_placeholder() {
    let app = app(settings(&[])).await;
    let v = command(&app, "faq").await;
    insta::assert_json_snapshot!("faq_topics", v);
    let m = checked(&v);
    let t = texts(&m);
    let topics = app.state.faq.entries().len();
    assert_eq!(t[0].lines().filter(|l| l.starts_with("• ")).count(), topics);
    assert!(t[1].contains("`/arm faq [question]`"), "{t:?}");
}

#[tokio::test]
async fn an_answer_is_shown_to_the_asker_with_a_share_button_that_carries_the_question() {
    let app = app(settings(&[])).await;
    let v = command(&app, "faq why are my builds pending?").await;
    insta::assert_json_snapshot!("faq_answer", v);
    let m = checked(&v);
    assert!(texts(&m)[0].starts_with("*Why ARM builds are pending*\n"));
    let share = buttons(&m);
    assert_eq!(share.len(), 1);
    assert_eq!(share[0]["action_id"], "faq_share");
    let value: Value = serde_json::from_str(share[0]["value"].as_str().expect("value"))
        .expect("the value is JSON");
    assert_eq!(
        value,
        json!({"e": "pending-builds", "q": "why are my builds pending?"})
    );
}

#[tokio::test]
async fn dont_know_offers_the_three_closest_topics_once_and_where_to_go_next() {
    let app = app(settings(&[])).await;
    let v = command(&app, "faq when is the next team offsite <soon> & why?").await;
    insta::assert_json_snapshot!("faq_dont_know", v);
    let m = checked(&v);
    let t = texts(&m);
    assert_eq!(
        t[0],
        "I don't know the answer to “when is the next team offsite &lt;soon&gt; &amp; why?”.\nThe closest topics I know:"
    );
    let topics = buttons(&m);
    assert_eq!(topics.len(), 3, "{topics:?}");
    for (i, b) in topics.iter().enumerate() {
        assert_eq!(b["action_id"], format!("faq_topic_{i}"));
        let label = b["text"]["text"].as_str().expect("label");
        // Each topic is named once: as its button, nowhere else.
        assert_eq!(v.to_string().matches(label).count(), 1, "{label}");
    }
    assert_eq!(
        t.last().map(String::as_str),
        Some("All topics: `/arm faq` · or ask the Distribution team")
    );
    // Far fewer than the 17 topics the old reply listed (twice).
    assert!(v.to_string().len() < 2500, "{}", v.to_string().len());
}

#[tokio::test]
async fn dont_know_without_any_close_topic_has_no_buttons() {
    let app = app(settings(&[])).await;
    let v = command(&app, "faq what's the lunch menu").await;
    let m = checked(&v);
    assert!(buttons(&m).is_empty());
    assert_eq!(
        texts(&m),
        [
            "I don't know the answer to “what's the lunch menu”.",
            "All topics: `/arm faq` · or ask the Distribution team"
        ]
    );
}

#[tokio::test]
async fn a_shared_answer_starts_with_who_asked_what() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/1/x");
    let v = command(&app, "faq why are my builds <b>pending</b>?").await;
    let share = buttons(&checked(&v)).remove(0);
    let value = share["value"].as_str().expect("value");
    let (status, _) = app
        .request(button_click("faq_share", value, "U0ASKER", &url))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut worker = app.worker(slack_transport(&fake));
    drain(&mut worker).await;
    let posted = fake
        .messages()
        .into_iter()
        .find(|p| p.method == "chat.postMessage")
        .expect("the shared answer");
    assert_eq!(posted.channel, "C0CHAN");
    insta::assert_json_snapshot!("faq_shared", posted.body);
    let m = checked(&posted.body);
    let t = texts(&m);
    assert_eq!(
        t[0],
        "<@U0ASKER> asked: “why are my builds &lt;b&gt;pending&lt;/b&gt;?”"
    );
    assert!(t[1].starts_with("*Why ARM builds are pending*\n"), "{t:?}");
    // The asker shared it: "asked" says who, no "shared by" as well.
    assert!(!posted.body.to_string().contains("shared by"));
    assert!(buttons(&m).is_empty(), "the shared copy has no button");
}

#[tokio::test]
async fn a_share_button_from_before_questions_travelled_still_shares() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/1/x");
    app.request(button_click("faq_share", "pending-builds", "U0ASKER", &url))
        .await;
    let mut worker = app.worker(slack_transport(&fake));
    drain(&mut worker).await;
    let posted = fake
        .messages()
        .into_iter()
        .find(|p| p.method == "chat.postMessage")
        .expect("the shared answer");
    let t = texts(&checked(&posted.body));
    assert!(t[0].starts_with("*Why ARM builds are pending*"), "{t:?}");
    assert!(
        t[1].ends_with(" · shared by <@U0ASKER> with `/arm faq`"),
        "{t:?}"
    );
}

#[tokio::test]
async fn the_question_in_a_button_is_bounded_and_safe() {
    let app = app(settings(&[])).await;
    for question in [
        "\"".repeat(5000),
        "\\".repeat(5000),
        "😀".repeat(3000),
        format!("pending builds {}", "<!channel> &amp; `x` ".repeat(300)),
        "pending builds\n\u{202e}\u{0}line two".to_string(),
    ] {
        let v = command(&app, &format!("faq {question}")).await;
        let m = checked(&v);
        for b in buttons(&m) {
            let value = b["value"].as_str().expect("value");
            let back: Value = serde_json::from_str(value).expect("json");
            let q = back["q"].as_str().unwrap_or_default();
            assert!(armbot::slack::mrkdwn::len(q) <= 300, "{q}");
            assert!(!q.contains('\n'), "{q:?}");
        }
        for t in texts(&m) {
            assert!(!t.contains("<!channel>"), "{t}");
        }
    }
}

/// The bot's first message after `event` (a mention or a DM), delivered to `fake`.
async fn replied(app: &TestApp, fake: &FakeSlack, event: Value) -> SlackCall {
    post_event(app, event).await;
    let mut worker = app.worker(slack_transport(fake));
    drain(&mut worker).await;
    fake.messages().remove(0)
}

async fn post_event(app: &TestApp, event: Value) {
    let body =
        json!({"type": "event_callback", "event_id": "Ev1", "team_id": "T1", "event": event})
            .to_string();
    let (status, _) = app
        .request(slack_request("/slack/events", "application/json", &body))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_mention_is_answered_in_its_thread() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let posted = replied(
        &app,
        &fake,
        json!({"type": "app_mention", "user": "U0DANA", "text": "<@UBOT> why are my arm builds pending?", "ts": "100.1", "channel": "C1"}),
    )
    .await;
    assert_eq!(posted.thread_ts.as_deref(), Some("100.1"));
    let body = json!({"text": posted.body["text"], "blocks": posted.body["blocks"]});
    insta::assert_json_snapshot!("mention_answer", body);
    let m = checked(&body);
    assert!(texts(&m)[0].starts_with("*Why ARM builds are pending*\n"));
    // Already public: nothing to share.
    assert!(buttons(&m).is_empty());
}

#[tokio::test]
async fn a_topic_clicked_under_a_mention_is_answered_privately_and_shared_in_the_sharers_name() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let posted = replied(
        &app,
        &fake,
        json!({"type": "app_mention", "user": "U0DANA", "text": "<@UBOT> how do I rotate the aws access keys", "ts": "100.1", "channel": "C1"}),
    )
    .await;
    assert_eq!(posted.thread_ts.as_deref(), Some("100.1"));
    let body = json!({"text": posted.body["text"], "blocks": posted.body["blocks"]});
    insta::assert_json_snapshot!("mention_dont_know", body);
    let m = checked(&body);
    let topics = buttons(&m);
    assert_eq!(topics.len(), 3);
    let value = topics[0]["value"].as_str().expect("value");
    let carried: Value = serde_json::from_str(value).expect("json");
    assert_eq!(carried["u"], "U0DANA");
    assert_eq!(carried["q"], "how do I rotate the aws access keys");

    // Someone else in the thread clicks a topic: the answer is theirs alone, to share if
    // they like.
    let url = fake.response_url("actions/T1/2/y");
    let (status, _) = app
        .request(click_in("C1", "faq_topic_0", value, "U0BOB", &url))
        .await;
    assert_eq!(status, StatusCode::OK);
    let aside = wait_messages(&fake, 2).await.remove(1);
    assert_eq!(aside.method, "response_url");
    assert_eq!(aside.body["response_type"], "ephemeral");
    assert_eq!(aside.body["replace_original"], false);
    insta::assert_json_snapshot!("faq_topic_answer", aside.body);
    let m = checked(&aside.body);
    let title = topics[0]["text"]["text"].as_str().expect("label");
    assert!(texts(&m)[0].starts_with(&format!("*{title}*\n")), "{title}");
    let share = buttons(&m).remove(0);
    assert_eq!(share["action_id"], "faq_share");

    // Bob shares it: what he shared an answer to, then the answer. The button's value names
    // Dana, but only Bob's click is proof of anything: she is not named, nor pinged.
    let share_value = share["value"].as_str().expect("value");
    app.request(click_in("C1", "faq_share", share_value, "U0BOB", &url))
        .await;
    let mut worker = app.worker(slack_transport(&fake));
    drain(&mut worker).await;
    let shared = fake
        .messages()
        .into_iter()
        .rfind(|p| p.method == "chat.postMessage")
        .expect("shared");
    insta::assert_json_snapshot!("faq_shared_by_another", shared.body);
    let t = texts(&checked(&shared.body));
    assert_eq!(
        t[0],
        "<@U0BOB> shared an answer to “how do I rotate the aws access keys”"
    );
    assert!(t[1].starts_with(&format!("*{title}*\n")), "{t:?}");
    let all = shared.body.to_string();
    assert!(
        !all.contains("U0DANA") && !all.contains("shared by"),
        "{all}"
    );
}

#[tokio::test]
async fn a_mention_is_quoted_back_as_its_reader_saw_it() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let posted = replied(
        &app,
        &fake,
        json!({"type": "app_mention", "user": "U0DANA", "text": "<@UBOT> is <https://x.example/y|this page> about <#C1|general> &amp; lunch? <!here>", "ts": "100.1", "channel": "C1"}),
    )
    .await;
    let t = texts(&checked(&posted.body));
    assert!(
        t[0].starts_with("I don't know the answer to “is this page about #general &amp; lunch?”."),
        "{t:?}"
    );
}

#[tokio::test]
async fn in_a_dm_a_topic_answer_has_no_share_button() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let posted = replied(
        &app,
        &fake,
        json!({"type": "message", "channel_type": "im", "user": "U0DANA", "text": "rotate the aws access keys", "ts": "200.1", "channel": "D9"}),
    )
    .await;
    let m = checked(&posted.body);
    let value = buttons(&m)[0]["value"]
        .as_str()
        .expect("a topic")
        .to_string();
    let url = fake.response_url("actions/T1/3/z");
    app.request(click_in("D9", "faq_topic_0", &value, "U0DANA", &url))
        .await;
    let aside = wait_messages(&fake, 2).await.remove(1);
    assert!(buttons(&checked(&aside.body)).is_empty());
}

#[tokio::test]
async fn a_topic_the_knowledge_base_no_longer_has_is_ignored() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/1/x");
    for value in ["no-such-entry", r#"{"e":"gone","q":"x"}"#, "", "{"] {
        let (status, _) = app
            .request(button_click("faq_topic_1", value, "U0ASKER", &url))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.state.tasks.close();
    app.state.tasks.wait().await;
    assert!(fake.messages().is_empty(), "{:?}", fake.messages());
}
