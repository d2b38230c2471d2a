//! GitLab: webhook payload types, delivery authentication and the webhook secrets; the REST
//! API client and the API settings; a Pipeline Hook document built from API answers.
pub mod api;
pub mod auth;
pub mod document;
pub mod payload;
pub mod settings;

pub use payload::PipelineHook;
pub use settings::{ApiNotConfigured, GitlabApiSettings, GitlabSecrets};

/// GitLab's own limit for a webhook body; `builds` lists every job.
pub const MAX_BODY: usize = 25 * 1024 * 1024;
