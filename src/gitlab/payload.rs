//! The parts of GitLab's Pipeline Hook payload the bot reads.
//!
//! Only the fields used are declared: unknown fields are ignored, and pipeline
//! `variables` (which may hold secrets) are never deserialized at all. Job
//! fields borrow from the body: a payload can list thousands of jobs.
//! [`parse_pipeline`] reads a payload in one pass and skips the job list of
//! events the policy ignores (most of them).
//!
//! Real payloads differ by GitLab version and by the tools that relay them: before 2017
//! `project.id` was not sent, relays trim fields, hand-written ones leave out `object_kind`.
//! So only what identifies a pipeline event is required (`object_attributes` with `id`, `ref`
//! and `status`); every other field reads as absent when it is missing, null or of another
//! type, and the policy decides whether an event can do without it.

use std::{borrow::Cow, fmt};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use serde_json::value::RawValue;

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineHook<'a> {
    /// Hand-written and relayed payloads may leave it out: the request said it is a pipeline.
    #[serde(default = "pipeline_kind")]
    pub object_kind: String,
    pub object_attributes: PipelineAttributes,
    /// Only whether it is there matters.
    #[serde(default)]
    pub merge_request: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "lenient")]
    pub user: Option<User>,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub project: Project,
    #[serde(default, deserialize_with = "lenient")]
    pub commit: Option<Commit>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub builds: Vec<Build<'a>>,
    #[serde(default, deserialize_with = "lenient")]
    pub source_pipeline: Option<SourcePipeline>,
}

fn pipeline_kind() -> String {
    "pipeline".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineAttributes {
    pub id: u64,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub tag: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub source: Option<String>,
    pub status: String,
    /// GitLab's label for the status (`canceled` while a `failed` pipeline is being canceled).
    #[serde(default, deserialize_with = "lenient")]
    pub detailed_status: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient")]
    pub duration: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct User {
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub username: String,
    /// The user's public email, `[REDACTED]` or empty when they have none.
    #[serde(default, deserialize_with = "lenient")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Project {
    /// Not sent by GitLab before 2017.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub web_url: String,
    #[serde(default, deserialize_with = "lenient")]
    pub path_with_namespace: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub default_branch: Option<String>,
}

impl Project {
    /// `path_with_namespace`, else the path of `web_url`, else empty.
    pub fn path(&self) -> &str {
        match self.path_with_namespace.as_deref() {
            Some(p) if !p.is_empty() => p,
            _ => path_of_url(&self.web_url),
        }
    }

    /// What identifies the project in the store: its `id`, else a number derived from its
    /// path (see [`Project::path`]); `None` when the payload names the project in no way.
    pub fn key(&self) -> Option<u64> {
        if let Some(id) = self.id {
            return Some(id);
        }
        let path = self.path();
        (!path.is_empty()).then(|| derived_key(path))
    }
}

/// `group/project` from `https://host/group/project`.
fn path_of_url(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/')
        .map_or("", |(_, path)| path.trim_matches('/'))
}

/// A stable number for a project known only by its path: FNV-1a, with bit 62 set so it never
/// meets a real project id, and bit 63 clear so the store's signed integers hold it.
pub fn derived_key(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h | 1 << 62) & !(1 << 63)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Commit {
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub url: Option<String>,
}

impl Commit {
    /// The commit's title: `title`, else the first line of `message` (older GitLab sends no
    /// `title`).
    pub fn title(&self) -> &str {
        match self.title.as_deref() {
            Some(t) if !t.trim().is_empty() => t,
            _ => self
                .message
                .as_deref()
                .and_then(|m| m.lines().find(|l| !l.trim().is_empty()))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Build<'a> {
    pub id: u64,
    #[serde(default, borrow, deserialize_with = "borrowed_or_empty")]
    pub stage: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "borrowed_or_empty")]
    pub name: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "borrowed_or_empty")]
    pub status: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "borrowed_option")]
    pub failure_reason: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allow_failure: bool,
    #[serde(default, borrow)]
    pub runner: Option<Runner<'a>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Runner<'a> {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default, borrow, deserialize_with = "borrowed_option")]
    pub description: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_list")]
    pub tags: Vec<Cow<'a, str>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourcePipeline {
    #[serde(default, deserialize_with = "lenient")]
    pub pipeline_id: Option<u64>,
}

/// What the policy reads, borrowed from a payload.
#[derive(Debug, Clone, Copy)]
pub struct PipelineHead<'a> {
    pub object_kind: &'a str,
    /// See [`Project::key`].
    pub project_key: Option<u64>,
    /// See [`Project::path`].
    pub project_path: &'a str,
    pub default_branch: Option<&'a str>,
    pub pipeline_id: u64,
    pub git_ref: &'a str,
    pub tag: bool,
    pub source: Option<&'a str>,
    pub status: &'a str,
    pub detailed_status: Option<&'a str>,
    pub merge_request: bool,
    /// The parent of a child pipeline (`source_pipeline.pipeline_id`).
    pub source_pipeline_id: Option<u64>,
}

impl<'a> PipelineHead<'a> {
    fn new(
        object_kind: &'a str,
        a: &'a PipelineAttributes,
        merge_request: bool,
        project: &'a Project,
        source_pipeline: Option<&SourcePipeline>,
    ) -> Self {
        Self {
            object_kind,
            project_key: project.key(),
            project_path: project.path(),
            default_branch: project.default_branch.as_deref(),
            pipeline_id: a.id,
            git_ref: &a.git_ref,
            tag: a.tag,
            source: a.source.as_deref(),
            status: &a.status,
            detailed_status: a.detailed_status.as_deref(),
            merge_request,
            source_pipeline_id: source_pipeline.and_then(|s| s.pipeline_id),
        }
    }

    /// A child pipeline of a parent in the same project (`source: parent_pipeline`).
    pub fn parent_pipeline_id(&self) -> Option<u64> {
        if self.source != Some("parent_pipeline") {
            return None;
        }
        self.source_pipeline_id
    }
}

impl PipelineHook<'_> {
    pub fn head(&self) -> PipelineHead<'_> {
        PipelineHead::new(
            &self.object_kind,
            &self.object_attributes,
            self.merge_request.is_some(),
            &self.project,
            self.source_pipeline.as_ref(),
        )
    }

    /// A child pipeline of a parent in the same project (`source: parent_pipeline`).
    pub fn parent_pipeline_id(&self) -> Option<u64> {
        self.head().parent_pipeline_id()
    }
}

/// A payload from [`parse_pipeline`].
#[derive(Debug)]
pub struct Parsed<'a> {
    pub hook: PipelineHook<'a>,
    /// False when the job list was skipped: `hook.builds` is then empty.
    pub jobs_read: bool,
}

/// Reads a Pipeline Hook in one pass, as strictly as deserializing a [`PipelineHook`]
/// would, but asks `wants_jobs` whether to read the job list. GitLab sends `builds` last:
/// when the policy ignores the event there, reading stops (the body was authenticated, and
/// nothing is done with an ignored event), as long as the body ends as an object does. When
/// `builds` comes before the attributes or the project, the list is checked as JSON, kept as
/// a slice of the body, and read at the end only if `wants_jobs` (with the whole head)
/// wants it.
pub fn parse_pipeline<'a>(
    body: &'a [u8],
    wants_jobs: impl FnMut(&PipelineHead<'_>) -> bool,
) -> serde_json::Result<Parsed<'a>> {
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = HookSeed {
        wants_jobs,
        stopped: &mut stopped,
    };
    match seed.deserialize(&mut de) {
        Ok(parsed) => {
            de.end()?;
            Ok(parsed)
        }
        Err(e) => match stopped {
            Some(parsed) if body.trim_ascii_end().ends_with(b"}") => Ok(parsed),
            Some(_) => Err(de::Error::custom("the body does not end as a JSON object")),
            None => Err(e),
        },
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    ObjectKind,
    ObjectAttributes,
    MergeRequest,
    User,
    Project,
    Commit,
    Builds,
    SourcePipeline,
    #[serde(other)]
    Other,
}

struct HookSeed<'s, 'de, F> {
    wants_jobs: F,
    /// What was read when the policy ignored the event and reading stopped.
    stopped: &'s mut Option<Parsed<'de>>,
}

impl<'de, F: FnMut(&PipelineHead<'_>) -> bool> DeserializeSeed<'de> for HookSeed<'_, 'de, F> {
    type Value = Parsed<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

/// Fills a field once, as derived deserializers do.
fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// The fields of a hook as they are read.
#[derive(Default)]
struct Fields<'de> {
    object_kind: Option<String>,
    attributes: Option<PipelineAttributes>,
    merge_request: Option<Option<IgnoredAny>>,
    /// `user` and `commit`: only checked as JSON while reading, and read (leniently) only for
    /// an event the policy tracks.
    user: Option<&'de RawValue>,
    project: Option<Option<Project>>,
    commit: Option<&'de RawValue>,
    builds: Option<Option<Vec<Build<'de>>>>,
    source_pipeline: Option<Option<SourcePipeline>>,
}

impl<'de> Fields<'de> {
    /// Asks the policy, with what has been read, whether it wants the jobs.
    fn wants_jobs(
        &self,
        attributes: &PipelineAttributes,
        wants: &mut impl FnMut(&PipelineHead<'_>) -> bool,
    ) -> bool {
        let unnamed = Project::default();
        wants(&PipelineHead::new(
            self.object_kind.as_deref().unwrap_or("pipeline"),
            attributes,
            self.merge_request.flatten().is_some(),
            self.project
                .as_ref()
                .and_then(Option::as_ref)
                .unwrap_or(&unnamed),
            self.source_pipeline.as_ref().and_then(Option::as_ref),
        ))
    }

    fn parsed<E: de::Error>(self, jobs_read: bool) -> Result<Parsed<'de>, E> {
        Ok(Parsed {
            hook: PipelineHook {
                object_kind: self.object_kind.unwrap_or_else(pipeline_kind),
                object_attributes: self
                    .attributes
                    .ok_or_else(|| de::Error::missing_field("object_attributes"))?,
                merge_request: self.merge_request.flatten(),
                user: if jobs_read {
                    lenient_raw(self.user)
                } else {
                    None
                },
                project: self.project.flatten().unwrap_or_default(),
                commit: if jobs_read {
                    lenient_raw(self.commit)
                } else {
                    None
                },
                builds: self.builds.flatten().unwrap_or_default(),
                source_pipeline: self.source_pipeline.flatten(),
            },
            jobs_read,
        })
    }
}

impl<'de, F: FnMut(&PipelineHead<'_>) -> bool> Visitor<'de> for HookSeed<'_, 'de, F> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline hook")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut f = Fields::default();
        let mut raw_builds: Option<&'de RawValue> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::ObjectKind => once(&mut map, &mut f.object_kind, "object_kind")?,
                Field::ObjectAttributes => once(&mut map, &mut f.attributes, "object_attributes")?,
                Field::MergeRequest => once(&mut map, &mut f.merge_request, "merge_request")?,
                Field::User => once(&mut map, &mut f.user, "user")?,
                Field::Project => once_lenient(&mut map, &mut f.project, "project")?,
                Field::Commit => once(&mut map, &mut f.commit, "commit")?,
                Field::SourcePipeline => {
                    once_lenient(&mut map, &mut f.source_pipeline, "source_pipeline")?
                }
                Field::Builds => {
                    if f.builds.is_some() || raw_builds.is_some() {
                        return Err(de::Error::duplicate_field("builds"));
                    }
                    match (&f.attributes, &f.project) {
                        (Some(a), Some(_)) => {
                            if f.wants_jobs(a, &mut self.wants_jobs) {
                                f.builds = Some(map.next_value()?);
                            } else {
                                // Ignored: stop here (see `parse_pipeline`).
                                *self.stopped = Some(f.parsed(false)?);
                                return Err(de::Error::custom("reading stopped: ignored"));
                            }
                        }
                        // The jobs came before what the policy reads: only checked as JSON
                        // and kept as a slice of the body, to be read once the rest is.
                        _ => raw_builds = Some(map.next_value::<&'de RawValue>()?),
                    }
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(raw) = raw_builds else {
            return f.parsed(true);
        };
        let attributes = f
            .attributes
            .as_ref()
            .ok_or_else(|| de::Error::missing_field("object_attributes"))?;
        let jobs_read = f.wants_jobs(attributes, &mut self.wants_jobs);
        if jobs_read {
            f.builds = Some(serde_json::from_str(raw.get()).map_err(de::Error::custom)?);
        }
        f.parsed(jobs_read)
    }
}

/// A field kept as a slice of the body, read as [`lenient`] reads it.
fn lenient_raw<'de, T: Deserialize<'de>>(raw: Option<&'de RawValue>) -> Option<T> {
    serde_json::from_str::<Option<T>>(raw?.get()).ok().flatten()
}

/// [`once`] for a field read leniently (see [`lenient`]).
fn once_lenient<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
    slot: &mut Option<Option<T>>,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value_seed(Lenient(std::marker::PhantomData))?);
    Ok(())
}

struct Lenient<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Lenient<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        lenient(d)
    }
}

/// A field the bot can do without: null, or a value of another shape, reads as absent instead
/// of failing the whole payload (malformed JSON still fails).
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OrAny<T> {
        Value(T),
        Other(IgnoredAny),
    }
    Ok(match Option::<OrAny<T>>::deserialize(d)? {
        Some(OrAny::Value(v)) => Some(v),
        Some(OrAny::Other(_)) | None => None,
    })
}

fn lenient_or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(lenient(d)?.unwrap_or_default())
}

fn borrowed_or_empty<'de: 'a, 'a, D>(d: D) -> Result<Cow<'a, str>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(borrowed_option(d)?.unwrap_or_default())
}

/// Serde borrows a `Cow<str>` field only when it is the field's whole type;
/// inside an `Option` or a `Vec` it would allocate.
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

fn borrowed_option<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

fn borrowed_list<'de: 'a, 'a, D>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    let list = Option::<Vec<Borrowed<'a>>>::deserialize(d)?.unwrap_or_default();
    Ok(list.into_iter().map(|b| b.0).collect())
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
    let Some(raw) = Option::<Borrowed<'de>>::deserialize(d)? else {
        return Ok(None);
    };
    Ok(parse_time(&raw.0))
}

pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Some(naive) = raw.strip_suffix(" UTC") {
        // GitLab's webhook format, read as RFC 3339: chrono parses that without a format
        // string to interpret, on every pipeline event.
        let iso = format!("{}Z", naive.replacen(' ', "T", 1));
        if let Ok(t) = DateTime::parse_from_rfc3339(&iso) {
            return Some(t.with_timezone(&Utc));
        }
    }
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

    const EXAMPLE: &str = include_str!("../../tests/data/gitlab/pipeline-hook-doc-example.json");

    #[test]
    fn one_pass_reads_what_the_derived_parser_reads() {
        let full: PipelineHook = serde_json::from_str(EXAMPLE).expect("derived");
        let mut asked = Vec::new();
        let p = parse_pipeline(EXAMPLE.as_bytes(), |h| {
            asked.push((h.git_ref.to_string(), h.status.to_string(), h.merge_request));
            true
        })
        .expect("one pass");
        assert!(p.jobs_read);
        assert_eq!(format!("{:?}", p.hook), format!("{full:?}"));
        assert!(!full.builds.is_empty());
        let a = &full.object_attributes;
        assert_eq!(
            asked,
            [(
                a.git_ref.clone(),
                a.status.clone(),
                full.merge_request.is_some()
            )]
        );
    }

    #[test]
    fn an_ignored_event_is_read_up_to_its_jobs() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).expect("json");
        v.as_object_mut().expect("object").remove("builds");
        // Jobs last, as GitLab sends them (a `Value` sorts its keys).
        let head = v.to_string();
        let body = format!(
            r#"{},"builds":[{{"id":"not a number"}}]}}"#,
            head.strip_suffix('}').expect("an object")
        );
        let p = parse_pipeline(body.as_bytes(), |_| false).expect("skipped");
        assert!(!p.jobs_read && p.hook.builds.is_empty());
        assert_eq!(p.hook.object_attributes.id, v["object_attributes"]["id"]);
        assert!(parse_pipeline(body.as_bytes(), |_| true).is_err());
        // Not read at all: what follows the decision does not matter, as long as the body
        // ends as an object does (a cut body does not).
        let broken = body.replace(r#""not a number"}]"#, r#""not a number"]}"#);
        assert!(parse_pipeline(broken.as_bytes(), |_| false).is_ok());
        assert!(parse_pipeline(broken.as_bytes(), |_| true).is_err());
        let cut = &body[..body.len() - 10];
        assert!(parse_pipeline(cut.as_bytes(), |_| false).is_err());
        assert!(parse_pipeline(format!("{body} x").as_bytes(), |_| false).is_err());
        // What precedes the jobs is read as strictly as ever.
        let twice = body.replacen(
            r#""object_kind":"pipeline""#,
            r#""object_kind":"pipeline","object_kind":"pipeline""#,
            1,
        );
        assert!(parse_pipeline(twice.as_bytes(), |_| false).is_err());
    }

    #[test]
    fn job_text_is_borrowed_unless_escaped() {
        let body = r#"[{"id":1,"name":"a","stage":"s","status":"failed","failure_reason":"x",
            "runner":{"description":"r\u0031","tags":["arm64","t\n"]}}]"#;
        let jobs: Vec<Build> = serde_json::from_str(body).expect("jobs");
        let b = &jobs[0];
        let runner = b.runner.as_ref().expect("runner");
        assert!(matches!(b.name, Cow::Borrowed("a")));
        assert!(matches!(b.failure_reason, Some(Cow::Borrowed("x"))));
        assert!(matches!(runner.description.as_deref(), Some("r1")));
        assert!(matches!(runner.tags[0], Cow::Borrowed("arm64")));
        assert_eq!(runner.tags[1], "t\n");
        let nulls: Vec<Build> =
            serde_json::from_str(r#"[{"id":2,"failure_reason":null,"runner":{"tags":null}}]"#)
                .expect("nulls");
        assert!(nulls[0].failure_reason.is_none());
        assert!(nulls[0].runner.as_ref().is_some_and(|r| r.tags.is_empty()));
    }

    #[test]
    fn jobs_before_the_policy_fields_wait_for_the_policy() {
        let body = r#"{"builds":[{"id":1,"name":"a","status":"failed"}],"object_kind":"pipeline",
            "object_attributes":{"id":2,"ref":"main","status":"failed"},"project":{"id":3,"path_with_namespace":"g/p"},
            "source_pipeline":{"pipeline_id":9}}"#;
        let mut asked = Vec::new();
        let p = parse_pipeline(body.as_bytes(), |h| {
            asked.push((h.git_ref.to_string(), h.project_key, h.source_pipeline_id));
            true
        })
        .expect("parsed");
        // Asked once, with the fields that came after the jobs.
        assert_eq!(asked, [("main".to_string(), Some(3), Some(9))]);
        assert!(p.jobs_read);
        assert_eq!(p.hook.builds.len(), 1);
        assert!(matches!(p.hook.builds[0].name, Cow::Borrowed("a")));

        // An ignored ref: the jobs are only checked as JSON, whatever their shape.
        let odd = body.replace(r#""id":1,"#, r#""id":"one","#);
        let p = parse_pipeline(odd.as_bytes(), |_| false).expect("ignored");
        assert!(!p.jobs_read && p.hook.builds.is_empty());
        assert!(parse_pipeline(odd.as_bytes(), |_| true).is_err());
        let broken = body.replace(r#""failed"}],"#, r#""failed"]],"#);
        assert!(parse_pipeline(broken.as_bytes(), |_| false).is_err());
    }

    #[test]
    fn jobs_after_attributes_but_before_the_project_wait_too() {
        let body = r#"{"object_attributes":{"id":2,"ref":"main","status":"failed"},
            "builds":[{"id":1,"name":"a","status":"failed"}],"project":{"id":3}}"#;
        let mut keys = Vec::new();
        let p = parse_pipeline(body.as_bytes(), |h| {
            keys.push(h.project_key);
            false
        })
        .expect("parsed");
        assert_eq!(keys, [Some(3)]);
        assert!(!p.jobs_read && p.hook.builds.is_empty());
    }

    #[test]
    fn strict_like_the_derived_parser() {
        let cases = [
            r#"{"object_kind":"pipeline","object_kind":"pipeline"}"#,
            r#"{"object_kind":"pipeline","project":{"id":1,"path_with_namespace":"g/p"}}"#,
            r#"{"object_attributes":{"id":1,"ref":"m","status":"failed"},"user":{},"user":{}}"#,
            r#"{"object_attributes":{"id":"1","ref":"m","status":"failed"}}"#,
            r#"{"object_attributes":{"id":1,"ref":"m"}}"#,
            r#"[]"#,
        ];
        for body in cases {
            assert!(parse_pipeline(body.as_bytes(), |_| true).is_err(), "{body}");
            assert!(
                serde_json::from_str::<PipelineHook>(body).is_err(),
                "{body}"
            );
        }
        let null_jobs = r#"{"object_kind":"pipeline","builds":null,"merge_request":null,
            "object_attributes":{"id":1,"ref":"m","status":"failed"},"project":{"id":1,"path_with_namespace":"g/p"}}"#;
        let p = parse_pipeline(null_jobs.as_bytes(), |h| !h.merge_request).expect("null jobs");
        assert!(p.jobs_read && p.hook.builds.is_empty());
    }

    #[test]
    fn fields_the_bot_can_do_without_never_fail_a_payload() {
        // GitLab before 2017: no project id; relays: no object_kind, odd types, nulls.
        let bodies = [
            r#"{"object_kind":"pipeline","object_attributes":{"id":1,"ref":"m","status":"failed"},
                "project":{"path_with_namespace":"g/p","web_url":"https://gl/g/p"}}"#,
            r#"{"object_attributes":{"id":1,"ref":"m","status":"failed","tag":null,"name":5,
                "duration":"long","url":null,"detailed_status":{"x":1},"source":[]},
                "project":{"id":"7","web_url":null,"path_with_namespace":3,"default_branch":false},
                "user":{"name":null,"username":7,"email":{}},
                "commit":{"id":null,"title":null,"message":1},
                "source_pipeline":"x","merge_request":null,"builds":[{"id":1,"name":null,"stage":null,
                "status":null,"allow_failure":null,"failure_reason":null,"runner":null}]}"#,
            r#"{"object_kind":"pipeline","object_attributes":{"id":1,"ref":"m","status":"running"},
                "project":"gone","user":"someone","commit":[1]}"#,
        ];
        for body in bodies {
            let one = parse_pipeline(body.as_bytes(), |_| true).expect(body);
            let derived: PipelineHook = serde_json::from_str(body).expect(body);
            assert_eq!(format!("{:?}", one.hook), format!("{derived:?}"));
        }
        let p = parse_pipeline(bodies[1].as_bytes(), |_| true)
            .expect("odd")
            .hook;
        assert_eq!(p.object_kind, "pipeline");
        assert!(!p.object_attributes.tag && p.object_attributes.name.is_none());
        assert_eq!(p.project.key(), None);
        assert_eq!(p.builds[0].name, "");
        let p = parse_pipeline(bodies[0].as_bytes(), |_| true)
            .expect("old")
            .hook;
        assert_eq!(p.project.key(), Some(derived_key("g/p")));
        assert_eq!(p.head().project_path, "g/p");
    }

    #[test]
    fn commit_titles_fall_back_to_the_message() {
        let c = |title: Option<&str>, message: Option<&str>| Commit {
            id: "abc".into(),
            title: title.map(str::to_string),
            message: message.map(str::to_string),
            url: None,
        };
        assert_eq!(c(Some("T"), Some("M")).title(), "T");
        assert_eq!(c(None, Some("\nfirst line\nsecond")).title(), "first line");
        assert_eq!(c(Some(" "), Some("m")).title(), "m");
        assert_eq!(c(None, None).title(), "");
    }

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
