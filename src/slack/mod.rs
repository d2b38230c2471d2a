//! Slack: Web API client, request verification, mrkdwn, delivery transport, user groups.
pub mod api;
pub mod mrkdwn;
pub mod transport;
pub mod usergroups;
pub mod verify;
