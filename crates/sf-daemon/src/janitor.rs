//! The janitor: cleans up after work that is done.
//!
//! A task's worktree and branch are kept while the task may still need them (open, at work,
//! in review, blocked, a fix task working in them) and retired once every task using them
//! is closed (merged, or closed by a human) or deleted, with no run still ending: the
//! uncommitted work is saved first (a commit on the branch and `refs/sf/wip/<task>/<n>`),
//! the worktree removed, then the branch deleted, archived to `refs/sf/archive/<task>`
//! first when the target lacks its commits (with `[merge] delete_branch = false`,
//! branches are kept). A task reopened later goes on from its archived branch.
//!
//! The owner asks for a pass after a run ends, a merge lands and a task closes, and on
//! start-up; `sfctl gc` asks for one (`--dry-run`: only say what would go). A pass costs
//! what is left to clean: it lists `.sf/worktrees/` and the `agent/*` branches and looks
//! each up by name (`Store::worktree_holders`, `Store::branch_holders`), never the history.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Condvar, LazyLock, Mutex, PoisonError};

use sf_store::{Holder, Store, StoreError};

use crate::config::Config;

/// The worktree directories a pass has chosen to retire and not yet removed. A run that
/// is launched in one meanwhile (its task was reopened and claimed again) waits for the
/// removal to end before it makes the worktree again ([`wait_until_retired`]): the choice is
/// made on the store thread, where claims are made too, so no claim slips in between.
static RETIRING: LazyLock<(Mutex<HashSet<String>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(HashSet::new()), Condvar::new()));

/// Blocks while the worktree directory `dir` is being retired. Runs on a blocking thread.
pub(crate) fn wait_until_retired(dir: &str) {
    let (set, cv) = &*RETIRING;
    let mut busy = set.lock().unwrap_or_else(PoisonError::into_inner);
    while busy.contains(dir) {
        busy = cv.wait(busy).unwrap_or_else(PoisonError::into_inner);
    }
}

fn reserve(dir: &str) {
    RETIRING
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(dir.to_owned());
}

fn release(dir: &str) {
    let (set, cv) = &*RETIRING;
    set.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(dir);
    cv.notify_all();
}

/// One thing to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chore {
    /// Remove the worktree directory `dir` under `.sf/worktrees/`, saving its work first.
    Worktree {
        dir: String,
        /// The task its saved work is filed under.
        task: String,
        why: String,
    },
    /// Delete a done task's branch (archived first when the target lacks its commits).
    Branch {
        branch: String,
        task: String,
        why: String,
    },
}

impl Chore {
    /// What it would do, for `sfctl gc --dry-run`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Worktree { dir, why, .. } => {
                format!("remove worktree .sf/worktrees/{dir} ({why})")
            }
            Self::Branch { branch, why, .. } => format!("delete branch {branch} ({why})"),
        }
    }
}

/// The worktree directories under `.sf/worktrees/` and the `agent/*` branches there are
/// now. Runs on a blocking thread.
pub(crate) fn look(config: &Config) -> Result<(Vec<String>, Vec<String>), String> {
    let dirs = match std::fs::read_dir(config.paths.worktrees()) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // what an earlier repair moved aside is the user's to look at, never removed
            .filter(|n| !n.contains(".aside-"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(format!(
                "failed to list {}: {e}",
                config.paths.worktrees().display()
            ));
        }
    };
    let branches = sf_git::branches_under(&config.paths.root, "agent")
        .map_err(|e| crate::errors::error_chain(&e))?;
    Ok((dirs, branches))
}

/// Which of `dirs` and `branches` are done with. Runs on the store thread.
///
/// With `reserve`, the worktrees chosen are marked as being retired until [`act`] is done
/// with them (see [`RETIRING`]).
pub(crate) fn decide(
    store: &Store,
    dirs: &[String],
    branches: &[String],
    delete_branches: bool,
    reserve_them: bool,
) -> Result<Vec<Chore>, StoreError> {
    let mut chores = Vec::new();
    let mut branch_chores = BTreeSet::new();
    let push_branch = |branch: &str, task: &str, why: &str, set: &mut BTreeSet<_>| {
        if delete_branches {
            set.insert((branch.to_owned(), task.to_owned(), why.to_owned()));
        }
    };
    for dir in dirs {
        if let Some(steward) = dir.strip_prefix("steward-") {
            if !store.has_agent(steward)? {
                chores.push(Chore::Worktree {
                    dir: dir.clone(),
                    task: dir.clone(),
                    why: format!("steward {steward} was removed"),
                });
            }
            continue;
        }
        let holders = store.worktree_holders(dir)?;
        let Some(why) = done_with(&holders) else {
            continue;
        };
        let task = holders
            .first()
            .map_or_else(|| dir.clone(), |h| h.task.clone());
        chores.push(Chore::Worktree {
            dir: dir.clone(),
            task,
            why: why.clone(),
        });
        for h in &holders {
            if let Some(b) = &h.branch {
                push_branch(b, &h.task, &why, &mut branch_chores);
            }
        }
    }
    for branch in branches {
        let holders = store.branch_holders(branch)?;
        // a branch no task names is not known to be sf's: left alone
        if holders.is_empty() {
            continue;
        }
        if let Some(why) = done_with(&holders) {
            push_branch(branch, &holders[0].task, &why, &mut branch_chores);
        }
    }
    chores.extend(
        branch_chores
            .into_iter()
            .map(|(branch, task, why)| Chore::Branch { branch, task, why }),
    );
    if reserve_them {
        for c in &chores {
            if let Chore::Worktree { dir, .. } = c {
                reserve(dir);
            }
        }
    }
    Ok(chores)
}

/// Why the holders are done with what they use, or `None` while one still needs it.
fn done_with(holders: &[Holder]) -> Option<String> {
    match holders {
        [] => Some("no task uses it".to_owned()),
        hs if hs.iter().all(Holder::is_done) => Some(match hs {
            [h] => format!("task {} is {}", h.task, h.status),
            _ => format!(
                "tasks {} are closed",
                hs.iter()
                    .map(|h| h.task.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        _ => None,
    }
}

/// Does the chores, in order (worktrees before their branches). Returns a line for each,
/// saying what was done or why it was not. Runs on a blocking thread.
pub(crate) fn act(config: &Config, target: &str, chores: &[Chore]) -> Vec<String> {
    let root = &config.paths.root;
    let epoch = sf_store::now_ms();
    chores
        .iter()
        .map(|c| match c {
            Chore::Worktree { dir, task, why } => {
                let path = config.paths.worktrees().join(dir);
                if path.exists() {
                    retire_worktree(root, &path, task, epoch, why)
                } else {
                    format!("worktree {} was already gone", path.display())
                }
            }
            Chore::Branch { branch, task, why } => {
                match sf_git::retire_branch(root, branch, target, task) {
                    Ok(sf_git::BranchFate::Deleted) => {
                        format!("deleted branch {branch} ({why}; its commits are on {target})")
                    }
                    Ok(sf_git::BranchFate::Archived) => format!(
                        "deleted branch {branch} ({why}), kept as {}",
                        sf_git::archive_ref(task)
                    ),
                    Ok(sf_git::BranchFate::Missing) => format!("branch {branch} was already gone"),
                    Err(e) => format!("kept branch {branch}: {}", crate::errors::error_chain(&e)),
                }
            }
        })
        .collect()
}

fn retire_worktree(root: &Path, path: &Path, task: &str, epoch: i64, why: &str) -> String {
    let shown = path.display();
    match sf_git::retire_worktree(root, path, task, epoch) {
        Ok(r) => match r.saved {
            Some(commit) => format!(
                "removed worktree {shown} ({why}); its uncommitted work is saved as {} in refs/sf/wip/{task}/{epoch}",
                &commit[..commit.len().min(12)]
            ),
            None => format!("removed worktree {shown} ({why})"),
        },
        Err(e) => format!("kept worktree {shown}: {}", crate::errors::error_chain(&e)),
    }
}

/// One pass: look, decide, and (unless `dry_run`) act. Returns a line per chore.
pub(crate) async fn pass(
    config: std::sync::Arc<Config>,
    store: crate::store_thread::StoreHandle,
    target: String,
    dry_run: bool,
) -> Result<Vec<String>, String> {
    let c = config.clone();
    let (dirs, branches) = tokio::task::spawn_blocking(move || look(&c))
        .await
        .map_err(|e| e.to_string())??;
    if dirs.is_empty() && branches.is_empty() {
        return Ok(Vec::new());
    }
    let delete = config.merge_delete_branch;
    let chores = store
        .call(move |s| decide(s, &dirs, &branches, delete, !dry_run))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if dry_run || chores.is_empty() {
        return Ok(chores.iter().map(Chore::describe).collect());
    }
    let reserved = chores.clone();
    let done = tokio::task::spawn_blocking(move || act(&config, &target, &chores)).await;
    // the worktrees are free again once their branches are dealt with too (a run waiting
    // to make one again restores its branch from the archive), or the pass died half-way
    for c in &reserved {
        if let Chore::Worktree { dir, .. } = c {
            release(dir);
        }
    }
    done.map_err(|e| e.to_string())
}

/// Whether an audit event lets go of work (a task closed, merged or deleted, a run ended,
/// an agent removed), so that a janitor pass may find something to clean.
pub(crate) fn lets_go(e: &sf_proto::AuditEvent) -> bool {
    let to = e
        .after
        .as_ref()
        .and_then(|v| v.get("status"))
        .and_then(serde_json::Value::as_str);
    use sf_proto::Action as A;
    match e.action.parse() {
        Ok(A::TaskClosed | A::TaskMerged | A::AgentRemoved | A::RunFailed | A::TaskCompleted) => {
            true
        }
        Ok(A::TaskStatusChanged) => matches!(to, Some("closed" | "tombstone")),
        _ => false,
    }
}
