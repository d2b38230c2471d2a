//! Test doubles and tools that drive a real `armbot` process from outside.
pub mod fake_slack;
