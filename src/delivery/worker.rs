//! Outbox delivery: one worker sends every queued Slack call, in order per
//! channel, paced, with retries, and without posting anything twice.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::sync::{Notify, watch};

use super::liveness::Health;
use crate::{
    metrics::Metrics,
    slack::{
        Message,
        api::{Posted, SlackError},
        transport::Transport,
    },
    store::{OutboxKind, OutboxRow, Store, now_ms, outbox::RootRef},
};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Minimum gap between two calls to one channel (Slack: about 1/s).
    pub min_interval: Duration,
    /// First retry delay; doubles each attempt, with jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts before a transient failure is given up on.
    pub max_attempts: i64,
    /// How long a message may wait for an operator to fix its channel (invite the bot, fix
    /// the token) before it is given up: the store's retention.
    pub blocked_for_at_most: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(1),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 15,
            blocked_for_at_most: Duration::from_secs(14 * 86_400),
        }
    }
}

/// Retries of a blocked channel: from half a minute, growing with the wait, to five minutes.
const BLOCKED_RETRY_MIN: Duration = Duration::from_secs(30);
const BLOCKED_RETRY_MAX: Duration = Duration::from_secs(300);
/// The `last_error` prefix that marks a row waiting for an operator.
pub const BLOCKED: &str = "blocked: ";

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tick {
    /// Calls made (successful or not).
    pub calls: usize,
    /// When the next row is due, if any row is waiting.
    pub next_due: Option<Duration>,
}

pub struct Worker {
    store: Store,
    transport: Transport,
    config: WorkerConfig,
    metrics: Metrics,
    last_call: HashMap<String, Instant>,
    /// After a 429 Slack blocks the method workspace-wide: nothing before this.
    paused_until: Option<Instant>,
    /// Channels waiting for an operator, with Slack's code: each is logged once.
    blocked: HashMap<String, String>,
    /// Where the worker says it is alive and moving, when something watches.
    health: Option<Arc<Health>>,
}

impl Worker {
    pub fn new(store: Store, transport: Transport, config: WorkerConfig, metrics: Metrics) -> Self {
        Self {
            store,
            transport,
            config,
            metrics,
            last_call: HashMap::new(),
            paused_until: None,
            blocked: HashMap::new(),
            health: None,
        }
    }

    /// Reports liveness to `health.worker` while running.
    pub fn watched(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    /// Runs until `shutdown` turns true; a call in progress is finished first.
    pub async fn run(mut self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let health = self.health.clone();
        let _alive = health.as_ref().map(|h| h.worker.alive());
        loop {
            if *shutdown.borrow() {
                return;
            }
            let busy = health.as_ref().map(|h| h.worker.busy());
            let tick = self.tick(&shutdown).await;
            drop(busy);
            let tick = match tick {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "outbox pass failed; retrying");
                    Tick {
                        calls: 0,
                        next_due: Some(Duration::from_secs(1)),
                    }
                }
            };
            if tick.calls > 0 && tick.next_due == Some(Duration::ZERO) {
                continue;
            }
            let wait = tick.next_due.unwrap_or(Duration::from_secs(60));
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass: at most one call per channel whose head row is due.
    pub async fn tick(&mut self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<Tick> {
        let mut tick = Tick::default();
        let heads = self.store.outbox_heads().await?;
        let now = Instant::now();
        let now_wall = now_ms();
        for row in heads {
            if *shutdown.borrow() {
                break;
            }
            let mut wait = Duration::from_millis((row.next_attempt_at - now_wall).max(0) as u64);
            if let Some(p) = self.paused_until {
                wait = wait.max(p.saturating_duration_since(now));
            }
            if let Some(last) = self.last_call.get(&row.channel) {
                wait = wait.max((*last + self.config.min_interval).saturating_duration_since(now));
            }
            if !wait.is_zero() {
                tick.next_due = Some(tick.next_due.map_or(wait, |d| d.min(wait)));
                continue;
            }
            tick.calls += 1;
            self.deliver(row).await?;
            // The channel's next row may be due right after the pacing gap.
            let gap = self.config.min_interval;
            tick.next_due = Some(tick.next_due.map_or(gap, |d| d.min(gap)));
        }
        Ok(tick)
    }

    async fn deliver(&mut self, row: OutboxRow) -> anyhow::Result<()> {
        // A row left "attempting" by a crash may already be in Slack: look first.
        if row.state == "attempting" && row.kind != OutboxKind::Update {
            match self.reconcile(&row).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return self.failed_call(&row, "reconcile", e).await,
            }
        }
        let target = match self.target(&row).await? {
            Target::Ready(t) => t,
            Target::Wait => {
                self.store
                    .outbox_retry(
                        row.id,
                        now_ms() + 1000,
                        "waiting for the thread's root message",
                        false,
                        false,
                    )
                    .await?;
                return Ok(());
            }
            Target::Never(why) => {
                tracing::error!(outbox_id = row.id, channel = %row.channel, kind = ?row.kind, why, "message dropped");
                Metrics::reason(&self.metrics.outbox_failed, "root_not_posted");
                self.store.outbox_failed(row.id, why, now_ms()).await?;
                return Ok(());
            }
        };
        self.store.outbox_attempting(row.id, now_ms()).await?;
        self.last_call.insert(row.channel.clone(), Instant::now());
        let (method, mut result) = self.send(&row, &target, &row.message).await;
        // Slack refuses the whole message for one bad block: say it in plain text instead.
        if let Err(SlackError::Permanent(msg)) = &result
            && refused_blocks(msg)
            && !row.message.blocks.is_empty()
        {
            self.metrics.slack_call(method, "invalid_blocks");
            tracing::warn!(
                outbox_id = row.id,
                channel = %row.channel,
                error = %msg,
                "Slack refused the message's blocks; sending it as plain text"
            );
            result = self.send(&row, &target, &row.message.text_only()).await.1;
        }
        match result {
            Ok(posted) => {
                self.metrics.slack_call(method, "ok");
                if let Some(code) = self.blocked.remove(&row.channel) {
                    tracing::info!(channel = %row.channel, was = %code, "channel unblocked; delivering what waited");
                }
                self.store
                    .outbox_delivered(&row, &posted.channel, &posted.ts, now_ms())
                    .await
            }
            Err(e) => self.failed_call(&row, method, e).await,
        }
    }

    /// One Slack call for the row: a post (or thread reply), or an update of its target.
    async fn send(
        &self,
        row: &OutboxRow,
        target: &Dest,
        message: &Message,
    ) -> (&'static str, Result<Posted, SlackError>) {
        match row.kind {
            OutboxKind::Post | OutboxKind::Reply => (
                "chat.postMessage",
                self.transport
                    .post(&target.channel, target.ts.as_deref(), message, Some(row.id))
                    .await,
            ),
            OutboxKind::Update => {
                let ts = target.ts.clone().unwrap_or_default();
                let r = self.transport.update(&target.channel, &ts, message).await;
                (
                    "chat.update",
                    r.map(|()| Posted {
                        channel: target.channel.clone(),
                        ts,
                    }),
                )
            }
        }
    }

    /// True when the row turned out to be delivered already.
    async fn reconcile(&mut self, row: &OutboxRow) -> Result<bool, SlackError> {
        let target = match self.target(row).await {
            Ok(Target::Ready(t)) => t,
            _ => return Ok(false),
        };
        let started = row.attempt_started_at.unwrap_or(row.created_at);
        // A minute of margin for clock skew between us and Slack.
        let oldest = format!("{}.000000", started / 1000 - 60);
        let thread = if row.kind == OutboxKind::Reply {
            target.ts.as_deref()
        } else {
            None
        };
        let found = self
            .transport
            .find_outbox_message(&target.channel, thread, &oldest, row.id)
            .await;
        self.metrics.slack_call(
            if thread.is_some() {
                "conversations.replies"
            } else {
                "conversations.history"
            },
            found.as_ref().map_or_else(SlackError::outcome, |_| "ok"),
        );
        match found? {
            Some(posted) => {
                tracing::info!(
                    outbox_id = row.id,
                    "message found in Slack after a restart; not posting it again"
                );
                self.store
                    .outbox_delivered(row, &posted.channel, &posted.ts, now_ms())
                    .await
                    .map_err(|e| SlackError::Transient(format!("store: {e:#}")))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn failed_call(
        &mut self,
        row: &OutboxRow,
        method: &str,
        e: SlackError,
    ) -> anyhow::Result<()> {
        self.metrics.slack_call(method, e.outcome());
        let now = now_ms();
        match e {
            SlackError::RateLimited(d) => {
                self.paused_until = Some(Instant::now() + d);
                tracing::warn!(
                    outbox_id = row.id,
                    retry_after_s = d.as_secs(),
                    "Slack rate limit"
                );
                // A 429 on the lookup leaves the row in doubt; on a post it was not sent.
                let in_doubt = method == "reconcile";
                self.store
                    .outbox_retry(
                        row.id,
                        now + d.as_millis() as i64,
                        "rate limited",
                        in_doubt,
                        false,
                    )
                    .await
            }
            SlackError::Transient(msg) if row.attempts + 1 < self.config.max_attempts => {
                let delay = self.backoff(row.attempts);
                tracing::warn!(outbox_id = row.id, attempt = row.attempts + 1, error = %msg, "Slack call failed; will retry");
                // The call may have reached Slack: the next try checks Slack first.
                let in_doubt = row.kind != OutboxKind::Update;
                // A failed look-up counts as an attempt too, so it cannot loop forever.
                let count = method == "reconcile";
                self.store
                    .outbox_retry(
                        row.id,
                        now + delay.as_millis() as i64,
                        &msg,
                        in_doubt,
                        count,
                    )
                    .await
            }
            ref blocked if blocked.needs_operator() && !self.waited_too_long(row, now) => {
                let code = blocked.code().unwrap_or_default().to_string();
                if self.blocked.get(&row.channel) != Some(&code) {
                    tracing::error!(
                        channel = %row.channel,
                        code = %code,
                        "Slack refuses this channel until an operator acts (invite the bot to it, \
                         or fix the token or its scopes); its messages wait, in order, and are \
                         retried every few minutes"
                    );
                    self.blocked.insert(row.channel.clone(), code);
                }
                let waited = Duration::from_millis((now - row.created_at).max(0) as u64);
                let delay = waited.clamp(BLOCKED_RETRY_MIN, BLOCKED_RETRY_MAX);
                // A failed look-up may hide a post that landed: the row stays in doubt.
                let in_doubt = method == "reconcile";
                self.store
                    .outbox_retry(
                        row.id,
                        now + delay.as_millis() as i64,
                        &format!("{BLOCKED}{blocked}"),
                        in_doubt,
                        false,
                    )
                    .await
            }
            SlackError::Transient(msg) | SlackError::Permanent(msg) => {
                tracing::error!(
                    outbox_id = row.id,
                    channel = %row.channel,
                    kind = ?row.kind,
                    incident = ?row.incident_id,
                    error = %msg,
                    "giving up on a Slack message"
                );
                let code = msg.rsplit(": ").next().unwrap_or("unknown").to_string();
                Metrics::reason(&self.metrics.outbox_failed, &code);
                self.store.outbox_failed(row.id, &msg, now).await
            }
        }
    }

    /// A blocked row older than the retention period is given up on, like any old row.
    fn waited_too_long(&self, row: &OutboxRow, now: i64) -> bool {
        now - row.created_at > self.config.blocked_for_at_most.as_millis() as i64
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = self
            .config
            .base_backoff
            .saturating_mul(1u32 << attempts.clamp(0, 20) as u32);
        let capped = exp.min(self.config.max_backoff);
        // ±25% jitter so many retries do not land at once.
        let factor = rand::rng().random_range(0.75..1.25);
        capped.mul_f64(factor)
    }

    async fn target(&self, row: &OutboxRow) -> anyhow::Result<Target> {
        if row.kind == OutboxKind::Post {
            return Ok(Target::Ready(Dest {
                channel: row.channel.clone(),
                ts: None,
            }));
        }
        if let Some(incident) = row.incident_id {
            return Ok(match self.store.incident_root(incident).await? {
                RootRef::Posted { channel, ts } => Target::Ready(Dest {
                    channel,
                    ts: Some(ts),
                }),
                RootRef::Pending => Target::Wait,
                RootRef::Failed => Target::Never("the thread's root message was never posted"),
            });
        }
        if let Some(target) = row.target_id {
            return Ok(match self.store.posted_by(target).await? {
                RootRef::Posted { channel, ts } => Target::Ready(Dest {
                    channel,
                    ts: Some(ts),
                }),
                RootRef::Pending => Target::Wait,
                RootRef::Failed => Target::Never("the message it answers was never posted"),
            });
        }
        Ok(match &row.target_ts {
            Some(ts) => Target::Ready(Dest {
                channel: row.channel.clone(),
                ts: Some(ts.clone()),
            }),
            None => Target::Never("a reply or update without a target message"),
        })
    }
}

/// Slack's answers for a message whose blocks it will not take, whatever the retry.
fn refused_blocks(error: &str) -> bool {
    let code = error.rsplit(": ").next().unwrap_or_default();
    matches!(
        code,
        "invalid_blocks" | "invalid_blocks_format" | "msg_blocks_too_long"
    )
}

struct Dest {
    channel: String,
    ts: Option<String>,
}

enum Target {
    Ready(Dest),
    Wait,
    Never(&'static str),
}
