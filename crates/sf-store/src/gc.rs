//! What the janitor asks before it removes a worktree or a branch: which tasks use it.
//! Looked up by name through partial indexes, so a clean-up costs what is left to clean,
//! not the history.

use sf_proto::TaskStatus;

use crate::{Store, StoreError};

/// A task that uses a worktree directory or a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The task's id.
    pub task: String,
    /// Its status.
    pub status: TaskStatus,
    /// Its branch.
    pub branch: Option<String>,
    /// Whether a run of it has not ended.
    pub live_run: bool,
}

impl Holder {
    /// Whether the task is done with its worktree and branch: closed (merged or closed by a
    /// human) or deleted, with no run still ending.
    pub fn is_done(&self) -> bool {
        matches!(self.status, TaskStatus::Closed | TaskStatus::Tombstone) && !self.live_run
    }
}

const HOLDER: &str = "SELECT t.id, t.status, t.branch,
        EXISTS (SELECT 1 FROM runs r WHERE r.task = t.key AND r.ended_at IS NULL)
    FROM tasks t";

fn holder(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, Option<String>, bool)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

impl Store {
    /// The tasks working in the worktree directory `dir` (a fix task shares its original's).
    pub fn worktree_holders(&self, dir: &str) -> Result<Vec<Holder>, StoreError> {
        self.holders(&format!("{HOLDER} WHERE t.worktree = ?1"), dir)
    }

    /// The tasks whose branch is `branch`.
    pub fn branch_holders(&self, branch: &str) -> Result<Vec<Holder>, StoreError> {
        self.holders(&format!("{HOLDER} WHERE t.branch = ?1"), branch)
    }

    /// Whether an agent of that name is registered.
    pub fn has_agent(&self, name: &str) -> Result<bool, StoreError> {
        self.agent_exists(name)
    }

    fn holders(&self, sql: &str, name: &str) -> Result<Vec<Holder>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([name], holder)?;
        let mut out = Vec::new();
        for r in rows {
            let (task, status, branch, live_run) = r?;
            out.push(Holder {
                task,
                status: status
                    .parse()
                    .map_err(|_| StoreError::state(format!("task has unknown status {status}")))?,
                branch,
                live_run,
            });
        }
        Ok(out)
    }
}
