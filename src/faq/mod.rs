//! FAQ knowledge base and matcher (placeholder until the knowledge base lands).
use std::path::Path;

pub struct Entry {
    pub id: String,
    pub title: String,
    pub questions: Vec<String>,
    pub keywords: Vec<String>,
    pub answer: String,
    pub link: String,
}
#[derive(Debug)]
pub struct FaqError;
impl std::fmt::Display for FaqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("faq")
    }
}
pub enum Answer<'a> {
    Hit { entry: &'a Entry, score: f64 },
    Unknown,
}
pub struct KnowledgeBase {
    entries: Vec<Entry>,
}
impl KnowledgeBase {
    pub fn builtin() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
    pub fn load(_p: &Path) -> Result<Self, FaqError> {
        Err(FaqError)
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    pub fn answer(&self, _q: &str) -> Answer<'_> {
        Answer::Unknown
    }
}
