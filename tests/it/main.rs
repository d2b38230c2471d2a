//! The integration tests, one binary linked once: the app in-process against the shared fakes
//! of Slack and Scaleway (`armbot-fakes`), the `armbot` binary, and the pure parts end to end.
//! One module per area; `common` is the harness they share.

mod common;

mod architecture;
mod binary;
mod blocked;
mod catch_up;
mod click_replay;
mod faq_kb;
mod faq_matching;
mod faq_messages;
mod fleet_membership;
mod fleet_runner_metrics;
mod fleet_scaleway;
mod fleet_status;
mod hostile;
mod ingest_batch;
mod lifecycle;
mod manifest;
mod notify_props;
mod notify_real_traffic;
mod notify_who_broke_it;
mod ops;
mod outbox;
mod reap_execute;
mod reap_flow;
mod reap_plan;
mod reap_render;
mod render_cli;
mod replicas;
mod scw_config;
mod single_workspace;
mod slack;
mod slack_payloads;
mod status_command;
mod thread;
mod tls;
mod watch;
mod webhook;
