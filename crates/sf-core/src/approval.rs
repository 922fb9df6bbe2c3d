//! The life of an approval: the legal moves between [`ApprovalStatus`]es. `approved`,
//! `rejected` and `cancelled` are final.

use sf_proto::ApprovalStatus;

/// A move on an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// A human approves.
    Approve,
    /// A human rejects.
    Reject,
    /// A human asks the requester to change it.
    RequestRevision,
    /// The requester resubmits it.
    Resubmit,
    /// The requester withdraws it (or its subject went away).
    Cancel,
}

impl Move {
    /// The verb, for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::RequestRevision => "ask for a revision of",
            Self::Resubmit => "resubmit",
            Self::Cancel => "cancel",
        }
    }
}

/// Whether a status is final.
pub fn is_final(s: ApprovalStatus) -> bool {
    matches!(
        s,
        ApprovalStatus::Approved | ApprovalStatus::Rejected | ApprovalStatus::Cancelled
    )
}

/// The status after `m`, or why `m` is illegal now (with what to do instead).
pub fn next(from: ApprovalStatus, m: Move) -> Result<ApprovalStatus, (String, &'static str)> {
    use ApprovalStatus as S;
    if is_final(from) {
        return Err((
            format!("it is {from}, which is final"),
            "a new request starts a new approval",
        ));
    }
    match (from, m) {
        (S::Pending, Move::Approve) => Ok(S::Approved),
        (S::Pending | S::RevisionRequested, Move::Reject) => Ok(S::Rejected),
        (S::Pending, Move::RequestRevision) => Ok(S::RevisionRequested),
        (S::RevisionRequested, Move::Resubmit) => Ok(S::Pending),
        (S::Pending | S::RevisionRequested, Move::Cancel) => Ok(S::Cancelled),
        (S::RevisionRequested, Move::Approve) => Err((
            "a revision was asked for and not yet resubmitted".to_owned(),
            "wait for the requester's resubmission, or reject it",
        )),
        (S::RevisionRequested, Move::RequestRevision) => Err((
            "a revision is already asked for".to_owned(),
            "add to it with `sfctl approval comment`",
        )),
        (S::Pending, Move::Resubmit) => Err((
            "no revision was asked for; it is pending".to_owned(),
            "comment on it instead (`sfctl approval comment`)",
        )),
        _ => Err((format!("it is {from}"), "see `sfctl approval show`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApprovalStatus as S;

    const MOVES: [Move; 5] = [
        Move::Approve,
        Move::Reject,
        Move::RequestRevision,
        Move::Resubmit,
        Move::Cancel,
    ];

    #[test]
    fn the_table() {
        let ok = |f, m| next(f, m).ok();
        assert_eq!(ok(S::Pending, Move::Approve), Some(S::Approved));
        assert_eq!(ok(S::Pending, Move::Reject), Some(S::Rejected));
        assert_eq!(
            ok(S::Pending, Move::RequestRevision),
            Some(S::RevisionRequested)
        );
        assert_eq!(ok(S::Pending, Move::Resubmit), None);
        assert_eq!(ok(S::Pending, Move::Cancel), Some(S::Cancelled));
        assert_eq!(ok(S::RevisionRequested, Move::Resubmit), Some(S::Pending));
        assert_eq!(ok(S::RevisionRequested, Move::Approve), None);
        assert_eq!(ok(S::RevisionRequested, Move::Reject), Some(S::Rejected));
        assert_eq!(ok(S::RevisionRequested, Move::RequestRevision), None);
        assert_eq!(ok(S::RevisionRequested, Move::Cancel), Some(S::Cancelled));
    }

    #[test]
    fn final_states_are_final() {
        for f in [S::Approved, S::Rejected, S::Cancelled] {
            assert!(is_final(f));
            for m in MOVES {
                let (why, _) = next(f, m).unwrap_err();
                assert!(why.contains("final"), "{why}");
            }
        }
    }
}
