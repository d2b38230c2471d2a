//! Property: whatever a payload holds (long, emoji and CJK names, `<>&|`, backticks and
//! formatting characters, bidi controls, zero-width characters, line breaks, odd URLs), every
//! message rendered from it is one Slack takes and shows as meant: section text ≤ 3,000, field
//! ≤ 2,000 (≤ 10 of them), context element ≤ 3,000 (UTF-16 units), ≤ 50 blocks, `text` ≤ 4,000,
//! links balanced, entities whole, no invisible characters, no mention but the one the bot
//! writes. Checked here independently of the library's own `Message::problems`.

use armbot::{
    config::{FileSettings, Settings},
    gitlab::{PipelineHook, payload},
    notify::{
        mention,
        policy::{self, Decision, Outcome},
        render::{self, Failure, FixedNotice},
    },
    slack::Message,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

fn invisible(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}')
}

/// What is wrong with one mrkdwn text, if anything; `mention` is the one `<@…>` allowed.
fn mrkdwn_problem(t: &str, mention: Option<&str>) -> Option<String> {
    if let Some(c) = t.chars().find(|c| invisible(*c)) {
        return Some(format!("invisible U+{:04X}", c as u32));
    }
    for (i, _) in t.match_indices('&') {
        let rest = &t[i..];
        if !(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;")) {
            return Some(format!("cut entity at {i}"));
        }
    }
    let mut rest = t;
    while let Some(open) = rest.find(['<', '>']) {
        if rest[open..].starts_with('>') {
            return Some("a `>` that closes nothing".into());
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find(['<', '>', '\n']) else {
            return Some("a link left open".into());
        };
        if !after[close..].starts_with('>') {
            return Some("a link broken by `<` or a line break".into());
        }
        let inner = &after[..close];
        let ok = inner.starts_with("http://")
            || inner.starts_with("https://")
            || inner.starts_with("!date^")
            || mention.is_some_and(|m| inner == format!("@{m}"));
        if !ok {
            return Some(format!("control sequence <{inner}>"));
        }
        if inner.matches('|').count() > 1 {
            return Some("a link with two labels".into());
        }
        rest = &after[close + 1..];
    }
    None
}

fn text_problems(what: String, t: &str, max: usize, mention: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if t.is_empty() || units(t) > max {
        out.push(format!("{what}: {} units", units(t)));
    }
    if let Some(p) = mrkdwn_problem(t, mention) {
        out.push(format!("{what}: {p}"));
    }
    out
}

fn message_problems(m: &Message, mention: Option<&str>) -> Vec<String> {
    let mut out = text_problems("text".into(), &m.text, 4000, mention);
    if m.blocks.len() > 50 {
        out.push(format!("{} blocks", m.blocks.len()));
    }
    for (i, b) in m.blocks.iter().enumerate() {
        match b["type"].as_str() {
            Some("section") => {
                if let Some(t) = b["text"]["text"].as_str() {
                    out.extend(text_problems(format!("block {i}"), t, 3000, mention));
                }
                if let Some(fields) = b["fields"].as_array() {
                    if fields.len() > 10 {
                        out.push(format!("block {i}: {} fields", fields.len()));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        let t = f["text"].as_str().unwrap_or("");
                        out.extend(text_problems(
                            format!("block {i} field {j}"),
                            t,
                            2000,
                            mention,
                        ));
                    }
                }
            }
            Some("context") => {
                for (j, e) in b["elements"].as_array().into_iter().flatten().enumerate() {
                    let t = e["text"].as_str().unwrap_or("");
                    out.extend(text_problems(
                        format!("block {i} element {j}"),
                        t,
                        3000,
                        mention,
                    ));
                }
            }
            other => out.push(format!("block {i}: unexpected type {other:?}")),
        }
    }
    out
}

/// Pieces hostile text is made of.
fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9 ./-]{1,12}",
        1 => Just("&".to_string()),
        1 => Just("&amp;".to_string()),
        1 => Just("<".to_string()),
        1 => Just(">".to_string()),
        1 => Just("|".to_string()),
        1 => Just("`".to_string()),
        1 => Just("*".to_string()),
        1 => Just("_".to_string()),
        1 => Just("~".to_string()),
        1 => Just("<!channel>".to_string()),
        1 => Just("<@U0EVIL>".to_string()),
        1 => Just("<https://evil.example|x>".to_string()),
        1 => Just("😀".to_string()),
        1 => Just("👨‍👩‍👧".to_string()),
        1 => Just("漢字".to_string()),
        1 => Just("\u{202E}".to_string()),
        1 => Just("\u{2066}".to_string()),
        1 => Just("\u{200D}".to_string()),
        1 => Just("\u{FEFF}".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("\t".to_string()),
        1 => any::<char>().prop_map(String::from),
    ]
}

/// Short hostile text, or a long run of it (up to 6,000 characters, some of two units).
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(atom(), 0..24).prop_map(|v| v.concat()),
        1 => (prop::collection::vec(atom(), 1..4), 1..2500usize)
            .prop_map(|(v, n)| v.concat().repeat(n).chars().take(6_000).collect()),
    ]
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("https://gitlab.example.com/g/p".to_string()),
        1 => hostile().prop_map(|h| format!("https://gitlab.example.com/{h}")),
        1 => hostile(),
        1 => Just(String::new()),
    ]
}

fn job() -> impl Strategy<Value = Value> {
    (
        any::<u32>(),
        hostile(),
        hostile(),
        prop_oneof![Just("failed"), Just("success"), Just("canceled")],
        prop_oneof![
            Just(json!("script_failure")),
            Just(json!("runner_system_failure")),
            Just(json!("stuck_or_timeout_failure")),
            Just(Value::Null),
            hostile().prop_map(Value::from),
        ],
        any::<bool>(),
        prop_oneof![
            Just(Value::Null),
            (proptest::option::of(any::<u32>()), proptest::option::of(hostile()), any::<bool>())
                .prop_map(|(id, desc, arm)| json!({"id": id, "description": desc,
                    "tags": if arm { vec!["arm64".to_string()] } else { vec![] }})),
        ],
    )
        .prop_map(|(id, name, stage, status, reason, allowed, runner)| {
            json!({"id": id, "name": name, "stage": stage, "status": status,
                   "failure_reason": reason, "allow_failure": allowed && status == "failed", "runner": runner})
        })
}

fn payload() -> impl Strategy<Value = Value> {
    (
        (hostile(), any::<bool>(), prop_oneof![Just("failed"), Just("success")], proptest::option::of(url())),
        (hostile(), url(), hostile(), hostile(), proptest::option::of(hostile())),
        (hostile(), proptest::option::of(hostile()), proptest::option::of(url())),
        proptest::option::of(hostile()),
        prop::collection::vec(job(), 0..25),
    )
        .prop_map(|((git_ref, tag, status, pipeline_url), (path, web_url, name, username, email), (title, message, commit_url), pipeline_name, builds)| {
            json!({
                "object_kind": "pipeline",
                "object_attributes": {"id": 4242, "ref": git_ref, "tag": tag, "status": status,
                    "source": "push", "url": pipeline_url, "name": pipeline_name, "duration": 125,
                    "finished_at": "2016-08-12 15:23:28 UTC"},
                "project": {"id": 7, "path_with_namespace": path, "web_url": web_url, "default_branch": git_ref},
                "user": {"name": name, "username": username, "email": email},
                "commit": {"id": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "title": title,
                           "message": message, "url": commit_url},
                "builds": builds,
            })
        })
}

fn settings() -> Settings {
    let env = |k: &str| match k {
        "GITLAB_WEBHOOK_TOKEN" => Some("t".to_string()),
        "ARMBOT_NOTIFY_CHANNEL" => Some("C0NOTIFY".to_string()),
        _ => None,
    };
    Settings::from_parts(FileSettings::default(), &env, None).expect("settings")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_message_from_any_payload_is_slack_valid(v in payload()) {
        let s = settings();
        let body = serde_json::to_vec(&v).expect("json");
        // The webhook's parse (borrowing) and the derived one agree and never fail on it.
        let hook = payload::parse_pipeline(&body, |_| true).expect("parse").hook;
        let derived: PipelineHook = serde_json::from_slice(&body).expect("derived parse");
        prop_assert_eq!(format!("{:?}", hook), format!("{derived:?}"));
        let mention_id = "U0ABC123";
        let mut messages: Vec<Message> = Vec::new();
        match policy::decide(&hook, &s.notify) {
            Decision::Track { outcome: Outcome::Failed, .. } => {
                let failure = Failure::new(&hook, &s.notify);
                let since = chrono::DateTime::from_timestamp(1_471_015_408, 0).expect("time");
                messages.push(render::root_opened(&failure));
                messages.push(render::root_broken(&failure, since, 3, 4242));
                // The failure compared with itself (every job again) and with nothing.
                messages.push(render::still_failing(Some(&failure.kept()), &failure));
                messages.push(render::still_failing(None, &failure));
                messages.extend(mention::first_reply(&hook, Some(mention_id)));
            }
            Decision::Track { outcome: Outcome::Succeeded, .. } => {
                let fixed = FixedNotice::new(&hook);
                messages.push(fixed.reply(86_400 * 3 + 7));
                messages.push(fixed.root(86_400 * 3 + 7, 4240, 4242, 3));
            }
            // Only an unwatched ref (a hostile ref is rarely the default branch… unless it
            // is, as here: default_branch = ref) or a cancel race is ignored.
            Decision::Ignore(_) => {}
        }
        for m in messages.iter().flat_map(|m| [m.clone(), m.text_only()]) {
            let problems = message_problems(&m, Some(mention_id));
            prop_assert!(problems.is_empty(), "{:?}\n{}", problems, serde_json::to_string(&m).expect("json"));
            prop_assert!(m.problems().is_empty(), "{:?}", m.problems());
        }
    }
}

#[test]
fn the_checker_catches_what_it_should() {
    let bad = [
        "a & b",
        "&am",
        "<https://x|open",
        "<!channel>",
        "<@U0EVIL>",
        "<https://x|a\nb>",
        "x\u{202e}",
        "<https://x|a|b>",
        "a > b",
    ];
    for t in bad {
        assert!(mrkdwn_problem(t, Some("U0OK")).is_some(), "{t:?}");
    }
    assert_eq!(
        mrkdwn_problem(
            "<@U0OK> <https://x|a &amp; b> <!date^1^{date}|d> `c`",
            Some("U0OK")
        ),
        None
    );
    let too_long = Message::new(
        "t",
        vec![json!({"type": "section", "fields": [{"type": "mrkdwn", "text": "😀".repeat(1001)}]})],
    );
    assert_eq!(message_problems(&too_long, None).len(), 1);
}
