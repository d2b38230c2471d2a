//! Tools that drive a real `armbot` process from outside: load generation, payloads and
//! process control. The fake Slack and Scaleway they run against are `armbot-fakes`.
pub mod load;
pub mod payloads;
pub mod pg;
pub mod process;
pub mod slack;
