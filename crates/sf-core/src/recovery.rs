//! The verdict on a recovery steward's run: it must end with exactly one of its stuck task
//! completed (in review or closed), handed back to the pool with a note for the next worker,
//! or deferred with a message to the director. Anything else is a failed recovery.

use sf_proto::{StewardOutcome, TaskStatus};

/// What a recovery run did, as the daemon found it after the run ended: only what this
/// run did counts, not the notes or messages of earlier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryFacts {
    /// The stuck task's status now.
    pub status: TaskStatus,
    /// The steward left a note on the task during the run.
    pub noted: bool,
    /// The steward sent the director a message about the task during the run.
    pub told_director: bool,
}

/// The outcome of a recovery run on task `task`, and the line that says why.
pub fn verdict(task: &str, facts: RecoveryFacts) -> (StewardOutcome, String) {
    use TaskStatus as S;
    let RecoveryFacts {
        status,
        noted,
        told_director,
    } = facts;
    match status {
        S::Review | S::Closed => (
            StewardOutcome::Ok,
            format!("task {task} completed (now {status})"),
        ),
        S::Open | S::InProgress if noted => (
            StewardOutcome::Ok,
            format!("task {task} handed back with a note"),
        ),
        S::Open | S::InProgress => (
            StewardOutcome::Failed,
            format!("task {task} was handed back without a note for the next worker"),
        ),
        S::Deferred | S::Backlog if told_director => (
            StewardOutcome::Ok,
            format!("task {task} deferred with a message to the director"),
        ),
        S::Deferred | S::Backlog => (
            StewardOutcome::Failed,
            format!("task {task} was deferred without a message to the director"),
        ),
        S::Blocked | S::Tombstone => (
            StewardOutcome::Failed,
            format!("ended without completing, handing off or deferring task {task}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: TaskStatus, noted: bool, told_director: bool) -> RecoveryFacts {
        RecoveryFacts {
            status,
            noted,
            told_director,
        }
    }

    #[test]
    fn completing_the_task_is_a_recovery_whatever_else_happened() {
        for status in [TaskStatus::Review, TaskStatus::Closed] {
            let (outcome, why) = verdict("sf-1", facts(status, false, false));
            assert_eq!(outcome, StewardOutcome::Ok);
            assert!(why.contains("completed"), "{why}");
        }
    }

    #[test]
    fn handing_back_needs_a_note() {
        for status in [TaskStatus::Open, TaskStatus::InProgress] {
            assert_eq!(
                verdict("sf-1", facts(status, true, false)).0,
                StewardOutcome::Ok
            );
            let (outcome, why) = verdict("sf-1", facts(status, false, true));
            assert_eq!(outcome, StewardOutcome::Failed);
            assert!(why.contains("without a note"), "{why}");
        }
    }

    #[test]
    fn deferring_needs_a_message_to_the_director() {
        for status in [TaskStatus::Deferred, TaskStatus::Backlog] {
            assert_eq!(
                verdict("sf-1", facts(status, false, true)).0,
                StewardOutcome::Ok
            );
            let (outcome, why) = verdict("sf-1", facts(status, true, false));
            assert_eq!(outcome, StewardOutcome::Failed);
            assert!(why.contains("without a message to the director"), "{why}");
        }
    }

    #[test]
    fn leaving_the_task_blocked_or_deleted_is_a_failed_recovery() {
        for status in [TaskStatus::Blocked, TaskStatus::Tombstone] {
            let (outcome, why) = verdict("sf-9", facts(status, true, true));
            assert_eq!(outcome, StewardOutcome::Failed);
            assert!(why.contains("sf-9"), "{why}");
        }
    }
}
