//! The task state machine: the one table of legal status transitions.

use sf_proto::{PlanStatus, StatusChange, TaskStatus};

use TaskStatus::{Backlog, Blocked, Closed, Deferred, InProgress, Open, Review, Tombstone};

/// Every status a task in `from` may move to.
pub fn allowed_targets(from: TaskStatus) -> &'static [TaskStatus] {
    match from {
        Open => &[InProgress, Blocked, Deferred, Backlog, Closed, Tombstone],
        InProgress => &[Open, Review, Blocked, Closed],
        Blocked => &[Open, Deferred, Backlog, Closed, Tombstone],
        Deferred => &[Open, Backlog, Closed, Tombstone],
        Backlog => &[Open, Deferred, Closed, Tombstone],
        Review => &[Open, InProgress, Blocked, Closed],
        Closed => &[Open, Tombstone],
        Tombstone => &[],
    }
}

/// An illegal move, with what would have been legal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a task from {from} to {to}; from {from} it may go to: {}", allowed_list(*.from))]
pub struct TransitionError {
    /// Current status.
    pub from: TaskStatus,
    /// Asked-for status.
    pub to: TaskStatus,
}

fn allowed_list(from: TaskStatus) -> String {
    let targets = allowed_targets(from);
    if targets.is_empty() {
        return "nothing (it is final)".to_owned();
    }
    targets
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one move against the table. Staying put is not a move and is refused too, so that
/// every accepted change really changes something (and gets its audit event).
pub fn check_transition(from: TaskStatus, to: TaskStatus) -> Result<(), TransitionError> {
    if allowed_targets(from).contains(&to) {
        Ok(())
    } else {
        Err(TransitionError { from, to })
    }
}

/// The status a named change leads to.
pub fn target_of(change: StatusChange) -> TaskStatus {
    match change {
        StatusChange::Close => Closed,
        StatusChange::Reopen
        | StatusChange::Undefer
        | StatusChange::Activate
        | StatusChange::Unblock => Open,
        StatusChange::Defer => Deferred,
        StatusChange::Backlog => Backlog,
        StatusChange::Block => Blocked,
        StatusChange::Delete => Tombstone,
    }
}

/// The statuses a named change may start from: the table's sources, narrowed so that each
/// verb means what it says (`undefer` only undoes `defer`, `activate` only leaves the backlog).
pub fn sources_of(change: StatusChange) -> &'static [TaskStatus] {
    match change {
        StatusChange::Close => &[Open, InProgress, Blocked, Deferred, Backlog, Review],
        StatusChange::Reopen => &[Closed, Review, Blocked],
        StatusChange::Defer => &[Open, Blocked, Backlog],
        StatusChange::Undefer => &[Deferred],
        StatusChange::Backlog => &[Open, Blocked, Deferred],
        StatusChange::Activate => &[Backlog],
        StatusChange::Block => &[Open, InProgress, Review],
        StatusChange::Unblock => &[Blocked],
        StatusChange::Delete => &[Open, Blocked, Deferred, Backlog, Closed],
    }
}

/// A named change that does not apply to the task's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {change} a task that is {from}; {change} applies to tasks that are {}", sources_list(*.change))]
pub struct ChangeError {
    /// Current status.
    pub from: TaskStatus,
    /// The change asked for.
    pub change: StatusChange,
}

fn sources_list(change: StatusChange) -> String {
    sources_of(change)
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a named change and returns its target status.
pub fn apply_change(from: TaskStatus, change: StatusChange) -> Result<TaskStatus, ChangeError> {
    let to = target_of(change);
    if sources_of(change).contains(&from) && check_transition(from, to).is_ok() {
        Ok(to)
    } else {
        Err(ChangeError { from, change })
    }
}

/// Whether a task in this status is finished for the purposes of dependencies.
pub fn is_done(status: TaskStatus) -> bool {
    matches!(status, Closed | Tombstone)
}

/// Whether the tasks of a plan in this status may be dispatched. A completed plan counts:
/// a task reopened in it reopens the plan.
pub fn plan_dispatchable(status: PlanStatus) -> bool {
    matches!(status, PlanStatus::Active | PlanStatus::Completed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_change_is_legal_in_the_table() {
        for &change in StatusChange::ALL {
            for &from in sources_of(change) {
                check_transition(from, target_of(change))
                    .unwrap_or_else(|e| panic!("{change} from {from}: {e}"));
            }
        }
    }

    #[test]
    fn tombstone_is_final() {
        for &to in TaskStatus::ALL {
            assert!(check_transition(Tombstone, to).is_err());
        }
        let err = check_transition(Tombstone, Open).unwrap_err();
        assert!(err.to_string().contains("nothing (it is final)"), "{err}");
    }

    #[test]
    fn self_transitions_are_refused() {
        for &s in TaskStatus::ALL {
            assert!(check_transition(s, s).is_err(), "{s} -> {s}");
        }
    }

    #[test]
    fn illegal_moves_name_the_legal_ones() {
        let err = check_transition(Closed, Review).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot move a task from closed to review; from closed it may go to: open, tombstone"
        );
    }

    #[test]
    fn named_changes() {
        assert_eq!(apply_change(Open, StatusChange::Close), Ok(Closed));
        assert_eq!(apply_change(Closed, StatusChange::Reopen), Ok(Open));
        assert_eq!(apply_change(Backlog, StatusChange::Activate), Ok(Open));
        assert_eq!(apply_change(Deferred, StatusChange::Undefer), Ok(Open));
        let err = apply_change(Open, StatusChange::Undefer).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot undefer a task that is open; undefer applies to tasks that are deferred"
        );
        assert!(
            apply_change(InProgress, StatusChange::Delete).is_err(),
            "live work"
        );
        assert!(apply_change(Tombstone, StatusChange::Reopen).is_err());
    }

    #[test]
    fn work_in_flight_reaches_review_only_from_in_progress() {
        for &from in TaskStatus::ALL {
            let ok = check_transition(from, Review).is_ok();
            assert_eq!(ok, from == InProgress, "{from} -> review");
        }
    }
}
