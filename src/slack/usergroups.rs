//! Slack user group membership, cached briefly: a burst of button clicks makes one
//! `usergroups.users.list` call, and a change to the group shows within a minute.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tokio::{sync::Mutex, time::Instant};

use super::{
    api::{SlackClient, SlackError},
    mrkdwn::escape,
};
use crate::metrics::Metrics;

/// How long a group's member list is trusted.
pub const MEMBERS_TTL: Duration = Duration::from_secs(60);

const METHOD: &str = "usergroups.users.list";

/// Why membership could not be checked. Carries no token: only Slack's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("no SLACK_BOT_TOKEN to ask Slack with")]
    NoToken,
    #[error(transparent)]
    Slack(#[from] SlackError),
}

impl MembershipError {
    /// Why, and what to do, for the person who clicked (mrkdwn): who to ask, not which setting.
    pub fn user_reason(&self, group: &str) -> String {
        let group = escape(group);
        match self {
            Self::NoToken => "the bot has no Slack token to ask Slack with; ask an admin".into(),
            Self::Slack(SlackError::Permanent(m)) if m.ends_with(": missing_scope") => {
                "the Slack app lacks the `usergroups:read` scope; ask an admin to reinstall it \
                 from `manifest/slack-app.yaml`"
                    .into()
            }
            Self::Slack(SlackError::Permanent(m)) if m.ends_with(": no_such_subteam") => format!(
                "Slack knows no user group `{group}`; ask an admin to give the bot the group's \
                 id (S…), not its handle"
            ),
            Self::Slack(SlackError::Permanent(m)) if m.ends_with(": plan_upgrade_required") => {
                "this Slack workspace's plan has no user groups; ask an admin to allow you by \
                 name"
                    .into()
            }
            Self::Slack(SlackError::Permanent(m)) => {
                format!("Slack answered `{}`; ask an admin", escape(m))
            }
            Self::Slack(SlackError::RateLimited(_) | SlackError::Transient(_)) => {
                "Slack did not answer in time; try again in a minute, or ask an admin if it \
                 keeps happening"
                    .into()
            }
        }
    }
}

/// Member lists of Slack user groups, fetched on demand and kept for a while.
pub struct Usergroups {
    client: Option<SlackClient>,
    metrics: Metrics,
    ttl: Duration,
    /// Held across the fetch, so clicks arriving together wait for one answer.
    members: Mutex<HashMap<String, Fetched>>,
}

struct Fetched {
    at: Instant,
    users: HashSet<String>,
}

impl Usergroups {
    /// `client` is `None` in console mode: every check then fails with [`MembershipError::NoToken`].
    pub fn new(client: Option<SlackClient>, metrics: Metrics, ttl: Duration) -> Self {
        Self {
            client,
            metrics,
            ttl,
            members: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user` is in `group`. A failed lookup is not cached: the next click asks again.
    pub async fn contains(&self, group: &str, user: &str) -> Result<bool, MembershipError> {
        let mut members = self.members.lock().await;
        if let Some(fetched) = members.get(group)
            && fetched.at.elapsed() < self.ttl
        {
            return Ok(fetched.users.contains(user));
        }
        let client = self.client.as_ref().ok_or(MembershipError::NoToken)?;
        let result = client.usergroup_members(group).await;
        self.metrics.slack_call(
            METHOD,
            match &result {
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            },
        );
        let users: HashSet<String> = result?.into_iter().collect();
        let member = users.contains(user);
        members.insert(
            group.to_string(),
            Fetched {
                at: Instant::now(),
                users,
            },
        );
        Ok(member)
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

    async fn slack(body: serde_json::Value, calls: u64) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/usergroups.users.list"))
            .and(query_param("usergroup", "S0ARM"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(calls)
            .mount(&server)
            .await;
        server
    }

    fn groups(server: &MockServer, ttl: Duration) -> Usergroups {
        let client = SlackClient::new(
            &server.uri(),
            "xoxb-unit-test".to_string().into(),
            Duration::from_secs(5),
        )
        .expect("client");
        Usergroups::new(Some(client), Metrics::new(), ttl)
    }

    #[tokio::test]
    async fn members_are_cached_for_the_ttl() {
        let server = slack(json!({"ok": true, "users": ["U1", "U2"]}), 1).await;
        let g = groups(&server, MEMBERS_TTL);
        assert_eq!(g.contains("S0ARM", "U2").await, Ok(true));
        assert_eq!(g.contains("S0ARM", "U3").await, Ok(false));
    }

    #[tokio::test]
    async fn an_expired_list_is_fetched_again() {
        let server = slack(json!({"ok": true, "users": ["U1"]}), 2).await;
        let g = groups(&server, Duration::ZERO);
        assert_eq!(g.contains("S0ARM", "U1").await, Ok(true));
        assert_eq!(g.contains("S0ARM", "U1").await, Ok(true));
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_say_what_to_do() {
        let server = slack(json!({"ok": false, "error": "missing_scope"}), 2).await;
        let g = groups(&server, MEMBERS_TTL);
        let err = g.contains("S0ARM", "U1").await.expect_err("refused");
        assert!(err.user_reason("S0ARM").contains("`usergroups:read`"));
        assert!(g.contains("S0ARM", "U1").await.is_err());
    }

    #[test]
    fn reasons_name_the_fix_and_never_the_token() {
        let e = |code: &str| {
            MembershipError::Slack(SlackError::Permanent(format!("{METHOD}: {code}")))
                .user_reason("S0<ARM>")
        };
        assert!(e("no_such_subteam").contains("`S0&lt;ARM&gt;`"));
        assert!(e("plan_upgrade_required").contains("allow you by name"));
        assert!(e("invalid_auth").contains("`usergroups.users.list: invalid_auth`"));
        let transient =
            MembershipError::Slack(SlackError::Transient("x".into())).user_reason("S0ARM");
        assert!(transient.contains("try again"));
        assert!(
            MembershipError::NoToken
                .user_reason("S0ARM")
                .contains("no Slack token")
        );
    }
}
