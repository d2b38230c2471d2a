//! What a Confirm or Cancel click came to, as a value: the chat layer runs the steps
//! (authorize → claim → execute → audit) and [`super::render::click_reply`] turns the outcome
//! into the message the clicker sees.

use super::{execute::ReapReport, plan::Plan};

#[derive(Debug, Clone)]
pub enum ClickOutcome {
    /// The clicker may not confirm or cancel, or that could not be checked: the sentence
    /// says why and what to do. Nothing was changed.
    Refused(String),
    /// The plan was not this click's to act on.
    NotClaimed(Unclaimed),
    Cancelled {
        plan: Plan,
        user: String,
    },
    Executed {
        plan: Plan,
        report: ReapReport,
        user: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unclaimed {
    NotFound,
    Expired,
    /// Already running, done or cancelled (a double click or a second person).
    AlreadyHandled(String),
    /// The stored plan could not be read back.
    Unreadable,
    StoreUnavailable,
}
