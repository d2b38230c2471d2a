//! `/arm reap`: remove ARM builders stuck shut down, and free the runner slots they hold.
//!
//! [`plan()`] is pure (servers in, a [`Plan`] out); [`execute()`] carries out a confirmed
//! plan against Scaleway and the runner manager; [`mod@render`] turns both into Slack
//! messages. Storing plans, checking who may confirm and posting messages belong to the chat
//! layer (`chat::reap`) and the fleet watch, through the steps they share in [`mod@run`].

pub mod click;
pub mod execute;
pub mod machines;
pub mod plan;
pub mod render;
pub mod run;
pub mod settings;

pub use click::{ClickOutcome, Unclaimed};
pub use execute::{
    ReapCounts, ReapReport, ResourceKind, ResourceOutcome, ResourceResult, ServerOutcome,
    ServerResult, SlotOutcome, execute,
};
pub use machines::{MachineIndex, MachineStoreError, ReleaseError, SlotReleaser};
pub use plan::{
    Assessment, Plan, PlanContext, PlannedRemoval, PlannedVolume, Skipped, assess, plan,
};
pub use render::{
    CANCEL_ACTION_ID, CONFIRM_ACTION_ID, auto_report_blocks, cancelled_blocks, click_reply,
    group_unchecked, interrupted_text, plan_blocks, plan_text, refusal, report_blocks,
    report_message, summary_text,
};
pub use run::Reaping;
pub use settings::ReapSettings;

/// "1 volume", "2 volumes".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A number of minutes (a setting) in the one duration format.
pub(crate) fn minutes(m: u64) -> String {
    crate::slack::blocks::duration(i64::try_from(m.saturating_mul(60)).unwrap_or(i64::MAX))
}

pub(crate) use crate::slack::mrkdwn::escape;
