//! Pipeline webhook bodies of chosen sizes, grown from GitLab's documented
//! example (`examples/failed-pipeline.json`).

use anyhow::Context;
use serde_json::Value;

use crate::load::ID_MARKER;

pub struct Payloads {
    base: Value,
}

impl Payloads {
    pub fn load(example: &std::path::Path) -> anyhow::Result<Self> {
        let raw =
            std::fs::read(example).with_context(|| format!("reading {}", example.display()))?;
        Ok(Self {
            base: serde_json::from_slice(&raw)?,
        })
    }

    /// A feature-branch pipeline: the bot must ignore it.
    pub fn ignored(&self) -> Vec<u8> {
        let mut d = self.base.clone();
        d["object_attributes"]["ref"] = "my-feature".into();
        serialize(&d)
    }

    /// A feature-branch pipeline with `jobs` jobs, grown as [`Payloads::failure`] grows
    /// them: the bot must ignore it, and `builds`, last, is most of its size.
    pub fn ignored_with_jobs(&self, jobs: usize) -> Vec<u8> {
        let mut d = self.with_jobs(jobs);
        d["object_attributes"]["ref"] = "my-feature".into();
        serialize(&d)
    }

    /// A failed default-branch pipeline with `jobs` jobs (every 50th failed), its
    /// id replaced by [`ID_MARKER`] so each request can carry its own.
    pub fn failure(&self, jobs: usize) -> Vec<u8> {
        let mut d = self.with_jobs(jobs);
        d["object_attributes"]["id"] = 987_654_321u64.into();
        let out = serialize(&d);
        debug_assert!(
            out.windows(ID_MARKER.len())
                .any(|w| w == ID_MARKER.as_bytes())
        );
        out
    }

    /// The example with its builds replaced by `jobs` copies of its second one, each with
    /// its own id and name, every 50th failed.
    fn with_jobs(&self, jobs: usize) -> Value {
        let mut d = self.base.clone();
        let template = d["builds"][1].clone();
        let builds: Vec<Value> = (0..jobs)
            .map(|i| {
                let mut b = template.clone();
                b["id"] = (5000 + i).into();
                b["name"] = format!("job-{i}").into();
                let failed = i % 50 == 0;
                b["status"] = if failed { "failed" } else { "success" }.into();
                b["failure_reason"] = if failed {
                    "script_failure".into()
                } else {
                    Value::Null
                };
                b
            })
            .collect();
        d["builds"] = builds.into();
        d
    }

    /// A failed pipeline of about `bytes` bytes.
    pub fn failure_of_size(&self, bytes: usize) -> Vec<u8> {
        let one = self.failure(1).len();
        let per_job = self.failure(2).len() - one;
        let jobs = 1 + bytes.saturating_sub(one) / per_job.max(1);
        self.failure(jobs)
    }

    /// A failed pipeline on tag `tag`: a new incident, so exactly one new thread.
    pub fn tag_failure(&self, tag: &str, id: u64) -> Vec<u8> {
        let mut d = self.base.clone();
        d["object_attributes"]["ref"] = tag.into();
        d["object_attributes"]["tag"] = true.into();
        d["object_attributes"]["id"] = id.into();
        serialize(&d)
    }
}

/// Compact JSON with `builds` last, as GitLab sends it (serde_json's sorted map would put it
/// first), so the bot can skip the jobs of an ignored ref as it does in production.
fn serialize(v: &Value) -> Vec<u8> {
    let mut rest = v.clone();
    let builds = rest.as_object_mut().and_then(|m| m.remove("builds"));
    // A Value always serialises.
    let mut out = serde_json::to_vec(&rest).unwrap_or_default();
    if let Some(builds) = builds {
        out.pop(); // the closing brace
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"builds\":");
        out.extend(serde_json::to_vec(&builds).unwrap_or_default());
        out.push(b'}');
    }
    out
}
