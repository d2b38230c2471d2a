//! The Scaleway fleet: the API client, which servers are the ARM builders (settings and the
//! membership rule shared with reap), and the `/arm status` report.

pub mod model;
pub mod scaleway;
pub mod scw_config;
pub mod settings;
pub mod status;

pub use model::{
    Deleted, Ip, Quotum, QuotumLimit, Server, ServerState, Volume, VolumeType, short_name,
};
pub use scaleway::{Operation, QuotaExceededDetail, RetryPolicy, ScalewayClient, ScwError};
pub use settings::{FleetContext, FleetSettings, NotConfigured, ScalewayEnv, missing_settings};
pub use status::{StatusReport, gather_status, list_zones};

pub(crate) use crate::slack::mrkdwn::escape;
