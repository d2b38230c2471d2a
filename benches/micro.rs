//! Criterion micro-benchmarks of the CPU work on armbot's request paths: Slack request
//! signatures, GitLab webhook authentication, pipeline payload parsing, the notify policy and
//! Block Kit rendering, and FAQ matching.
//!
//! Run with `bench/micro` (a markdown table of the results) or
//! `cargo bench -p armbot --bench micro` (criterion's own output); add `-- --quick` for a
//! smoke run. Everything runs on fixed inputs with an injected clock, so every run measures
//! the same work.

use std::hint::black_box;
use std::io::{self, Write};
use std::time::Duration;

use armbot::{
    faq::{Answer, KnowledgeBase},
    gitlab::{
        GitlabSecrets, PipelineHook,
        auth::{self, AuthError, AuthHeaders},
        payload,
    },
    notify::{
        policy::{self, Decision},
        render,
        settings::{DEFAULT_STABLE_PATTERN, NotifySettings, Route},
    },
    slack::verify::{self, VerifyError},
};
use base64::Engine;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// The injected "now" for every signature check; requests are signed at this instant.
const NOW_UNIX: i64 = 1_718_000_000;

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A typical `/arm status` slash command as Slack posts it (form-encoded).
const SLASH_COMMAND_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=gitlab\
    &channel_id=C8PSS9T3V&channel_name=g_distribution&user_id=U2CERLKJA&user_name=roadrunner\
    &command=%2Farm&text=status&api_app_id=A123ABC456\
    &response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN\
    &trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

const FAILED_PIPELINE: &str = include_str!("../examples/failed-pipeline.json");

/// Jobs in the large pipeline; as in `bench/webhook`.
const JOBS: usize = 300;

/// The 300-job failed pipeline `bench/webhook` posts: `builds[1]` of
/// `examples/failed-pipeline.json` copied 300 times with ids 5000+i and names `job-{i}`; every
/// 50th copy failed with `script_failure`. Written with Python's `json.dump` separators
/// (`", "`, `": "`) so it has the same size as the script's file; the keys come out sorted
/// (serde_json without `preserve_order`) except `builds`, which comes last as GitLab sends it.
fn pipeline_300_jobs() -> Vec<u8> {
    let mut hook: Value =
        serde_json::from_str(FAILED_PIPELINE).expect("examples/failed-pipeline.json is JSON");
    let template = hook["builds"][1].clone();
    assert!(
        template.is_object(),
        "examples/failed-pipeline.json has a builds[1] object"
    );
    let builds: Vec<Value> = (0..JOBS)
        .map(|i| {
            let failed = i % 50 == 0;
            let mut b = template.clone();
            b["id"] = json!(5000 + i);
            b["name"] = json!(format!("job-{i}"));
            b["status"] = json!(if failed { "failed" } else { "success" });
            b["failure_reason"] = if failed {
                json!("script_failure")
            } else {
                Value::Null
            };
            b
        })
        .collect();
    // GitLab sends `builds` last, which lets the parser skip the jobs of an ignored ref;
    // serde_json's sorted map would put it first, so it is written after the rest.
    let rest = hook.as_object_mut().expect("the example is an object");
    rest.remove("builds");
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonSeparators);
    serde::Serialize::serialize(&hook, &mut ser).expect("a Value serialises");
    out.pop(); // the closing brace
    out.extend_from_slice(b", \"builds\": ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonSeparators);
    serde::Serialize::serialize(&builds, &mut ser).expect("a Value serialises");
    out.push(b'}');
    out
}

/// `serde_json`'s compact output with the separators of Python's `json.dump` defaults.
struct PythonSeparators;

impl serde_json::ser::Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// The settings `armbot` runs with when the settings file leaves `[notify]` at its defaults,
/// plus one route so `channel_for` has a pattern to try.
fn notify_settings() -> NotifySettings {
    NotifySettings {
        channel: "C_DEFAULT".into(),
        extra_branches: vec!["master".into(), "main".into()],
        stable_pattern: regex::Regex::new(DEFAULT_STABLE_PATTERN).expect("the default pattern"),
        projects: vec![],
        arm_runner_tags: vec!["arm64".into(), "arm".into(), "aarch64".into()],
        routes: vec![Route {
            project: Some("gitlab-org/omnibus-gitlab".into()),
            ref_pattern: Some(regex::Regex::new("-ee$").expect("a valid pattern")),
            channel: "C_EE".into(),
        }],
        users: Default::default(),
    }
}

fn slack_signature(c: &mut Criterion) {
    let secret = SecretString::from(SLACK_SECRET.to_string());
    let ts = NOW_UNIX.to_string();
    let body = SLASH_COMMAND_BODY.as_bytes();
    let good = verify::signature(SLACK_SECRET, &ts, body);
    // Well-formed (64 lowercase hex digits) so the check computes the HMAC and compares.
    let bad = verify::signature("another-signing-secret", &ts, body);
    assert_eq!(
        verify::verify(&secret, Some(&ts), Some(&good), body, NOW_UNIX),
        Ok(())
    );
    assert_eq!(
        verify::verify(&secret, Some(&ts), Some(&bad), body, NOW_UNIX),
        Err(VerifyError::BadSignature)
    );

    let mut g = c.benchmark_group("slack_signature");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("valid", |b| {
        b.iter(|| {
            verify::verify(
                black_box(&secret),
                black_box(Some(ts.as_str())),
                black_box(Some(good.as_str())),
                black_box(body),
                black_box(NOW_UNIX),
            )
        })
    });
    g.bench_function("rejected", |b| {
        b.iter(|| {
            verify::verify(
                black_box(&secret),
                black_box(Some(ts.as_str())),
                black_box(Some(bad.as_str())),
                black_box(body),
                black_box(NOW_UNIX),
            )
        })
    });
    g.finish();
}

fn gitlab_auth(c: &mut Criterion, body: &[u8]) {
    let tokens = GitlabSecrets {
        tokens: vec![SecretString::from(
            "a-long-random-webhook-secret-token".to_string(),
        )],
        signing_key: None,
    };
    let token_headers = AuthHeaders {
        token: Some("a-long-random-webhook-secret-token"),
        ..Default::default()
    };
    assert_eq!(
        auth::verify(&tokens, &token_headers, body, NOW_UNIX),
        Ok(())
    );

    // A `whsec_` signing token as GitLab shows it; the settings keep the base64 part.
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let key_b64 = whsec.strip_prefix("whsec_").expect("a whsec_ token");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .expect("the key is base64");
    let signed = GitlabSecrets {
        tokens: vec![],
        signing_key: Some(SecretString::from(key_b64.to_string())),
    };
    let ts = NOW_UNIX.to_string();
    let msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let signature = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(auth::sign(&key, msg_id, &ts, body))
    );
    let signed_headers = AuthHeaders {
        token: None,
        webhook_id: Some(msg_id),
        webhook_timestamp: Some(&ts),
        webhook_signature: Some(&signature),
    };
    assert_eq!(
        auth::verify(&signed, &signed_headers, body, NOW_UNIX),
        Ok(())
    );
    assert_eq!(
        auth::verify(&signed, &signed_headers, &body[1..], NOW_UNIX),
        Err(AuthError::BadSignature)
    );

    let mut g = c.benchmark_group("gitlab_auth");
    g.bench_function("token", |b| {
        b.iter(|| {
            auth::verify(
                black_box(&tokens),
                black_box(&token_headers),
                black_box(body),
                black_box(NOW_UNIX),
            )
        })
    });
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("standard_webhooks_300_jobs", |b| {
        b.iter(|| {
            auth::verify(
                black_box(&signed),
                black_box(&signed_headers),
                black_box(body),
                black_box(NOW_UNIX),
            )
        })
    });
    g.finish();
}

fn parse(c: &mut Criterion, body: &[u8]) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    // The handler's one-pass parse, reading the jobs as it does for a tracked ref.
    g.bench_function("pipeline_300_jobs", |b| {
        b.iter(|| payload::parse_pipeline(black_box(body), |_| true).expect("a PipelineHook"))
    });
    // An ignored ref: the job list is only checked as JSON.
    g.bench_function("pipeline_300_jobs_ignored_ref", |b| {
        b.iter(|| payload::parse_pipeline(black_box(body), |_| false).expect("a PipelineHook"))
    });
    // The same with the jobs first (a sorted map's order, some relays'): scanned, kept as a
    // slice, and dropped once the ref is known to be ignored.
    let value: Value = serde_json::from_slice(body).expect("the body is JSON");
    let jobs_first = serde_json::to_vec(&value).expect("a Value serialises");
    g.bench_function("pipeline_300_jobs_first_ignored_ref", |b| {
        b.iter(|| {
            payload::parse_pipeline(black_box(&jobs_first), |_| false).expect("a PipelineHook")
        })
    });
    g.bench_function("ignored_any_reference", |b| {
        b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(body)).expect("valid JSON"))
    });
    g.finish();
}

fn policy_and_render(c: &mut Criterion, hook: &PipelineHook) {
    let settings = notify_settings();
    assert!(matches!(
        policy::classify(&hook.head(), &settings),
        Decision::Track { .. }
    ));
    let since = Utc
        .timestamp_opt(NOW_UNIX, 0)
        .single()
        .expect("a valid instant");
    let previous = render::Failure::new(hook, &settings).kept();

    let mut g = c.benchmark_group("policy");
    g.bench_function("classify", |b| {
        b.iter(|| policy::classify(black_box(&hook.head()), black_box(&settings)))
    });
    g.finish();

    // What the pipeline path renders, minus SQL: what the incident keeps of the failure (JSON)
    // and the root message (kept as JSON in the outbox), in the request.
    let mut g = c.benchmark_group("render");
    g.bench_function("opened_300_jobs", |b| {
        b.iter(|| {
            let failure = render::Failure::new(black_box(hook), black_box(&settings));
            let stored = serde_json::to_string(&failure.kept()).expect("a failure serialises");
            let root = render::root_opened(&failure);
            let queued = serde_json::to_string(&root).expect("a message serialises");
            (stored, queued)
        })
    });
    // Another failure on a broken ref: the writer's part, the thread reply comparing it with
    // the one before and the updated root.
    let failure = render::Failure::new(hook, &settings);
    g.bench_function("still_failing_300_jobs", |b| {
        b.iter(|| {
            let reply = render::still_failing(Some(black_box(&previous)), black_box(&failure));
            let reply = serde_json::to_string(&reply).expect("a message serialises");
            let root = render::root_broken(black_box(&failure), since, 2, 1);
            let root = serde_json::to_string(&root).expect("a message serialises");
            (reply, root)
        })
    });
    g.finish();
}

/// Questions as people ask them in the channel: covered, misspelt, not covered, and a long
/// chat message.
const QUESTIONS: &[(&str, &str)] = &[
    ("covered", "why are my arm builds pending"),
    ("misspelt", "provisoning of arm builders"),
    ("unknown", "how do I request a laptop"),
    (
        "long_message",
        "Hey team, I noticed that a bunch of my ARM jobs on dev have been sitting in pending for \
         like 2 hours now and nothing is picking them up. Is something wrong with the Scaleway \
         runners? what should I do?",
    ),
];

fn faq(c: &mut Criterion) {
    let kb = KnowledgeBase::builtin();
    assert!(!kb.entries().is_empty(), "the shipped faq/faq.toml loads");
    for (kind, question) in QUESTIONS {
        let answer = kb.answer(question);
        match *kind {
            "unknown" => assert!(matches!(answer, Answer::Unknown { .. }), "{question}"),
            _ => assert!(matches!(answer, Answer::Hit { .. }), "{question}"),
        }
    }

    let mut g = c.benchmark_group("faq");
    for (kind, question) in QUESTIONS {
        g.bench_function(format!("match_{kind}"), |b| {
            b.iter(|| kb.answer(black_box(question)))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let body = pipeline_300_jobs();
    eprintln!("micro: the 300-job pipeline body is {} bytes", body.len());
    let hook: PipelineHook = serde_json::from_slice(&body).expect("the 300-job pipeline parses");
    assert_eq!(hook.builds.len(), JOBS);

    slack_signature(c);
    gitlab_auth(c, &body);
    parse(c, &body);
    policy_and_render(c, &hook);
    faq(c);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = micro;
    config = config();
    targets = benches
}
criterion_main!(micro);
