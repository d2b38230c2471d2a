//! GitLab: webhook payload types, delivery authentication and the webhook secrets.
pub mod auth;
pub mod payload;
pub mod settings;

pub use payload::PipelineHook;
pub use settings::GitlabSecrets;
