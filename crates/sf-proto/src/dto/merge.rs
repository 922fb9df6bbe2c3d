//! The merge queue: merge requests, their states, and what `sfctl gc` did.

use super::*;

wire_enum!(
    /// Where a merge request is.
    MergeState {
        /** Waiting its turn. */ Queued = "queued",
        /** Its merge result is being tested. */ Testing = "testing",
        /** Waits for `sfctl mr approve`. */ AwaitingApproval = "awaiting_approval",
        /** Cannot proceed yet; `reason` says why. */ Waiting = "waiting",
        /** Tests failed or it conflicts; a fix task is working on it. */ NeedsFix = "needs_fix",
        /** Landed on the target. */ Merged = "merged",
        /** Given up. */ Cancelled = "cancelled",
    }
);

/// A merge request, for `sfctl mr list|show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequestInfo {
    /// Id.
    pub id: MergeRequestId,
    /// The task it merges (absent for `sfctl merge` of a branch).
    pub task: Option<TaskId>,
    /// The task's title, or the merge message.
    pub title: String,
    /// The branch.
    pub branch: String,
    /// Where it goes.
    pub target: String,
    /// State.
    pub state: MergeState,
    /// Why it waits, or how it failed.
    pub reason: Option<String>,
    /// Test runs so far.
    pub attempts: u32,
    /// Last test result, one line.
    pub last_result: Option<String>,
    /// The test output log of the last attempt.
    pub log_path: Option<String>,
    /// The commit that landed.
    pub commit: Option<String>,
    /// The open fix task, if any.
    pub fix_task: Option<TaskId>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Every fix task its failed merges made, oldest first (kept after the merge; `mr
    /// show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fix_tasks: Vec<FixTaskRef>,
    /// The test output of each attempt, first to last (`mr show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_logs: Vec<String>,
}

/// What `sfctl gc` did (or, with `--dry-run`, would do): one line per worktree or branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// One line each.
    pub actions: Vec<String>,
}

/// A branch sfd pushed to a remote (`sfctl push`, or after a merge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushInfo {
    /// The task whose branch it is (absent for the target pushed after a merge of a branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The remote's name.
    pub remote: String,
    /// The branch, the same on both sides.
    pub branch: String,
    /// The commit the remote branch now names.
    pub commit: String,
}
