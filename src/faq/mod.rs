//! FAQ knowledge base and matcher.
//!
//! The team edits `faq/faq.toml` (no Rust needed); it is compiled into the binary and can also
//! be loaded from a path. [`KnowledgeBase::answer`] finds the entry that answers a chat
//! question, or says it does not know: a wrong answer given confidently costs more than none.

mod kb;
mod matcher;
mod settings;
mod text;
mod typo;

use std::fmt;
use std::path::Path;

pub use kb::{Entry, FaqError};
pub use settings::FaqSettings;

use matcher::Index;
use text::Synonyms;

/// The knowledge base shipped with armbot. `tests/faq_kb.rs` checks that it loads.
const BUILTIN_FAQ: &str = include_str!("../../faq/faq.toml");

/// The FAQ entries and the search index built from them at load time.
#[derive(Clone)]
pub struct KnowledgeBase {
    entries: Vec<Entry>,
    index: Index,
}

/// How many of the closest entries an `Unknown` answer names.
pub const CLOSEST: usize = 3;

/// What the knowledge base says to a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<'a> {
    /// `score` is the match confidence, from 0 to 1.
    Hit { entry: &'a Entry, score: f64 },
    /// No entry answers the question with enough confidence. `closest` holds the entries that
    /// come nearest, best first (at most [`CLOSEST`]; none when the question shares no word
    /// with the knowledge base).
    Unknown { closest: Vec<&'a Entry> },
}

impl KnowledgeBase {
    /// The knowledge base compiled into the binary. The shipped file is tested, so this only
    /// fails after a broken edit that skipped the tests; then FAQ answers are off (every
    /// question is `Unknown`) and the error is logged, rather than the bot failing to start.
    pub fn builtin() -> Self {
        match Self::from_toml_str(BUILTIN_FAQ) {
            Ok(kb) => kb,
            Err(error) => {
                tracing::error!(%error, "the built-in FAQ is invalid; FAQ answers are disabled");
                Self::new(Vec::new(), Synonyms::default())
            }
        }
    }

    /// Parses and checks a knowledge base in the `faq/faq.toml` format.
    pub fn from_toml_str(s: &str) -> Result<Self, FaqError> {
        let parsed = kb::parse(s)?;
        let groups = parsed
            .synonyms
            .iter()
            .map(|(canonical, others)| (canonical.as_str(), others.as_slice()));
        let synonyms = Synonyms::new(groups).map_err(|conflict| FaqError::SynonymConflict {
            phrase: conflict.phrase,
            first: conflict.first,
            second: conflict.second,
        })?;
        Ok(Self::new(parsed.entries, synonyms))
    }

    /// Reads and checks a knowledge base file.
    pub fn load(path: &Path) -> Result<Self, FaqError> {
        let text = std::fs::read_to_string(path).map_err(|source| FaqError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    fn new(entries: Vec<Entry>, synonyms: Synonyms) -> Self {
        let index = Index::build(&entries, synonyms);
        KnowledgeBase { entries, index }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry that answers `question` (plain text or Slack message text), or `Unknown`
    /// with the entries closest to it.
    pub fn answer(&self, question: &str) -> Answer<'_> {
        let ranking = self.index.rank(question, CLOSEST);
        if let Some(best) = ranking.best
            && let Some(entry) = self.entries.get(best.entry)
        {
            return Answer::Hit {
                entry,
                score: best.confidence,
            };
        }
        Answer::Unknown {
            closest: ranking
                .closest
                .iter()
                .filter_map(|&i| self.entries.get(i))
                .collect(),
        }
    }

    /// The entry with this id.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }
}

impl fmt::Debug for KnowledgeBase {
    // The index is large and says nothing useful in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}
