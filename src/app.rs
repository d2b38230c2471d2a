//! Shared state and the router, used by `main` and by the tests alike.

use std::sync::{Arc, OnceLock};

use axum::Router;
use tokio::sync::Notify;

use crate::{
    config::Settings,
    faq::KnowledgeBase,
    http,
    ingest::Ingestor,
    metrics::Metrics,
    slack::{
        api::{Identity, SlackClient},
        usergroups::{MEMBERS_TTL, Usergroups},
    },
    store::Store,
};

/// Unix seconds; injectable so signature windows can be tested.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

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
    pub ingest: Ingestor,
    pub metrics: Metrics,
    /// Wakes the delivery worker when something was queued.
    pub wake: Arc<Notify>,
    pub clock: Clock,
    pub faq: Arc<KnowledgeBase>,
    /// For `response_url` posts, which carry no token.
    pub http: reqwest::Client,
    /// The bot's own ids from `auth.test`, to ignore its own messages.
    pub identity: Arc<OnceLock<Identity>>,
    /// One reap at a time across the bot.
    pub reap_lock: Arc<tokio::sync::Mutex<()>>,
    /// Members of `[reap] allowed_usergroup`, asked of Slack.
    pub usergroups: Arc<Usergroups>,
}

impl AppState {
    /// Wires the state; the caller starts the delivery worker with `wake`.
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
            .timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("armbot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let slack = match &settings.slack.bot_token {
            Some(token) => Some(SlackClient::new(
                &settings.slack.api_url,
                token.clone(),
                std::time::Duration::from_secs(10),
            )?),
            None => None,
        };
        let usergroups = Usergroups::new(slack, metrics.clone(), MEMBERS_TTL);
        let settings = Arc::new(settings);
        let wake = Arc::new(Notify::new());
        let ingest = Ingestor::spawn(store.clone(), wake.clone());
        Ok(Self(Arc::new(Shared {
            settings,
            store,
            ingest,
            metrics,
            wake,
            clock,
            faq: Arc::new(faq),
            http,
            identity: Arc::new(OnceLock::new()),
            reap_lock: Arc::new(tokio::sync::Mutex::new(())),
            usergroups: Arc::new(usergroups),
        })))
    }
}

pub fn build_app(state: AppState) -> Router {
    http::router(state)
}
