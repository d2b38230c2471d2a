//! Slack accounts found by email (`users.lookupByEmail`), for the "who broke it" reply. An
//! answer is remembered for a day either way (a miss too), so a person costs one call a day
//! at most; the webhook that asks waits a short, bounded time and goes on without an answer.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::api::{SlackClient, SlackError};
use crate::metrics::Metrics;

/// How long an answer (a Slack user or none) is trusted.
pub const USERS_TTL: Duration = Duration::from_secs(86_400);
/// How long a webhook waits for Slack before it posts without a mention.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// After Slack says the token lacks `users:read.email`, how long before asking again (the
/// scope may have been added since).
const NO_SCOPE_BACKOFF: Duration = Duration::from_secs(3600);
/// Emails remembered at most; the oldest answers go first beyond it.
const MAX_ENTRIES: usize = 10_000;

const METHOD: &str = "users.lookupByEmail";

/// Slack users by email, asked on demand and remembered a day.
pub struct SlackUsers {
    client: Option<SlackClient>,
    metrics: Metrics,
    ttl: Duration,
    timeout: Duration,
    /// Lowercased email → when asked, and the Slack user id if there is one.
    known: Mutex<HashMap<String, (Instant, Option<String>)>>,
    /// Set when Slack answered `missing_scope`: lookups wait until then.
    no_scope_until: Mutex<Option<Instant>>,
    /// The missing scope is logged once per process.
    no_scope_logged: AtomicBool,
    /// Signalled whenever an answer is remembered.
    answered: tokio::sync::Notify,
}

impl SlackUsers {
    /// `client` is `None` in console mode: nobody is then found.
    pub fn new(client: Option<SlackClient>, metrics: Metrics) -> Self {
        Self::with_limits(client, metrics, USERS_TTL, LOOKUP_TIMEOUT)
    }

    pub fn with_limits(
        client: Option<SlackClient>,
        metrics: Metrics,
        ttl: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            metrics,
            ttl,
            timeout,
            known: Mutex::new(HashMap::new()),
            no_scope_until: Mutex::new(None),
            no_scope_logged: AtomicBool::new(false),
            answered: tokio::sync::Notify::new(),
        }
    }

    /// The id of the Slack user with this email, if Slack knows one and answers in time.
    /// Never fails: when Slack cannot be asked, refuses, or is slow, the answer is `None`
    /// (logged), and a slow answer still fills the cache for the next time.
    pub async fn find(self: &Arc<Self>, email: &str) -> Option<String> {
        let key = email.trim().to_lowercase();
        if let Some(known) = self.cached(&key) {
            return known;
        }
        let client = self.client.clone()?;
        if self.scope_missing() {
            return None;
        }
        let this = Arc::clone(self);
        let ask = tokio::spawn(async move { this.ask(&client, key).await });
        match tokio::time::timeout(self.timeout, ask).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Slack user lookup stopped; naming the user without a mention");
                None
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "Slack did not answer {METHOD} in time; naming the user without a mention"
                );
                None
            }
        }
    }

    fn cached(&self, key: &str) -> Option<Option<String>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, id)| id.clone())
    }

    fn scope_missing(&self) -> bool {
        let until = self
            .no_scope_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    async fn ask(&self, client: &SlackClient, key: String) -> Option<String> {
        let result = client.lookup_by_email(&key).await;
        self.metrics.slack_call(
            METHOD,
            match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            },
        );
        match result {
            Ok(found) => {
                self.remember(key, found.clone());
                found
            }
            Err(SlackError::Permanent(m)) if m.ends_with(": missing_scope") => {
                *self
                    .no_scope_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + NO_SCOPE_BACKOFF);
                if !self.no_scope_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the Slack app lacks the optional users:read and users:read.email scopes: \
                         pipeline users are named without a mention unless [notify.users] maps \
                         them (add the scopes from manifest/slack-app.yaml to mention them)"
                    );
                }
                None
            }
            Err(e) => {
                // Slack's error code only: never the email or the token.
                tracing::warn!(error = %e, "Slack user lookup failed; naming the user without a mention");
                None
            }
        }
    }

    fn remember(&self, key: String, id: Option<String>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            known.retain(|_, (at, _)| at.elapsed() < ttl);
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
        }
        known.insert(key, (Instant::now(), id));
        drop(known);
        self.answered.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path, query_param},
    };

    fn users(server: &MockServer, ttl: Duration, timeout: Duration) -> Arc<SlackUsers> {
        let client = SlackClient::new(
            &server.uri(),
            "xoxb-unit-test".to_string().into(),
            Duration::from_secs(5),
        )
        .expect("client");
        Arc::new(SlackUsers::with_limits(
            Some(client),
            Metrics::new(),
            ttl,
            timeout,
        ))
    }

    async fn answer(server: &MockServer, email: &str, body: serde_json::Value, calls: u64) {
        Mock::given(method("GET"))
            .and(path("/users.lookupByEmail"))
            .and(query_param("email", email))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(calls)
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn a_found_user_is_remembered() {
        let server = MockServer::start().await;
        answer(
            &server,
            "jane@x.example",
            json!({"ok": true, "user": {"id": "U0JANE"}}),
            1,
        )
        .await;
        let u = users(&server, USERS_TTL, LOOKUP_TIMEOUT);
        assert_eq!(u.find("Jane@X.example").await.as_deref(), Some("U0JANE"));
        assert_eq!(u.find("jane@x.example").await.as_deref(), Some("U0JANE"));
    }

    #[tokio::test]
    async fn a_miss_is_remembered_for_the_ttl_then_asked_again() {
        let server = MockServer::start().await;
        answer(
            &server,
            "nobody@x.example",
            json!({"ok": false, "error": "users_not_found"}),
            1,
        )
        .await;
        let u = users(&server, USERS_TTL, LOOKUP_TIMEOUT);
        assert_eq!(u.find("nobody@x.example").await, None);
        assert_eq!(u.find("nobody@x.example").await, None);
        server.verify().await;

        let server = MockServer::start().await;
        answer(
            &server,
            "nobody@x.example",
            json!({"ok": false, "error": "users_not_found"}),
            2,
        )
        .await;
        let expired = users(&server, Duration::ZERO, LOOKUP_TIMEOUT);
        assert_eq!(expired.find("nobody@x.example").await, None);
        assert_eq!(expired.find("nobody@x.example").await, None);
    }

    #[tokio::test]
    async fn a_deactivated_account_is_not_mentioned() {
        let server = MockServer::start().await;
        answer(
            &server,
            "gone@x.example",
            json!({"ok": true, "user": {"id": "U0GONE", "deleted": true}}),
            1,
        )
        .await;
        let u = users(&server, USERS_TTL, LOOKUP_TIMEOUT);
        assert_eq!(u.find("gone@x.example").await, None);
    }

    #[tokio::test]
    async fn without_the_scope_lookups_stop_for_a_while() {
        let server = MockServer::start().await;
        answer(
            &server,
            "a@x.example",
            json!({"ok": false, "error": "missing_scope"}),
            1,
        )
        .await;
        let u = users(&server, USERS_TTL, LOOKUP_TIMEOUT);
        assert_eq!(u.find("a@x.example").await, None);
        assert!(u.no_scope_logged.load(Ordering::Relaxed));
        // Not cached as a miss, but not asked again either while the scope is missing.
        assert_eq!(u.find("a@x.example").await, None);
        assert_eq!(u.find("b@x.example").await, None);
    }

    #[tokio::test]
    async fn errors_are_not_remembered() {
        let server = MockServer::start().await;
        answer(
            &server,
            "a@x.example",
            json!({"ok": false, "error": "invalid_auth"}),
            2,
        )
        .await;
        let u = users(&server, USERS_TTL, LOOKUP_TIMEOUT);
        assert_eq!(u.find("a@x.example").await, None);
        assert_eq!(u.find("a@x.example").await, None);
    }

    #[tokio::test]
    async fn a_slow_answer_is_not_waited_for_but_still_remembered() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/users.lookupByEmail"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "user": {"id": "U0SLOW"}}))
                    .set_delay(Duration::from_secs(2)),
            )
            .expect(1)
            .mount(&server)
            .await;
        let u = users(&server, USERS_TTL, Duration::from_millis(20));
        let started = Instant::now();
        assert_eq!(u.find("slow@x.example").await, None);
        assert!(started.elapsed() < Duration::from_millis(1500));
        // The answer still lands in the cache when Slack sends it.
        let answered = u.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        if u.cached("slow@x.example").is_none() {
            let waited = tokio::time::timeout(Duration::from_secs(20), answered).await;
            assert!(waited.is_ok(), "the slow answer never arrived");
        }
        assert_eq!(
            u.cached("slow@x.example").flatten().as_deref(),
            Some("U0SLOW")
        );
        assert_eq!(u.find("slow@x.example").await.as_deref(), Some("U0SLOW"));
    }

    #[tokio::test]
    async fn console_mode_finds_nobody() {
        let u = Arc::new(SlackUsers::new(None, Metrics::new()));
        assert_eq!(u.find("a@x.example").await, None);
    }
}
