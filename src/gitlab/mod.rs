//! GitLab: webhook payload types and delivery authentication.
pub mod auth;
pub mod payload;

pub use payload::PipelineHook;
