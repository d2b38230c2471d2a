//! armbot: Slack ChatOps for the ARM build fleet.
//!
//! The library is the service; its public surface is what `main.rs`, the integration tests
//! and the benchmarks need. The HTTP edge (`http`) and the chat layer (`chat`) are reached
//! only through [`build_app`].
//!
//! Layers, each depending only on those below it: `server` / `http` → `leader` → `chat` /
//! `catch_up` / `watch` → `intake` → `state` → `config` / `check_config` → `delivery` →
//! `store`, and the areas `notify`, `fleet`, `reap`, `faq`, `gitlab`, `slack`, `runner`,
//! `metrics`.
pub mod catch_up;
mod chat;
pub mod check_config;
pub mod config;
pub mod delivery;
pub mod faq;
pub mod fleet;
pub mod gitlab;
mod http;
mod intake;
mod leader;
pub mod metrics;
pub mod notify;
pub mod reap;
pub mod retry;
pub mod runner;
pub mod server;
pub mod slack;
pub mod state;
pub mod store;
pub mod watch;

pub use http::router as build_app;
