//! Scaleway fleet: client, status report, reap planner and executor.

pub mod model;
pub mod scaleway;

pub use model::{Deleted, Ip, Quotum, QuotumLimit, Server, ServerState, Volume, VolumeType};
pub use scaleway::{QuotaExceededDetail, RetryPolicy, ScalewayClient, ScwError};
