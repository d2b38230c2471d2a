//! The runner manager's Prometheus metrics: its machine states and its cap. (The
//! docker-machine store on the manager is read by `reap::machines`, its only user.)

pub mod metrics;

pub use metrics::{MachineStates, RunnerMetricsClient, RunnerMetricsError, parse_machine_states};
