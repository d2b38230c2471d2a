//! armbot: Slack ChatOps for the ARM build fleet.
pub mod faq;
pub mod fleet;
pub mod reap;
pub mod runner;
