//! The knowledge-base file: its TOML schema and the checks that make a bad edit fail loudly,
//! naming the entry and the field, instead of producing odd answers.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

/// One FAQ entry, as written in `faq/faq.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unique kebab-case id, stable across edits (the Slack side may log or link it).
    pub id: String,
    pub title: String,
    /// Ways people ask this; the matcher weighs these most.
    pub questions: Vec<String>,
    pub keywords: Vec<String>,
    /// Slack mrkdwn, ready to post.
    pub answer: String,
    /// Absolute http(s) URL for further reading.
    pub link: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    #[error("cannot read the FAQ file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the FAQ file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("the FAQ file has no [[entry]]")]
    NoEntries,
    #[error("FAQ entry {entry}: `{field}` is missing")]
    MissingField { entry: String, field: &'static str },
    #[error("FAQ entry {entry}: `{field}` is empty")]
    EmptyField { entry: String, field: &'static str },
    #[error(
        "FAQ entry {entry}: unknown field `{field}` (known: id, title, questions, keywords, answer, link)"
    )]
    UnknownField { entry: String, field: String },
    #[error(
        "FAQ entry {entry}: the id must be kebab-case (lowercase letters, digits, single dashes)"
    )]
    BadId { entry: String },
    #[error("FAQ entry {entry}: the id is already used by an earlier entry")]
    DuplicateId { entry: String },
    #[error("FAQ entry {entry}: {field} `{url}` is not an absolute http(s) URL")]
    BadLink {
        entry: String,
        field: &'static str,
        url: String,
    },
    #[error("FAQ entry {entry}: the answer contains `{mention}`; FAQ answers must not ping people")]
    BroadcastMention { entry: String, mention: String },
    #[error("FAQ synonyms: `{phrase}` is in both the `{first}` and the `{second}` group")]
    SynonymConflict {
        phrase: String,
        first: String,
        second: String,
    },
}

/// The file as parsed, before checks. Every field is optional here so that a missing one is
/// reported with the entry's name rather than as a bare serde error.
#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    entry: Vec<RawEntry>,
    #[serde(default)]
    synonyms: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RawEntry {
    id: Option<String>,
    title: Option<String>,
    questions: Option<Vec<String>>,
    #[serde(default)]
    keywords: Vec<String>,
    answer: Option<String>,
    link: Option<String>,
    /// Catches misspelt field names ("question", "keyword"), which would otherwise be dropped.
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

/// A checked file: entries plus synonym groups (canonical -> other ways to say it).
pub(super) struct Parsed {
    pub entries: Vec<Entry>,
    pub synonyms: BTreeMap<String, Vec<String>>,
}

pub(super) fn parse(text: &str) -> Result<Parsed, FaqError> {
    let raw: RawFile = toml::from_str(text)?;
    if raw.entry.is_empty() {
        return Err(FaqError::NoEntries);
    }
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(raw.entry.len());
    for (position, raw) in raw.entry.into_iter().enumerate() {
        let entry = check_entry(position, raw)?;
        if !seen.insert(entry.id.clone()) {
            return Err(FaqError::DuplicateId {
                entry: format!("`{}`", entry.id),
            });
        }
        entries.push(entry);
    }
    for (canonical, others) in &raw.synonyms {
        if canonical.trim().is_empty() || others.iter().any(|o| o.trim().is_empty()) {
            return Err(FaqError::EmptyField {
                entry: format!("synonyms `{canonical}`"),
                field: "synonyms",
            });
        }
    }
    Ok(Parsed {
        entries,
        synonyms: raw.synonyms,
    })
}

fn check_entry(position: usize, raw: RawEntry) -> Result<Entry, FaqError> {
    // Until the id is known good, name the entry by its position (1-based, as people count).
    let name = match raw.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => format!("`{id}`"),
        _ => format!("#{}", position + 1),
    };
    if let Some(field) = raw.unknown.keys().next() {
        return Err(FaqError::UnknownField {
            entry: name,
            field: field.clone(),
        });
    }
    let id = required(&name, "id", raw.id)?;
    if !is_kebab_case(&id) {
        return Err(FaqError::BadId { entry: name });
    }
    let title = required(&name, "title", raw.title)?;
    let answer = required(&name, "answer", raw.answer)?;
    let link = required(&name, "link", raw.link)?;
    let questions = raw.questions.ok_or_else(|| FaqError::MissingField {
        entry: name.clone(),
        field: "questions",
    })?;
    if questions.is_empty() || questions.iter().any(|q| q.trim().is_empty()) {
        return Err(FaqError::EmptyField {
            entry: name,
            field: "questions",
        });
    }
    if raw.keywords.iter().any(|k| k.trim().is_empty()) {
        return Err(FaqError::EmptyField {
            entry: name,
            field: "keywords",
        });
    }
    if !is_absolute_http_url(&link) {
        return Err(FaqError::BadLink {
            entry: name,
            field: "link",
            url: link,
        });
    }
    check_answer_markup(&name, &answer)?;
    Ok(Entry {
        id,
        title,
        questions,
        keywords: raw.keywords,
        answer,
        link,
    })
}

fn required(entry: &str, field: &'static str, value: Option<String>) -> Result<String, FaqError> {
    match value {
        None => Err(FaqError::MissingField {
            entry: entry.to_owned(),
            field,
        }),
        Some(value) if value.trim().is_empty() => Err(FaqError::EmptyField {
            entry: entry.to_owned(),
            field,
        }),
        Some(value) => Ok(value),
    }
}

fn is_kebab_case(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_absolute_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !url.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Every `<…>` in an answer must be a user or channel reference or an absolute link. Special
/// mentions (`<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^…>`) would ping whole groups
/// each time the answer is posted, and a relative link is dead in Slack.
fn check_answer_markup(entry: &str, answer: &str) -> Result<(), FaqError> {
    let mut rest = answer;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let inner = &after[..end];
        if inner.starts_with('!') {
            return Err(FaqError::BroadcastMention {
                entry: entry.to_owned(),
                mention: format!("<{inner}>"),
            });
        }
        let target = inner.split('|').next().unwrap_or_default();
        if !(inner.starts_with('@') || inner.starts_with('#') || is_absolute_http_url(target)) {
            return Err(FaqError::BadLink {
                entry: entry.to_owned(),
                field: "answer link",
                url: target.to_owned(),
            });
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_ids() {
        for good in ["pending-builds", "arm64", "a-1-b"] {
            assert!(is_kebab_case(good), "{good}");
        }
        for bad in ["", "Pending", "pending_builds", "-x", "x-", "a--b", "a b"] {
            assert!(!is_kebab_case(bad), "{bad}");
        }
    }

    #[test]
    fn absolute_urls() {
        assert!(is_absolute_http_url("https://about.gitlab.com/handbook/"));
        assert!(is_absolute_http_url("http://example.com"));
        for bad in [
            "/handbook/x",
            "https://",
            "https:///x",
            "ftp://x",
            "https://a b",
            "about.gitlab.com",
        ] {
            assert!(!is_absolute_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn answer_markup() {
        assert!(
            check_answer_markup("e", "see <https://x.org/a|this> and <@U1> in <#C1|chan>").is_ok()
        );
        assert!(check_answer_markup("e", "1 < 2 and no closing").is_ok());
        assert!(matches!(
            check_answer_markup("e", "hey <!here>"),
            Err(FaqError::BroadcastMention { .. })
        ));
        assert!(matches!(
            check_answer_markup("e", "<!subteam^S1|distribution>"),
            Err(FaqError::BroadcastMention { .. })
        ));
        assert!(matches!(
            check_answer_markup("e", "<handbook/x|page>"),
            Err(FaqError::BadLink { .. })
        ));
    }
}
