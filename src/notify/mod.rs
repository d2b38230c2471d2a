//! Failure notices, pure: which pipelines notify, incident transitions, the pipeline event the
//! ingest writer applies, rendering (with who broke it), and the `[notify]` settings. The delivery layer applies
//! them to the store and sends what they render.
pub mod event;
pub mod incident;
pub mod mention;
pub mod policy;
pub mod preview;
pub mod render;
pub mod settings;

pub use settings::NotifySettings;
