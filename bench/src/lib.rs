//! Tools that drive a real `armbot` process from outside: load generation, payloads, hostile
//! clients and process control. The fake Slack and Scaleway they run against are
//! `armbot-fakes`.
pub mod hostile;
pub mod load;
pub mod payloads;
pub mod pg;
pub mod process;
pub mod slack;
