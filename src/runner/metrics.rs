//! The runner manager's Prometheus endpoint: docker+machine machine states and the runner cap.
//!
//! gitlab-runner exports `gitlab_runner_autoscaling_machine_states{executor, state, …}` (one
//! series per state, possibly split by extra labels in newer versions, hence summed) and
//! `gitlab_runner_limit{runner, system_id}`, the `[[runners]] limit`. For docker+machine that
//! limit caps machines in *all* states, removing and stuck-on-removing included: machines the
//! runner fails to remove hold slots and leave jobs pending.

use std::time::Duration;

use reqwest::{StatusCode, Url};

const MACHINE_STATES: &str = "gitlab_runner_autoscaling_machine_states";
const LIMIT: &str = "gitlab_runner_limit";
/// A runner's exposition is tens of kilobytes; anything far larger is not a runner.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Machines of the runner manager by state, and its cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineStates {
    pub idle: u64,
    pub acquired: u64,
    pub creating: u64,
    pub used: u64,
    pub removing: u64,
    pub stuck_on_removing: u64,
    /// Sum of `gitlab_runner_limit` over the runners; `None` if not exported or if any runner
    /// has `limit = 0` (unlimited).
    pub limit: Option<u64>,
    /// Whether the machine-states gauge was present at all.
    pub seen: bool,
}

impl MachineStates {
    /// What counts against `limit`: every state, removal included (gitlab-runner `Total()`).
    pub fn total(&self) -> u64 {
        self.idle
            .saturating_add(self.acquired)
            .saturating_add(self.creating)
            .saturating_add(self.used)
            .saturating_add(self.not_working())
    }

    /// Machines holding a slot while being (or failing to be) removed.
    pub fn not_working(&self) -> u64 {
        self.removing.saturating_add(self.stuck_on_removing)
    }
}

/// Parse a Prometheus text exposition. Never fails: unparsable lines are skipped.
pub fn parse_machine_states(text: &str) -> MachineStates {
    let mut states = MachineStates::default();
    let mut limits: Vec<u64> = Vec::new();
    for sample in text.lines().filter_map(parse_sample) {
        let Some(value) = as_count(sample.value) else {
            continue;
        };
        if sample.name == MACHINE_STATES {
            let Some(state) = sample.label("state") else {
                continue;
            };
            let slot = match state {
                "idle" => &mut states.idle,
                "acquired" => &mut states.acquired,
                "creating" => &mut states.creating,
                "used" => &mut states.used,
                "removing" => &mut states.removing,
                "stuck-on-removing" => &mut states.stuck_on_removing,
                _ => continue,
            };
            *slot = slot.saturating_add(value);
            states.seen = true;
        } else if sample.name == LIMIT {
            limits.push(value);
        }
    }
    if !limits.is_empty() && !limits.contains(&0) {
        states.limit = Some(limits.iter().fold(0u64, |a, b| a.saturating_add(*b)));
    }
    states
}

/// A gauge value as a machine count; NaN, infinities and negatives are dropped.
fn as_count(value: f64) -> Option<u64> {
    if value.is_finite() && value >= 0.0 {
        // Saturating float-to-int conversion: huge values clamp to u64::MAX.
        Some(value.round() as u64)
    } else {
        None
    }
}

struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One sample line: `name{label="value",…} value [timestamp]`. `None` for comments, blank or
/// malformed lines.
fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remainder;
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels after the `{`, up to and including the `}`. Returns them and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        // Label values escape `\\`, `\"` and `\n`.
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((name, value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        }
    }
}

fn parse_value(token: &str) -> Option<f64> {
    match token {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => token.parse().ok(),
    }
}

/// Why the runner metrics could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerMetricsError {
    #[error("runner metrics URL is not valid")]
    BadUrl,
    #[error("runner metrics endpoint did not answer in time")]
    Timeout,
    #[error("cannot reach the runner metrics endpoint: {0}")]
    Network(String),
    #[error("runner metrics endpoint answered HTTP {0}")]
    Status(u16),
    #[error("runner metrics response is too large")]
    TooLarge,
    #[error("runner metrics have no {MACHINE_STATES} gauge")]
    NoMachineStates,
}

impl RunnerMetricsError {
    /// A sentence for Slack saying what to check.
    pub fn user_message(&self) -> String {
        match self {
            RunnerMetricsError::BadUrl => {
                "`runner_metrics_url` in the `[fleet]` settings is not a valid URL.".to_owned()
            }
            RunnerMetricsError::Timeout
            | RunnerMetricsError::Network(_)
            | RunnerMetricsError::Status(_)
            | RunnerMetricsError::TooLarge => format!(
                "Could not read the runner manager's metrics ({self}); check that its \
                 `listen_address` is reachable from the bot."
            ),
            RunnerMetricsError::NoMachineStates => format!(
                "The runner metrics have no `{MACHINE_STATES}`: is `runner_metrics_url` the \
                 docker+machine runner manager?"
            ),
        }
    }
}

/// Fetches `<url>/metrics` from the runner manager (its `listen_address`).
#[derive(Clone)]
pub struct RunnerMetricsClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

// By hand: a metrics URL may carry basic-auth credentials, which must not reach the logs.
impl std::fmt::Debug for RunnerMetricsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match Url::parse(&self.url) {
            Ok(mut url) => {
                // Both only fail for URLs that cannot have credentials anyway.
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            Err(_) => "[unparsable]".to_owned(),
        };
        f.debug_struct("RunnerMetricsClient")
            .field("url", &url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RunnerMetricsClient {
    /// `url` is the runner's metrics address, with or without the `/metrics` path.
    pub fn new(url: &str, timeout: Duration) -> Self {
        let trimmed = url.trim_end_matches('/');
        let url = if trimmed.ends_with("/metrics") {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/metrics")
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("armbot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .build()
            // Only fails if the TLS backend cannot initialise.
            .unwrap_or_default();
        RunnerMetricsClient { http, url, timeout }
    }

    /// Fetch and parse. One retry on a transport error or 5xx: a scrape is cheap and a
    /// restarting runner is a common blip; more would delay the whole status report.
    pub async fn fetch(&self) -> Result<MachineStates, RunnerMetricsError> {
        let url = Url::parse(&self.url).map_err(|_| RunnerMetricsError::BadUrl)?;
        let mut last = RunnerMetricsError::Timeout;
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match self.fetch_once(url.clone()).await {
                Ok(text) => {
                    let states = parse_machine_states(&text);
                    return if states.seen {
                        Ok(states)
                    } else {
                        Err(RunnerMetricsError::NoMachineStates)
                    };
                }
                Err(e @ (RunnerMetricsError::Timeout | RunnerMetricsError::Network(_))) => last = e,
                Err(RunnerMetricsError::Status(s)) if s >= 500 => {
                    last = RunnerMetricsError::Status(s)
                }
                Err(e) => return Err(e),
            }
        }
        tracing::debug!(error = %last, "runner metrics unavailable");
        Err(last)
    }

    async fn fetch_once(&self, url: Url) -> Result<String, RunnerMetricsError> {
        let mut response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status() != StatusCode::OK {
            return Err(RunnerMetricsError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(RunnerMetricsError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

fn transport_error(e: reqwest::Error) -> RunnerMetricsError {
    if e.is_timeout() {
        RunnerMetricsError::Timeout
    } else {
        RunnerMetricsError::Network(e.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Shaped like a gitlab-runner 19.x scrape: HELP/TYPE lines, the const `executor` label
    /// after `state` in one series, extra labels, other metrics around it.
    const SCRAPE: &str = r#"# HELP gitlab_runner_autoscaling_machine_states The current number of machines per state in this provider.
# TYPE gitlab_runner_autoscaling_machine_states gauge
gitlab_runner_autoscaling_machine_states{executor="docker+machine",state="acquired"} 0
gitlab_runner_autoscaling_machine_states{executor="docker+machine",state="creating"} 2
gitlab_runner_autoscaling_machine_states{executor="docker+machine",state="idle"} 1
gitlab_runner_autoscaling_machine_states{executor="docker+machine",state="removing"} 4
gitlab_runner_autoscaling_machine_states{state="stuck-on-removing",executor="docker+machine"} 2
gitlab_runner_autoscaling_machine_states{executor="docker+machine",state="used"} 18
# HELP gitlab_runner_autoscaling_actions_total The total number of actions executed by the provider.
# TYPE gitlab_runner_autoscaling_actions_total counter
gitlab_runner_autoscaling_actions_total{action="created",executor="docker+machine"} 1234
# HELP gitlab_runner_limit The current value of concurrent setting
# TYPE gitlab_runner_limit gauge
gitlab_runner_limit{runner="qasr7s6xy",system_id="s_0123456789ab"} 30
# HELP gitlab_runner_concurrent The current value of concurrent setting
# TYPE gitlab_runner_concurrent gauge
gitlab_runner_concurrent 40
"#;

    #[test]
    fn parses_a_realistic_scrape() {
        let states = parse_machine_states(SCRAPE);
        assert_eq!(
            states,
            MachineStates {
                idle: 1,
                acquired: 0,
                creating: 2,
                used: 18,
                removing: 4,
                stuck_on_removing: 2,
                limit: Some(30),
                seen: true,
            }
        );
        assert_eq!(states.total(), 27);
        assert_eq!(states.not_working(), 6);
    }

    #[test]
    fn series_split_by_extra_labels_are_summed() {
        let text = "gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"used\",target=\"a\"} 3\n\
                    gitlab_runner_autoscaling_machine_states{executor=\"docker+machine\",state=\"used\",target=\"b\"} 4 1700000000000\n";
        assert_eq!(parse_machine_states(text).used, 7);
    }

    #[test]
    fn escaped_label_values_and_odd_spacing() {
        let text = r#"gitlab_runner_autoscaling_machine_states{ note = "say \"hi\" \\ {}," , state="idle" } 5"#;
        let sample = parse_sample(text).expect("parses");
        assert_eq!(sample.label("note"), Some(r#"say "hi" \ {},"#));
        assert_eq!(parse_machine_states(text).idle, 5);
    }

    #[test]
    fn limit_is_optional_and_zero_means_unlimited() {
        let states = "gitlab_runner_autoscaling_machine_states{state=\"idle\"} 1\n";
        assert_eq!(parse_machine_states(states).limit, None);
        let zero = format!(
            "{states}gitlab_runner_limit{{runner=\"a\"}} 10\ngitlab_runner_limit{{runner=\"b\"}} 0\n"
        );
        assert_eq!(parse_machine_states(&zero).limit, None);
        let two = format!(
            "{states}gitlab_runner_limit{{runner=\"a\"}} 10\ngitlab_runner_limit{{runner=\"b\"}} 5\n"
        );
        assert_eq!(parse_machine_states(&two).limit, Some(15));
    }

    #[test]
    fn absent_gauge_and_bad_values() {
        let states = parse_machine_states("# nothing here\ngo_goroutines 42\n");
        assert!(!states.seen);
        let text = "gitlab_runner_autoscaling_machine_states{state=\"idle\"} NaN\n\
                    gitlab_runner_autoscaling_machine_states{state=\"used\"} -3\n\
                    gitlab_runner_autoscaling_machine_states{state=\"creating\"} 2e0\n\
                    gitlab_runner_autoscaling_machine_states{state=\"removing\" 3\n";
        let states = parse_machine_states(text);
        assert_eq!((states.idle, states.used, states.creating), (0, 0, 2));
        assert_eq!(states.removing, 0);
    }

    #[test]
    fn debug_hides_url_credentials() {
        let client = RunnerMetricsClient::new("http://prom:hunter2@manager:9252", Duration::ZERO);
        let debug = format!("{client:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("manager:9252/metrics"));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse_machine_states(&text);
        }

        #[test]
        fn never_panics_on_near_valid_lines(
            labels in "[a-z=\",{}\\\\ ]{0,40}",
            value in "[0-9eE+.NaInf-]{0,8}",
        ) {
            let line = format!("gitlab_runner_autoscaling_machine_states{{{labels}}} {value}");
            let _ = parse_machine_states(&line);
        }
    }
}
