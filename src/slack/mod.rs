//! Slack: the Web API client, request verification, typed request payloads and replies,
//! Block Kit and mrkdwn, the delivery transport, user groups, users found by email, and the
//! `[slack]` settings.
pub mod api;
pub mod blocks;
pub mod mrkdwn;
pub mod payload;
pub mod reply;
pub mod settings;
pub mod transport;
pub mod usergroups;
pub mod users;
pub mod verify;

pub use blocks::Message;
pub use reply::Reply;
