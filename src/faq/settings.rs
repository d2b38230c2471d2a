//! `[faq]` in the settings file.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqSettings {
    /// A knowledge-base file replacing the built-in one.
    pub path: Option<PathBuf>,
}
