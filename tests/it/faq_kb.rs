//! The shipped knowledge base is well formed, and bad edits are refused with errors that say
//! which entry and which field to fix.

use std::path::Path;

use armbot::faq::{FaqError, KnowledgeBase};

const SHIPPED: &str = include_str!("../../faq/faq.toml");

/// The text of every Slack link target (`<target|label>` or `<target>`) in an answer.
fn link_targets(answer: &str) -> Vec<&str> {
    answer
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>'))
        .map(|(inside, _)| inside.split('|').next().unwrap_or(inside))
        .collect()
}

#[test]
fn shipped_file_loads_and_every_entry_is_well_formed() {
    let kb = KnowledgeBase::from_toml_str(SHIPPED).expect("faq/faq.toml must load");
    let entries = kb.entries();
    assert!(
        (14..=18).contains(&entries.len()),
        "{} entries",
        entries.len()
    );

    let mut ids = std::collections::HashSet::new();
    for entry in entries {
        assert!(ids.insert(entry.id.as_str()), "duplicate id {}", entry.id);
        assert!(!entry.title.trim().is_empty(), "{}: title", entry.id);
        // The title is a topic button's label when the bot has no answer: Block Kit cuts
        // labels at 75 characters, and a short one reads at a glance.
        assert!(
            entry.title.chars().count() <= 60,
            "{}: title over 60 characters",
            entry.id
        );
        assert!(
            entry.questions.len() >= 3,
            "{}: at least 3 questions",
            entry.id
        );
        assert!(!entry.keywords.is_empty(), "{}: keywords", entry.id);
        assert!(!entry.answer.trim().is_empty(), "{}: answer", entry.id);
        assert!(
            entry.link.starts_with("https://"),
            "{}: link {}",
            entry.id,
            entry.link
        );
        for target in link_targets(&entry.answer) {
            assert!(
                target.starts_with("https://"),
                "{}: answer link {target}",
                entry.id
            );
        }
        for mention in ["<!channel>", "<!here>", "<!everyone>"] {
            assert!(!entry.answer.contains(mention), "{}: {mention}", entry.id);
        }
    }
}

#[test]
fn shipped_file_links_the_handbook_page() {
    let page = "https://about.gitlab.com/handbook/engineering/development/enablement/distribution/maintenance/arm.html";
    let kb = KnowledgeBase::builtin();
    assert!(kb.entries().iter().any(|e| e.answer.contains(page)));
    // The Slack side labels every entry's link as the ARM handbook page.
    for entry in kb.entries() {
        assert!(entry.link.starts_with(page), "{}: {}", entry.id, entry.link);
    }
}

#[test]
fn shipped_file_holds_no_secrets() {
    // "1Password" is the vault's product name, not a secret.
    let text = SHIPPED.to_lowercase().replace("1password", "");
    for needle in [
        "password",
        "passwd",
        "token=",
        "token:",
        "secret=",
        "secret:",
        "api_key",
        "apikey",
        "xoxb-",
        "xoxp-",
        "xapp-",
        "glpat-",
        "private key",
        "scw_secret",
    ] {
        assert!(!text.contains(needle), "faq.toml contains {needle:?}");
    }
    // Long random-looking strings outside links (keys, tokens); link paths may hold commit ids.
    for line in SHIPPED.lines() {
        for word in line.split(|c: char| c.is_whitespace() || "<>|()`'\"".contains(c)) {
            if word.starts_with("https://") {
                continue;
            }
            let alnum = word.chars().filter(char::is_ascii_alphanumeric).count();
            let digits = word.chars().filter(char::is_ascii_digit).count();
            assert!(
                !(alnum >= 24 && digits >= 4),
                "secret-looking string {word:?}"
            );
        }
    }
}

#[test]
fn builtin_and_load_agree_with_the_shipped_file() {
    let from_path = KnowledgeBase::load(Path::new("faq/faq.toml")).expect("load faq/faq.toml");
    assert_eq!(from_path.entries(), KnowledgeBase::builtin().entries());
}

#[test]
fn load_reports_a_missing_file_with_its_path() {
    let error = KnowledgeBase::load(Path::new("no/such/faq.toml")).expect_err("missing file");
    assert!(matches!(error, FaqError::Io { .. }));
    assert!(error.to_string().contains("no/such/faq.toml"), "{error}");
}

#[test]
fn load_reads_an_edited_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("faq.toml");
    std::fs::write(&path, entry("only-one", "")).expect("write");
    let kb = KnowledgeBase::load(&path).expect("valid file");
    assert_eq!(kb.entries().len(), 1);
    assert_eq!(kb.entries()[0].id, "only-one");
}

/// A valid entry with `id`, followed by the `extra` lines (tests break it with `replace`).
fn entry(id: &str, extra: &str) -> String {
    format!(
        r#"
[[entry]]
id = "{id}"
title = "A title"
questions = ["How?", "Why?", "What?"]
keywords = ["word"]
answer = "An answer."
link = "https://example.com/page"
{extra}
"#
    )
}

/// The error message for `toml`, which must fail to load.
fn rejection(toml: &str) -> String {
    KnowledgeBase::from_toml_str(toml)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn rejects_a_duplicate_id_naming_it() {
    let message = rejection(&format!("{}{}", entry("pending", ""), entry("pending", "")));
    assert!(message.contains("`pending`"), "{message}");
    assert!(message.contains("already used"), "{message}");
}

#[test]
fn rejects_a_missing_field_naming_the_entry_and_field() {
    let toml = entry("no-answer", "").replace("answer = \"An answer.\"\n", "");
    let message = rejection(&toml);
    assert!(message.contains("`no-answer`"), "{message}");
    assert!(message.contains("`answer` is missing"), "{message}");

    // Without an id the entry is named by its position.
    let toml = format!(
        "{}{}",
        entry("first", ""),
        entry("x", "").replace("id = \"x\"\n", "")
    );
    let message = rejection(&toml);
    assert!(message.contains("#2"), "{message}");
    assert!(message.contains("`id` is missing"), "{message}");
}

#[test]
fn rejects_a_relative_link_naming_the_entry() {
    let toml = entry("relative", "").replace(
        "link = \"https://example.com/page\"",
        "link = \"/handbook/engineering/\"",
    );
    let message = rejection(&toml);
    assert!(message.contains("`relative`"), "{message}");
    assert!(
        message.contains("link `/handbook/engineering/`"),
        "{message}"
    );

    let toml = entry("relative-in-answer", "").replace(
        "answer = \"An answer.\"",
        "answer = \"See <handbook/arm.html|the page>.\"",
    );
    let message = rejection(&toml);
    assert!(message.contains("`relative-in-answer`"), "{message}");
    assert!(
        message.contains("answer link `handbook/arm.html`"),
        "{message}"
    );
}

#[test]
fn rejects_empty_questions_naming_the_entry() {
    let toml = entry("no-questions", "").replace(
        "questions = [\"How?\", \"Why?\", \"What?\"]",
        "questions = []",
    );
    let message = rejection(&toml);
    assert!(message.contains("`no-questions`"), "{message}");
    assert!(message.contains("`questions` is empty"), "{message}");

    let toml = entry("blank-question", "").replace("\"Why?\"", "\"  \"");
    assert!(rejection(&toml).contains("`questions` is empty"));
}

#[test]
fn rejects_other_mistakes_with_a_clear_message() {
    let cases = [
        (
            entry("Bad_Id", ""),
            "FAQ entry `Bad_Id`: the id must be kebab-case",
        ),
        (
            entry("blank-title", "").replace("\"A title\"", "\"\""),
            "FAQ entry `blank-title`: `title` is empty",
        ),
        (
            entry("pings", "").replace("\"An answer.\"", "\"Hey <!here>, read this\""),
            "FAQ entry `pings`: the answer contains `<!here>`",
        ),
        (
            entry("typo", "question = [\"Oops\"]"),
            "FAQ entry `typo`: unknown field `question`",
        ),
        (
            format!(
                "{}[synonyms]\nmachine = [\"vm\"]\nserver = [\"vm\"]\n",
                entry("syn", "")
            ),
            "FAQ synonyms: `vm` is in both the `machine` and the `server` group",
        ),
        (String::new(), "the FAQ file has no [[entry]]"),
        (
            "[[entry]]\nid = 3\n".to_owned(),
            "the FAQ file is not valid TOML",
        ),
    ];
    for (toml, expected) in cases {
        let message = rejection(&toml);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}, got {message:?}"
        );
    }
}
