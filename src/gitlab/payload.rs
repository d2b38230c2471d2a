//! The parts of GitLab's Pipeline Hook payload the bot reads.
//!
//! Only the fields used are declared: unknown fields are ignored, and pipeline
//! `variables` (which may hold secrets) are never deserialized at all.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineHook {
    pub object_kind: String,
    pub object_attributes: PipelineAttributes,
    #[serde(default)]
    pub merge_request: Option<MergeRequest>,
    #[serde(default)]
    pub user: Option<User>,
    pub project: Project,
    #[serde(default)]
    pub commit: Option<Commit>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub builds: Vec<Build>,
    #[serde(default)]
    pub source_pipeline: Option<SourcePipeline>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineAttributes {
    pub id: u64,
    #[serde(default)]
    pub iid: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub tag: bool,
    #[serde(default)]
    pub sha: String,
    #[serde(default)]
    pub source: Option<String>,
    pub status: String,
    #[serde(default)]
    pub detailed_status: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequest {
    #[serde(default)]
    pub iid: Option<u64>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub web_url: String,
    pub path_with_namespace: String,
    #[serde(default)]
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Commit {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub author: Option<Author>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Author {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    pub id: u64,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub allow_failure: bool,
    #[serde(default)]
    pub runner: Option<Runner>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Runner {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourcePipeline {
    #[serde(default)]
    pub pipeline_id: Option<u64>,
    #[serde(default)]
    pub project: Option<SourceProject>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceProject {
    #[serde(default)]
    pub id: Option<u64>,
}

impl PipelineHook {
    /// A child pipeline of a parent in the same project (`source: parent_pipeline`).
    pub fn parent_pipeline_id(&self) -> Option<u64> {
        if self.object_attributes.source.as_deref() != Some("parent_pipeline") {
            return None;
        }
        self.source_pipeline.as_ref().and_then(|s| s.pipeline_id)
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// GitLab writes `2016-08-12 15:23:28 UTC` in hooks and ISO 8601 elsewhere;
/// accept both, and treat anything unreadable as unknown rather than failing.
fn lenient_time<'de, D>(d: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(raw) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    Ok(parse_time(&raw))
}

pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    let naive = raw.strip_suffix(" UTC").unwrap_or(raw);
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_formats() {
        let a = parse_time("2016-08-12 15:23:28 UTC");
        let b = parse_time("2016-08-12T15:23:28Z");
        let c = parse_time("2016-08-12 17:23:28 +0200");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(parse_time("yesterday"), None);
    }
}
