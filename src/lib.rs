//! armbot: Slack ChatOps for the ARM build fleet.
pub mod app;
pub mod commands;
pub mod config;
pub mod events;
pub mod faq;
pub mod fleet;
pub mod gitlab;
pub mod http;
pub mod ingest;
pub mod interactions;
pub mod metrics;
pub mod notify;
pub mod runner;
pub mod server;
pub mod slack;
pub mod store;
pub mod worker;
