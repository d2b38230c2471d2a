//! Scaleway fleet: client, status report, reap planner and executor.

pub mod model;
pub mod scaleway;
pub mod settings;
pub mod status;

pub use model::{Deleted, Ip, Quotum, QuotumLimit, Server, ServerState, Volume, VolumeType};
pub use scaleway::{QuotaExceededDetail, RetryPolicy, ScalewayClient, ScwError};
pub use settings::{FleetContext, FleetSettings, ScalewayEnv, missing_settings};
pub use status::{StatusReport, gather_status};

/// Escape the three characters Slack mrkdwn treats as control characters, in anything that
/// came from Scaleway or the settings. Local until the crate's `slack::escape` lands.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
