//! The fleet watch: every `[watch] interval_secs` the replica that leads lists the fleet (as
//! `/arm status` does), speaks first when ARM builders are stuck shut down — one incident,
//! one thread, its root updated as the set changes — and, when the team allows it, reaps them
//! with the same planner, executor, lock and audit as `/arm reap`.
//!
//! [`incident`] decides (pure), [`render`] writes the messages, [`poll`] does the I/O: one
//! [`Watcher::poll_once`] per interval, its memory and messages saved in one transaction.

pub mod incident;
pub mod poll;
pub mod render;
pub mod settings;

pub use incident::{Memory, TROUBLE_POLLS};
pub use poll::{PollReport, WATCH, Watcher};
pub use render::{ACTOR, PLAN_REAP_ACTION_ID};
pub use settings::{WatchFile, WatchSettings};
