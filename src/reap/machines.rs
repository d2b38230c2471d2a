//! The runner manager's side: which docker-machine machine owns a Scaleway server, and the
//! command that drops a machine so gitlab-runner frees its slot.
//!
//! Each `machines/<name>/config.json` of the store also holds `Driver.Token`, the Scaleway
//! secret key. Only `Driver.ServerID` is deserialized; file contents are never kept, logged or
//! put in an error.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::escape;
use super::settings::{MACHINE_PLACEHOLDER, ReapSettings};

/// A `config.json` is a few kilobytes; anything much larger is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Characters of the release command's stderr kept for the report.
const STDERR_TAIL_CHARS: usize = 300;
/// Bytes of stderr held while the command runs: enough to redact whole tokens before the tail
/// is cut.
const MAX_STDERR_BYTES: usize = 16 * 1024;

/// Server id → machine name, read from a docker-machine store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineIndex {
    by_server: HashMap<String, String>,
    skipped: usize,
}

/// Why the store could not be read at all (single entries are skipped, not errors).
#[derive(Debug, thiserror::Error)]
pub enum MachineStoreError {
    #[error("cannot read the docker-machine store {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MachineStoreError {
    /// A sentence for Slack (mrkdwn).
    pub fn user_message(&self) -> String {
        match self {
            MachineStoreError::Unreadable { path, source } => format!(
                "The bot cannot read the docker-machine store `{}` ({}), so it cannot tell \
                 which runner machines hold the stuck servers. Check `machine_store` under \
                 `[reap]` and the bot's access to it.",
                escape(&path.display().to_string()),
                escape(&source.kind().to_string())
            ),
        }
    }
}

/// Only the field reap needs; serde skips every other one (the token included) unread.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "Driver")]
    driver: Option<DriverIds>,
}

#[derive(Deserialize)]
struct DriverIds {
    #[serde(rename = "ServerID")]
    server_id: Option<String>,
}

impl MachineIndex {
    /// Read `<dir>/machines/*/config.json`. Entries that cannot be read, do not parse or have
    /// an invalid machine name are skipped and counted; a machine without a server yet (still
    /// being created) is left out silently. Blocking file I/O: the store holds a few dozen
    /// small files.
    pub fn read(dir: &Path) -> Result<MachineIndex, MachineStoreError> {
        let machines = dir.join("machines");
        let entries =
            std::fs::read_dir(&machines).map_err(|source| MachineStoreError::Unreadable {
                path: machines.clone(),
                source,
            })?;
        let mut names: Vec<(String, PathBuf)> = Vec::new();
        let mut index = MachineIndex::default();
        for entry in entries {
            let Ok(entry) = entry else {
                index.skipped += 1;
                continue;
            };
            match entry.file_name().into_string() {
                Ok(name) if valid_machine_name(&name) => names.push((name, entry.path())),
                _ => index.skipped += 1,
            }
        }
        // Sorted so that, should two entries claim one server, the same one always wins.
        names.sort();
        for (name, path) in names {
            match read_server_id(&path.join("config.json")) {
                Some(Some(server_id)) => match index.by_server.entry(server_id) {
                    Entry::Occupied(_) => index.skipped += 1,
                    Entry::Vacant(slot) => {
                        slot.insert(name);
                    }
                },
                Some(None) => {}
                None => index.skipped += 1,
            }
        }
        Ok(index)
    }

    /// The machine that owns this server, if the store has one.
    pub fn machine_for(&self, server_id: &str) -> Option<&str> {
        self.by_server.get(server_id).map(String::as_str)
    }

    /// Machines that map to a server.
    pub fn len(&self) -> usize {
        self.by_server.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_server.is_empty()
    }

    /// Store entries that could not be used (unreadable, malformed, odd name, duplicate).
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// `(server id, machine name)` pairs; for callers that learn the mapping elsewhere, and tests.
impl FromIterator<(String, String)> for MachineIndex {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        MachineIndex {
            by_server: iter.into_iter().collect(),
            skipped: 0,
        }
    }
}

/// `None`: unusable entry. `Some(None)`: a machine without a server id.
fn read_server_id(path: &Path) -> Option<Option<String>> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return None;
    }
    // The parse error is dropped unseen: serde messages may quote file contents.
    let config: ConfigFile = serde_json::from_slice(&bytes).ok()?;
    Some(
        config
            .driver
            .and_then(|d| d.server_id)
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty()),
    )
}

/// docker-machine's own rule (`^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$`). It also keeps the name from
/// being read as an option, and safe when `release_command` goes through ssh, whose remote
/// side does use a shell.
fn valid_machine_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Runs `release_command` for one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReleaser {
    command: Vec<String>,
    timeout: Duration,
}

/// Why freeing a runner slot failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("refusing machine name {0:?}: not a docker-machine name")]
    BadMachineName(String),
    #[error("release_command is empty")]
    NoCommand,
    #[error("could not run {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{program} did not finish within {secs} s")]
    Timeout { program: String, secs: u64 },
    #[error("{program} failed ({status}): {stderr_tail}")]
    Failed {
        program: String,
        status: String,
        /// The end of its stderr, with token-like strings redacted.
        stderr_tail: String,
    },
}

impl ReleaseError {
    /// A sentence for Slack (mrkdwn, values escaped).
    pub fn user_message(&self) -> String {
        match self {
            ReleaseError::BadMachineName(name) => format!(
                "the machine name `{}` is not a docker-machine name, so it was not passed to \
                 a command",
                escape(name)
            ),
            ReleaseError::NoCommand => "`release_command` under `[reap]` is empty".to_owned(),
            ReleaseError::Spawn { program, reason } => {
                format!("could not run `{}`: {}", escape(program), escape(reason))
            }
            ReleaseError::Timeout { program, secs } => {
                format!("`{}` did not finish within {secs} s", escape(program))
            }
            ReleaseError::Failed {
                program,
                status,
                stderr_tail,
            } => {
                let said = if stderr_tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(stderr_tail))
                };
                format!("`{}` failed ({}){said}", escape(program), escape(status))
            }
        }
    }
}

impl SlotReleaser {
    pub fn new(command: Vec<String>, timeout: Duration) -> Self {
        SlotReleaser { command, timeout }
    }

    /// The configured releaser, or `None` without a `machine_store`: with no store there are
    /// no machine names to release.
    pub fn from_settings(settings: &ReapSettings) -> Option<Self> {
        settings.machine_store.as_ref()?;
        Some(SlotReleaser::new(
            settings.release_command.clone(),
            settings.release_timeout(),
        ))
    }

    /// Run the command for `machine`, as separate arguments (no shell), within the timeout.
    pub async fn release(&self, machine: &str) -> Result<(), ReleaseError> {
        if !valid_machine_name(machine) {
            return Err(ReleaseError::BadMachineName(machine.to_owned()));
        }
        let argv: Vec<String> = self
            .command
            .iter()
            .map(|a| a.replace(MACHINE_PLACEHOLDER, machine))
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(ReleaseError::NoCommand);
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // A timed-out command must not linger after its future is dropped.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ReleaseError::Spawn {
                program: program.clone(),
                reason: e.kind().to_string(),
            })?;
        let stderr = child.stderr.take();
        let run = async {
            let mut err = Vec::new();
            if let Some(mut stderr) = stderr {
                // Keep reading (a full pipe would block the command) but only keep the end.
                // A read error only loses the diagnostics, not the exit status.
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    err.extend_from_slice(&chunk[..n]);
                    if err.len() > MAX_STDERR_BYTES {
                        err.drain(..err.len() - MAX_STDERR_BYTES);
                    }
                }
            }
            (child.wait().await, err)
        };
        let (status, err) =
            tokio::time::timeout(self.timeout, run)
                .await
                .map_err(|_| ReleaseError::Timeout {
                    program: program.clone(),
                    secs: self.timeout.as_secs(),
                })?;
        let status = status.map_err(|e| ReleaseError::Spawn {
            program: program.clone(),
            reason: e.kind().to_string(),
        })?;
        if status.success() {
            return Ok(());
        }
        Err(ReleaseError::Failed {
            program: program.clone(),
            status: status.to_string(),
            stderr_tail: stderr_tail(&String::from_utf8_lossy(&err)),
        })
    }
}

/// UUIDs (Scaleway secret keys have that shape) and long unbroken base64/hex runs.
static TOKENISH: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[A-Za-z0-9+/=_]{32,}",
    )
    .ok()
});

/// The last [`STDERR_TAIL_CHARS`] characters, trimmed, token-like strings redacted. Redacted
/// before cutting, so a cut cannot leave half a token unrecognised.
fn stderr_tail(stderr: &str) -> String {
    let Some(tokenish) = TOKENISH.as_ref() else {
        return "[stderr withheld]".to_owned();
    };
    let redacted = tokenish.replace_all(stderr.trim(), "[redacted]");
    let chars: Vec<char> = redacted.chars().collect();
    let start = chars.len().saturating_sub(STDERR_TAIL_CHARS);
    let tail: String = chars[start..].iter().collect();
    let tail = tail.split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 {
        format!("…{tail}")
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        assert!(valid_machine_name(
            "runner-qasr7s6-gitlab-runner-1571267599-fee162b0"
        ));
        assert!(valid_machine_name("a.b-c"));
        for bad in [
            "",
            "-rf",
            ".hidden",
            "a b",
            "a;rm -rf /",
            "a/b",
            "ü",
            "$(x)",
        ] {
            assert!(!valid_machine_name(bad), "{bad}");
        }
    }

    #[test]
    fn stderr_is_redacted_and_cut() {
        let key = "7c0f3e1a-5b2d-4e8f-9a6c-d1e2f3a4b5c6";
        let tail = stderr_tail(&format!(
            "Error: token {key} refused; blob {} end\n",
            "A".repeat(40)
        ));
        assert!(!tail.contains(key), "{tail}");
        assert!(!tail.contains(&"A".repeat(40)), "{tail}");
        assert!(tail.contains("[redacted]"));
        // Machine names survive: hyphens break them into short runs.
        let name = "runner-qasr7s6-gitlab-runner-1571267599-fee162b0";
        assert!(stderr_tail(&format!("Host does not exist: {name:?}")).contains(name));
        let long = stderr_tail(&"x ".repeat(1000));
        assert!(long.starts_with('…'));
        assert!(long.chars().count() <= STDERR_TAIL_CHARS + 1);
        assert!(TOKENISH.is_some());
    }
}
