//! Slack: Web API client, request verification, mrkdwn, delivery transport.
pub mod api;
pub mod mrkdwn;
pub mod transport;
pub mod verify;
