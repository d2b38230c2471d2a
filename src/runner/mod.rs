//! Runner manager: runner metrics and the docker-machine store.

pub mod metrics;

pub use metrics::{MachineStates, RunnerMetricsClient, RunnerMetricsError, parse_machine_states};
