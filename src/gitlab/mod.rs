//! GitLab: webhook payload types, delivery authentication and the webhook secrets; the REST
//! API client and the API settings; a Pipeline Hook document built from API answers.
pub mod api;
pub mod auth;
pub mod document;
pub mod payload;
pub mod settings;

pub use payload::PipelineHook;
pub use settings::{ApiNotConfigured, GitlabApiSettings, GitlabSecrets};
