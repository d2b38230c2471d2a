//! armbot: Slack ChatOps for the ARM build fleet.
pub mod config;
pub mod faq;
pub mod fleet;
pub mod gitlab;
pub mod notify;
pub mod runner;
pub mod slack;
pub mod store;
pub mod metrics;
pub mod worker;
pub mod app;
pub mod http;
pub mod ingest;
pub mod server;
