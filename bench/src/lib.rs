//! Test doubles and tools that drive a real `armbot` process from outside.
pub mod fake_scaleway;
pub mod fake_slack;
pub mod load;
pub mod payloads;
pub mod process;
