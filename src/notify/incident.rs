//! One incident per (project, ref): pure transitions, no I/O.

use std::{collections::HashMap, sync::Mutex};

use super::{event::Applied, policy::Outcome};

/// What the store knows about a ref before an event is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefHead {
    /// The newest finished pipeline seen on the ref (parent id for children).
    pub last_pipeline: Option<u64>,
    /// Whether an incident is open on the ref.
    pub broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An older pipeline finished late: the incident does not change.
    Stale { newest: u64 },
    /// First failure of a healthy ref: a new root message.
    Open,
    /// Another failure while broken: a reply and a root update.
    StillFailing,
    /// Success on a broken ref: a "fixed" reply and a root update.
    Fixed,
    /// Success on a healthy ref: nothing to say.
    StillHealthy,
}

/// `pipeline` is the pipeline's own id, or its parent's for a child pipeline, so
/// a child counts as part of the pipeline that started it.
pub fn step(head: &RefHead, pipeline: u64, outcome: Outcome) -> Step {
    if let Some(newest) = head.last_pipeline {
        // Equal ids are retries of the newest pipeline (or its children) and count.
        if pipeline < newest {
            return Step::Stale { newest };
        }
    }
    match (outcome, head.broken) {
        (Outcome::Failed, false) => Step::Open,
        (Outcome::Failed, true) => Step::StillFailing,
        (Outcome::Succeeded, true) => Step::Fixed,
        (Outcome::Succeeded, false) => Step::StillHealthy,
    }
}

/// The head after a non-stale step.
pub fn advance(head: &RefHead, pipeline: u64, s: Step) -> RefHead {
    match s {
        Step::Stale { .. } => head.clone(),
        _ => RefHead {
            last_pipeline: Some(head.last_pipeline.map_or(pipeline, |p| p.max(pipeline))),
            broken: matches!(s, Step::Open | Step::StillFailing),
        },
    }
}

/// Which refs this process last saw broken, from what applying events did: a hint for work
/// only a failure that opens an incident needs (asking Slack who the pipeline's user is). The
/// store decides; the hint can only be missing (after a restart, or when another replica
/// applied the events), and then the work is done for nothing, never left undone.
#[derive(Debug, Default)]
pub struct BrokenRefs(Mutex<HashMap<(u64, String), bool>>);

/// Refs remembered at most; the hint starts over beyond it.
const MAX_REFS: usize = 10_000;

impl BrokenRefs {
    /// True when the last event applied here left the ref broken.
    pub fn known_broken(&self, project: u64, git_ref: &str) -> bool {
        let refs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        refs.get(&(project, git_ref.to_string())) == Some(&true)
    }

    pub fn record(&self, project: u64, git_ref: &str, applied: Applied) {
        let broken = match applied {
            Applied::Opened { .. } | Applied::StillFailing { .. } => true,
            Applied::Fixed { .. } | Applied::StillHealthy => false,
            Applied::Duplicate | Applied::Stale { .. } => return,
        };
        let mut refs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if refs.len() >= MAX_REFS {
            refs.clear();
        }
        refs.insert((project, git_ref.to_string()), broken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    #[test]
    fn lifecycle() {
        let mut head = RefHead::default();
        let script = [
            (10, Succeeded, Step::StillHealthy),
            (11, Failed, Step::Open),
            (12, Failed, Step::StillFailing),
            (11, Failed, Step::Stale { newest: 12 }),
            (12, Failed, Step::StillFailing), // retry of the newest, failed again
            (12, Succeeded, Step::Fixed),     // same pipeline retried to green
            (13, Succeeded, Step::StillHealthy),
            (12, Failed, Step::Stale { newest: 13 }),
        ];
        for (id, outcome, want) in script {
            let got = step(&head, id, outcome);
            assert_eq!(got, want, "pipeline {id} {outcome:?}");
            head = advance(&head, id, got);
        }
        assert_eq!(
            head,
            RefHead {
                last_pipeline: Some(13),
                broken: false
            }
        );
    }

    #[test]
    fn broken_refs_follow_what_was_applied() {
        let refs = BrokenRefs::default();
        assert!(!refs.known_broken(1, "master"));
        refs.record(1, "master", Applied::Opened { incident: 7 });
        assert!(refs.known_broken(1, "master"));
        assert!(!refs.known_broken(2, "master"));
        refs.record(1, "master", Applied::Duplicate);
        refs.record(1, "master", Applied::Stale { newest: 9 });
        assert!(refs.known_broken(1, "master"));
        refs.record(1, "master", Applied::Fixed { incident: 7 });
        assert!(!refs.known_broken(1, "master"));
    }
}
