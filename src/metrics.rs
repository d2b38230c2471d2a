//! Prometheus metrics, rendered in the text format at `GET /metrics`.

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Call {
    pub method: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Channel {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelReason {
    pub channel: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Command {
    pub command: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandName {
    pub command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Endpoint {
    pub endpoint: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlackEndpoint {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

/// Every metric the bot exports. One `Arc`: the HTTP layers clone it per request, and
/// cloning some thirty handles was 7 % of the CPU of an ignored webhook.
#[derive(Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

pub struct MetricSet {
    registry: Arc<Registry>,
    pub webhooks_received: Counter,
    pub webhooks_rejected: Family<Reason, Counter>,
    pub webhooks_ignored: Family<Reason, Counter>,
    pub webhooks_notified: Family<Reason, Counter>,
    pub slack_calls: Family<Call, Counter>,
    pub outbox_failed: Family<Reason, Counter>,
    pub outbox_pending: Family<Channel, Gauge>,
    pub outbox_oldest_age: Family<Channel, Gauge>,
    /// 1 for each channel whose messages wait for an operator, with Slack's reason.
    pub outbox_blocked: Family<ChannelReason, Gauge>,
    pub commands: Family<Command, Counter>,
    pub command_seconds: Family<CommandName, Histogram>,
    pub scaleway_calls: Family<Endpoint, Counter>,
    pub reaps: Family<Outcome, Counter>,
    pub servers_removed: Counter,
    pub slack_events: Family<Reason, Counter>,
    /// 1 while this replica delivers the outbox and runs the periodic jobs.
    pub leader: Gauge,
    /// Background tasks that panicked, by task.
    pub task_panics: Family<Reason, Counter>,
    pub http_connections_open: Gauge,
    pub http_connections_closed: Family<Reason, Counter>,
    pub http_requests_refused: Family<Reason, Counter>,
    /// Builders shut down past the grace period at the fleet watch's last look.
    pub fleet_stuck_builders: Gauge,
    pub watch_polls: Family<Outcome, Counter>,
    pub watch_incidents: Counter,
    pub gitlab_calls: Family<Endpoint, Counter>,
    /// Pipelines catch-up read from the GitLab API, by what became of them.
    pub catch_up_events: Family<Outcome, Counter>,
    /// Catch-up passes by how they ended.
    pub catch_up_passes: Family<Outcome, Counter>,
    /// Unix time of the last catch-up pass that read every watched project.
    pub catch_up_last_complete: Gauge,
    /// Watched projects whose webhook GitLab has disabled.
    pub hooks_disabled: Gauge,
    /// Slack requests from another workspace than the one served, by endpoint.
    pub slack_foreign_team: Family<SlackEndpoint, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `armbot_build_info`'s labels.
fn build_labels() -> Vec<(&'static str, &'static str)> {
    vec![
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("ARMBOT_REVISION").unwrap_or("unknown"),
        ),
    ]
}

fn label(s: &str) -> String {
    s.to_string()
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("armbot");
        r.register(
            "build",
            "The running build: armbot's version and the git revision it was built from \
             (ARMBOT_REVISION at build time, else unknown)",
            Info::new(build_labels()),
        );
        let webhooks_received = Counter::default();
        r.register(
            "webhooks_received",
            "GitLab webhook requests received",
            webhooks_received.clone(),
        );
        let webhooks_rejected = Family::<Reason, Counter>::default();
        r.register(
            "webhooks_rejected",
            "GitLab webhooks refused (auth, size, malformed)",
            webhooks_rejected.clone(),
        );
        let webhooks_ignored = Family::<Reason, Counter>::default();
        r.register(
            "webhooks_ignored",
            "GitLab webhooks accepted but not notified, by reason",
            webhooks_ignored.clone(),
        );
        let webhooks_notified = Family::<Reason, Counter>::default();
        r.register(
            "webhooks_notified",
            "GitLab webhooks that queued Slack messages, by reason",
            webhooks_notified.clone(),
        );
        let slack_calls = Family::<Call, Counter>::default();
        r.register(
            "slack_api_calls",
            "Slack Web API calls by method and outcome",
            slack_calls.clone(),
        );
        let outbox_failed = Family::<Reason, Counter>::default();
        r.register(
            "outbox_failed",
            "Messages given up on, by Slack error",
            outbox_failed.clone(),
        );
        let outbox_pending = Family::<Channel, Gauge>::default();
        r.register(
            "outbox_pending",
            "Undelivered messages per channel",
            outbox_pending.clone(),
        );
        let outbox_oldest_age = Family::<Channel, Gauge>::default();
        r.register_with_unit(
            "outbox_oldest_pending_age",
            "Age of the oldest undelivered message per channel",
            prometheus_client::registry::Unit::Seconds,
            outbox_oldest_age.clone(),
        );
        let outbox_blocked = Family::<ChannelReason, Gauge>::default();
        r.register(
            "outbox_blocked",
            "Channels whose messages wait for an operator (invite the bot, fix the token), by Slack's reason",
            outbox_blocked.clone(),
        );
        let commands = Family::<Command, Counter>::default();
        r.register(
            "commands",
            "Slash commands by name and outcome",
            commands.clone(),
        );
        let command_seconds = Family::<CommandName, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        r.register_with_unit(
            "command_duration",
            "Time from a slash command to its result",
            prometheus_client::registry::Unit::Seconds,
            command_seconds.clone(),
        );
        let scaleway_calls = Family::<Endpoint, Counter>::default();
        r.register(
            "scaleway_calls",
            "Scaleway API calls by endpoint and outcome",
            scaleway_calls.clone(),
        );
        let reaps = Family::<Outcome, Counter>::default();
        r.register("reaps", "Reap runs by outcome", reaps.clone());
        let servers_removed = Counter::default();
        r.register(
            "servers_removed",
            "Stuck servers removed by reap",
            servers_removed.clone(),
        );
        let slack_events = Family::<Reason, Counter>::default();
        r.register(
            "slack_events",
            "Slack events by what was done with them",
            slack_events.clone(),
        );
        let leader = Gauge::default();
        r.register(
            "leader",
            "1 while this replica delivers the outbox and runs the periodic jobs",
            leader.clone(),
        );
        let task_panics = Family::<Reason, Counter>::default();
        r.register(
            "task_panics",
            "Background tasks that panicked, by task (the panic is logged, never silently lost)",
            task_panics.clone(),
        );
        let http_connections_open = Gauge::default();
        r.register(
            "http_connections_open",
            "HTTP connections open now",
            http_connections_open.clone(),
        );
        let http_connections_closed = Family::<Reason, Counter>::default();
        r.register(
            "http_connections_closed",
            "HTTP connections closed by the bot rather than the client, by reason \
             (header_timeout, idle, evicted, overloaded, shutdown, error)",
            http_connections_closed.clone(),
        );
        let http_requests_refused = Family::<Reason, Counter>::default();
        r.register(
            "http_requests_refused",
            "Requests refused before their body was read or while reading it, by reason \
             (unauthorized, too_large, too_slow, busy)",
            http_requests_refused.clone(),
        );
        let fleet_stuck_builders = Gauge::default();
        r.register(
            "fleet_stuck_builders",
            "ARM builders shut down past the grace period, at the fleet watch's last look",
            fleet_stuck_builders.clone(),
        );
        let watch_polls = Family::<Outcome, Counter>::default();
        r.register(
            "watch_polls",
            "Fleet watch polls by outcome (ok, scaleway_error, store_error, conflict)",
            watch_polls.clone(),
        );
        let watch_incidents = Counter::default();
        r.register(
            "watch_incidents",
            "Fleet incidents the watch opened (stuck builders)",
            watch_incidents.clone(),
        );
        let gitlab_calls = Family::<Endpoint, Counter>::default();
        r.register(
            "gitlab_api_calls",
            "GitLab API calls by endpoint and outcome",
            gitlab_calls.clone(),
        );
        let catch_up_events = Family::<Outcome, Counter>::default();
        r.register(
            "catch_up_events",
            "Finished pipelines catch-up read from the GitLab API, by outcome (opened, still_failing, fixed: a missed notice sent)",
            catch_up_events.clone(),
        );
        let catch_up_passes = Family::<Outcome, Counter>::default();
        r.register(
            "catch_up_passes",
            "Catch-up passes by how they ended",
            catch_up_passes.clone(),
        );
        let catch_up_last_complete = Gauge::default();
        r.register(
            "catch_up_last_complete_timestamp",
            "Unix time of the last catch-up pass that read every watched project",
            catch_up_last_complete.clone(),
        );
        let hooks_disabled = Gauge::default();
        r.register(
            "gitlab_hooks_disabled",
            "Watched projects whose webhook to the bot GitLab has disabled",
            hooks_disabled.clone(),
        );
        let slack_foreign_team = Family::<SlackEndpoint, Counter>::default();
        r.register(
            "slack_foreign_team",
            "Slack requests from another workspace than the one served, answered 200 and \
             otherwise ignored, by endpoint (commands, interactions, events)",
            slack_foreign_team.clone(),
        );
        Self(Arc::new(MetricSet {
            registry: Arc::new(r),
            webhooks_received,
            webhooks_rejected,
            webhooks_ignored,
            webhooks_notified,
            slack_calls,
            outbox_failed,
            outbox_pending,
            outbox_oldest_age,
            outbox_blocked,
            commands,
            command_seconds,
            scaleway_calls,
            reaps,
            servers_removed,
            slack_events,
            leader,
            task_panics,
            http_connections_open,
            http_connections_closed,
            http_requests_refused,
            fleet_stuck_builders,
            watch_polls,
            watch_incidents,
            gitlab_calls,
            catch_up_events,
            catch_up_passes,
            catch_up_last_complete,
            hooks_disabled,
            slack_foreign_team,
        }))
    }

    pub fn connection_closed(&self, reason: &str) {
        Self::reason(&self.http_connections_closed, reason);
    }

    /// `task`, with a panic caught: logged with the task's name and counted in
    /// `armbot_task_panics_total{reason=task}` instead of vanishing with the task.
    pub fn caught<F>(&self, task: &'static str, fut: F) -> impl Future<Output = ()> + use<F>
    where
        F: Future<Output = ()>,
    {
        use futures::FutureExt;
        let panics = self.task_panics.clone();
        async move {
            if let Err(panic) = std::panic::AssertUnwindSafe(fut).catch_unwind().await {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(task, panic = %what, "a background task panicked");
                Self::reason(&panics, task);
            }
        }
    }

    pub fn gitlab_call(&self, endpoint: &str, outcome: &str) {
        self.gitlab_calls
            .get_or_create(&Endpoint {
                endpoint: label(endpoint),
                outcome: label(outcome),
            })
            .inc();
    }

    pub fn outcome(family: &Family<Outcome, Counter>, outcome: &str) {
        family
            .get_or_create(&Outcome {
                outcome: label(outcome),
            })
            .inc();
    }

    pub fn reason(family: &Family<Reason, Counter>, reason: &str) {
        family
            .get_or_create(&Reason {
                reason: label(reason),
            })
            .inc();
    }

    /// A reap that ended: `ok`, `partial` or `cancelled`.
    pub fn reap(&self, outcome: &str) {
        self.reaps
            .get_or_create(&Outcome {
                outcome: label(outcome),
            })
            .inc();
    }

    /// A fleet watch poll that ended: see `watch_polls`.
    pub fn watch_poll(&self, outcome: &str) {
        self.watch_polls
            .get_or_create(&Outcome {
                outcome: label(outcome),
            })
            .inc();
    }

    pub fn slack_call(&self, method: &str, outcome: &str) {
        self.slack_calls
            .get_or_create(&Call {
                method: label(method),
                outcome: label(outcome),
            })
            .inc();
    }

    pub fn command(&self, command: &str, outcome: &str, seconds: f64) {
        self.commands
            .get_or_create(&Command {
                command: label(command),
                outcome: label(outcome),
            })
            .inc();
        self.command_seconds
            .get_or_create(&CommandName {
                command: label(command),
            })
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
