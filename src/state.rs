//! The service's shared state: settings, the store and its writers, and every client built
//! once at start-up, shared by the HTTP edge, the chat layer and the background tasks.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Settings,
    delivery::{Health, Ingestor, Outbox},
    faq::KnowledgeBase,
    fleet::{FleetContext, NotConfigured},
    gitlab::{ApiNotConfigured, api::GitlabClient},
    metrics::Metrics,
    notify::incident::BrokenRefs,
    reap::{Reaping, SlotReleaser},
    slack::{
        api::{Identity, SlackClient},
        transport::{Console, Transport},
        usergroups::{MEMBERS_TTL, Usergroups},
        users::SlackUsers,
    },
    store::Store,
    watch::Watcher,
};

/// Unix seconds; injectable so signature windows can be tested.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

/// How long one Slack Web API or `response_url` call may take.
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Cloned for every request, so one reference count rather than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub settings: Arc<Settings>,
    pub store: Store,
    /// Applies accepted webhooks (group commit).
    pub ingest: Ingestor,
    /// Every message the bot sends is queued here.
    pub outbox: Outbox,
    pub metrics: Metrics,
    pub clock: Clock,
    pub faq: KnowledgeBase,
    /// For `response_url` posts, which carry no token.
    pub http: reqwest::Client,
    /// `None` in console mode.
    pub slack: Option<SlackClient>,
    /// Scaleway (every call counted in the metrics) and the runner manager, or why the fleet
    /// commands cannot run.
    pub fleet: Result<FleetContext, NotConfigured>,
    /// The GitLab API for catch-up and the hook check, or what it lacks.
    pub gitlab_api: Result<GitlabClient, ApiNotConfigured>,
    /// Frees a reaped builder's runner slot, when `[reap] release_command` can.
    pub releaser: Option<SlotReleaser>,
    /// The bot's own ids from `auth.test`, to ignore its own messages.
    pub identity: OnceLock<Identity>,
    /// Members of `[reap] allowed_usergroup`, asked of Slack.
    pub usergroups: Usergroups,
    /// Whether the ingest writer and the delivery worker are alive and moving.
    pub health: Arc<Health>,
    /// Every task spawned for a command or a click, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Cancelled when the service stops: a running reap stops between servers.
    pub shutdown: CancellationToken,
    /// Pipeline users' Slack accounts found by email, for "who broke it".
    pub slack_users: Arc<SlackUsers>,
    /// Which refs this process last saw broken (only an opening failure asks for the user).
    pub broken_refs: BrokenRefs,
}

impl AppState {
    /// Builds the clients and starts the ingest writer; the caller starts the delivery worker
    /// (see [`crate::server`]).
    pub fn new(
        settings: Settings,
        store: Store,
        metrics: Metrics,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let faq = match &settings.faq.path {
            Some(p) => KnowledgeBase::load(p)
                .map_err(|e| anyhow::anyhow!("[faq] path {}: {e}", p.display()))?,
            None => KnowledgeBase::builtin(),
        };
        let http = reqwest::Client::builder()
            .timeout(SLACK_TIMEOUT)
            .user_agent(concat!("armbot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let slack = match &settings.slack.bot_token {
            Some(token) => Some(SlackClient::new(
                &settings.slack.api_url,
                token.clone(),
                SLACK_TIMEOUT,
            )?),
            None => None,
        };
        let fleet = FleetContext::new(
            &settings.fleet,
            &settings.scaleway,
            settings.scaleway_timeout,
        )
        .map(|ctx| ctx.with_metrics(metrics.clone()));
        let api = &settings.gitlab_api;
        let gitlab_api = match api.api() {
            Ok((url, token)) => {
                Ok(
                    GitlabClient::new(url, token.clone(), api.timeout, api.retry.clone())?
                        .with_metrics(metrics.clone()),
                )
            }
            Err(missing) => Err(missing),
        };
        let usergroups = Usergroups::new(slack.clone(), metrics.clone(), MEMBERS_TTL);
        let slack_users = Arc::new(SlackUsers::new(slack.clone(), metrics.clone()));
        let outbox = Outbox::new(store.clone());
        let health = Arc::new(Health::default());
        let ingest = Ingestor::spawn(store.clone(), outbox.clone(), health.clone(), &metrics)?;
        Ok(Self(Arc::new(Shared {
            releaser: SlotReleaser::from_settings(&settings.reap),
            settings: Arc::new(settings),
            store,
            ingest,
            outbox,
            metrics,
            clock,
            faq,
            http,
            slack,
            fleet,
            gitlab_api,
            identity: OnceLock::new(),
            usergroups,
            slack_users,
            broken_refs: BrokenRefs::default(),
            health,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })))
    }

    /// Runs `task` in the background, tracked (shutdown waits for it) and with a panic caught,
    /// logged and counted rather than lost.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(self.metrics.caught(name, task));
    }

    /// What a reap over `fleet` needs: `/arm reap`, its buttons and the fleet watch.
    pub fn reaping<'a>(&'a self, fleet: &'a FleetContext) -> Reaping<'a> {
        Reaping {
            store: &self.store,
            metrics: &self.metrics,
            fleet,
            releaser: self.releaser.as_ref(),
            settings: &self.settings.reap,
            halt: &self.shutdown,
        }
    }

    /// The fleet watch, when `[watch]` has it run (Scaleway and a channel configured).
    pub fn watcher(&self) -> Option<Watcher> {
        if !self.settings.watch.enabled {
            return None;
        }
        Some(Watcher {
            store: self.store.clone(),
            outbox: self.outbox.clone(),
            metrics: self.metrics.clone(),
            fleet: self.fleet.as_ref().ok()?.clone(),
            releaser: self.releaser.clone(),
            reap: self.settings.reap.clone(),
            settings: self.settings.watch.clone(),
            clock: self.clock.clone(),
            halt: self.shutdown.clone(),
        })
    }

    /// Where the delivery worker sends: Slack, or stdout in console mode.
    pub fn transport(&self) -> Transport {
        match &self.slack {
            Some(client) => Transport::Slack(client.clone()),
            None => Transport::Console(Console::stdout()),
        }
    }
}
