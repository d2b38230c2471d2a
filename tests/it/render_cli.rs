//! `armbot render` works offline: no GitLab secret needed, a reader that stops early is not
//! an error, and `--thread` prints the messages as posted.

use std::{
    io::Read,
    process::{Command, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_armbot");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/failed-pipeline.json");

/// The binary with an empty environment (no secrets at all) in an empty directory.
fn armbot(args: &[&str], dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn render_needs_no_gitlab_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = armbot(&["render", EXAMPLE], dir.path())
        .output()
        .expect("run");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("channel: console\n{"), "{stdout}");
    assert!(!stderr.contains("GITLAB_WEBHOOK_TOKEN"), "{stderr}");
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = armbot(&["render", EXAMPLE], dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Close the reading end before the binary has read its payload, as `| head -0` would.
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn thread_prints_the_messages_as_posted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = armbot(&["render", "--thread", EXAMPLE], dir.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    let messages: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("a JSON list");
    assert!(!messages.is_empty());
    let root = serde_json::to_string(&messages[0]).expect("json");
    assert!(root.contains(":red_circle: *<"), "{root}");
    assert!(root.contains("` — the script failed"), "{root}");
    assert!(!root.contains("Broken since"), "{root}");
}

#[test]
fn thread_shows_the_mention_of_a_mapped_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("armbot.toml"),
        "[notify.users]\n\"ROOT\" = \"U0ROOT\"\n",
    )
    .expect("write");
    let out = armbot(&["render", "--thread", EXAMPLE], dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("a JSON list");
    assert_eq!(messages.len(), 2);
    assert!(
        !messages[0].to_string().contains("<@"),
        "the root pings nobody"
    );
    assert!(
        messages[1]
            .to_string()
            .contains(":wave: <@U0ROOT> your pipeline")
    );
}

#[test]
fn a_user_mapped_to_something_else_than_a_slack_id_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("armbot.toml"),
        "[notify.users]\nroot = \"@root\"\n",
    )
    .expect("write");
    let out = armbot(&["render", EXAMPLE], dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[notify.users] root = \"@root\" is not a Slack user id"),
        "{stderr}"
    );
}
