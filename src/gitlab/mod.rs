//! GitLab: webhook payload types, delivery authentication and the webhook secrets.
pub mod auth;
pub mod payload;
pub mod settings;

pub use payload::PipelineHook;
pub use settings::GitlabSecrets;

/// GitLab's own limit for a webhook body; `builds` lists every job.
pub const MAX_BODY: usize = 25 * 1024 * 1024;
