//! Lock files and admin folders left behind by killed git operations, recognised and
//! repaired.
//!
//! git and libgit2 take a lock by creating `<file>.lock` exclusively and release it by
//! renaming it over `<file>` (or deleting it). A process killed in between leaves the lock,
//! and every later writer of that file fails ("the index is locked", "failed to lock file")
//! until someone removes it. sf owns `.sf/`, the worktrees under it and the `agent/*`
//! branches; it shares the target branch, the main index and `packed-refs` with the user.
//!
//! A lock counts as stale when no process on the machine has it open (every `/proc/<pid>/fd`
//! is read; a lock being written is always held open by its writer) and, for the files sf
//! shares with the user, when it is also older than [`SHARED_MIN_AGE`] and no `git` process
//! runs in the repository at all: git closes a ref lock a moment before renaming it, and
//! `git commit` keeps the index locked, closed, while its editor is open; neither may be
//! mistaken for a leftover.
//! Inside sf's own worktrees the only other writer is the worker: a lock there is removed
//! when nobody has it open and no `git` runs in that worktree (git keeps the index lock
//! closed while a hook runs, but stays alive in its directory meanwhile). Locks on sf's own
//! refs are removed at start-up when nobody holds them open and, for an `agent/*` branch,
//! no `git` runs in the worktree that has it checked out (nor one of the user's in the
//! repository): the workers adopted after a restart commit on those branches.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::ffi::OsStrExt as _;

use git2::Repository;

use crate::{GitError, open};

/// How old a lock on a file shared with the user must be before it is removed.
pub const SHARED_MIN_AGE: Duration = Duration::from_secs(2);

/// Removes `lock` if it exists, nobody has it open and it is at least `min_age` old.
/// Returns a line saying what was removed, or `None`.
pub fn clear_if_stale(lock: &Path, min_age: Duration) -> Result<Option<String>, GitError> {
    let Ok(meta) = lock.symlink_metadata() else {
        return Ok(None);
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default();
    if age < min_age || held_open(lock) {
        return Ok(None);
    }
    match std::fs::remove_file(lock) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(GitError::Io {
                what: format!("remove the stale lock {}", lock.display()),
                source,
            });
        }
    }
    tracing::warn!(lock = %lock.display(), "removed a stale git lock left by a killed process");
    Ok(Some(format!(
        "removed the stale lock {} (left by a killed git operation)",
        lock.display()
    )))
}

/// Whether any process has `path` open, from `/proc/*/fd`. Processes whose descriptors
/// cannot be read (another user's) are not git processes working in this repository.
fn held_open(path: &Path) -> bool {
    let want = match (path.parent().map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => path.to_owned(),
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.flatten() {
        if !p
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == want))
        {
            return true;
        }
    }
    false
}

/// Before sf writes in its worktree at `worktree`: removes the stale locks on its index,
/// its HEAD and its branch.
pub fn repair_worktree(worktree: &Path) -> Result<Vec<String>, GitError> {
    let repo = open(worktree)?;
    let mut locks = vec![
        repo.path().join("index.lock"),
        repo.path().join("HEAD.lock"),
    ];
    if let Ok(head) = repo.find_reference("HEAD")
        && let Some(Ok(branch)) = head.symbolic_target_bytes().map(std::str::from_utf8)
    {
        locks.push(repo.commondir().join(format!("{branch}.lock")));
    }
    if git_running_under(&[canonical(worktree), canonical(repo.path())], None) {
        // a git in the worktree (its hooks running, say) may hold a lock it keeps closed
        return Ok(Vec::new());
    }
    clear_all(&locks, Duration::ZERO)
}

/// Before sf moves `target` or brings the user's checkout of it along: removes the stale
/// locks on the target ref, `packed-refs`, and the main working tree's index and HEAD.
pub fn repair_target(repo_root: &Path, target: &str) -> Result<Vec<String>, GitError> {
    repair_target_in(&open(repo_root)?, target)
}

/// [`repair_target`] on an open repository. With no lock there (the usual case) it costs
/// four `stat`s: the processes are looked at only when a lock is found.
pub(crate) fn repair_target_in(repo: &Repository, target: &str) -> Result<Vec<String>, GitError> {
    let locks = target_locks(repo, target);
    if !locks.iter().any(|l| l.symlink_metadata().is_ok()) {
        return Ok(Vec::new());
    }
    if git_running_in(repo) {
        // a git of the user's may hold a lock without keeping it open (`git commit` while
        // its editor is open): shared locks are left alone while any git runs here
        return Ok(Vec::new());
    }
    clear_all(&locks, SHARED_MIN_AGE)
}

/// Whether a `git` process (other than this one) runs with its working directory in the
/// repository's main working tree or git directory (sf's own worktrees under `.sf/`
/// excepted: those are workers').
fn git_running_in(repo: &Repository) -> bool {
    let places: Vec<PathBuf> = [repo.workdir(), Some(repo.commondir())]
        .into_iter()
        .flatten()
        .map(canonical)
        .collect();
    // sf's own worktrees (workers' gits) are not the user's
    let ours = repo.workdir().map(|w| canonical(w).join(".sf"));
    git_running_under(&places, ours.as_deref())
}

pub(crate) fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned())
}

/// Whether a `git` process other than this one has its working directory under one of
/// `places`, and not under `except`. A git stays alive, in its directory, while its hooks
/// or its editor run, even when it keeps its lock closed meanwhile.
pub(crate) fn git_running_under(places: &[PathBuf], except: Option<&Path>) -> bool {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let name = p.file_name();
        if name.to_string_lossy() == me || !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        let is_git = std::fs::read_to_string(p.path().join("comm"))
            .is_ok_and(|c| c.trim() == "git" || c.trim().starts_with("git-"));
        is_git
            && std::fs::read_link(p.path().join("cwd")).is_ok_and(|cwd| {
                places.iter().any(|place| cwd.starts_with(place))
                    && !except.is_some_and(|o| cwd.starts_with(o))
            })
    })
}

fn target_locks(repo: &Repository, target: &str) -> Vec<PathBuf> {
    let common = repo.commondir();
    vec![
        common.join(format!("refs/heads/{target}.lock")),
        common.join("packed-refs.lock"),
        common.join("index.lock"),
        common.join("HEAD.lock"),
    ]
}

fn clear_all(locks: &[PathBuf], min_age: Duration) -> Result<Vec<String>, GitError> {
    let mut out = Vec::new();
    for l in locks {
        out.extend(clear_if_stale(l, min_age)?);
    }
    Ok(out)
}

/// On start-up, before anything else touches git: repairs what killed operations of sf left
/// in the repository. Removes the admin folders of half-made worktrees under `sf_dir` (with
/// their directories), stale locks in sf's worktrees and on `agent/*` and `refs/sf/*` refs,
/// and stale locks on what sf shares with the user (see [`repair_target`]).
pub fn repair_workspace(
    repo_root: &Path,
    sf_dir: &Path,
    target: Option<&str>,
) -> Result<Vec<String>, GitError> {
    let repo = open(repo_root)?;
    let common = repo.commondir().to_owned();
    let sf_dir = std::fs::canonicalize(sf_dir).unwrap_or_else(|_| sf_dir.to_owned());
    let mut out = Vec::new();
    let admin_root = common.join("worktrees");
    if let Ok(entries) = std::fs::read_dir(&admin_root) {
        for entry in entries.flatten() {
            let admin = entry.path();
            let gitdir = std::fs::read(admin.join("gitdir")).ok().map(|b| {
                let b = b.strip_suffix(b"\n").unwrap_or(&b);
                PathBuf::from(std::ffi::OsStr::from_bytes(b))
            });
            let ours = gitdir.as_ref().is_some_and(|g| g.starts_with(&sf_dir));
            // an admin folder without `gitdir` that holds `locked` and not sf's marker is a
            // `git worktree add` of the user's (it writes `locked`, then `gitdir`), perhaps
            // at work now; any other is git's leftover or sf's
            let users_add =
                admin.join("locked").exists() && !admin.join(crate::worktree::INCOMPLETE).exists();
            if crate::worktree::is_half_made(&admin) && (ours || (gitdir.is_none() && !users_add)) {
                if let Some(dot_git) = &gitdir
                    && let Some(dir) = dot_git.parent()
                    && dir.starts_with(&sf_dir)
                {
                    crate::remove_dir(dir)?;
                }
                crate::remove_dir(&admin)?;
                out.push(format!(
                    "removed the half-made worktree `{}` (its creation was cut short)",
                    entry.file_name().to_string_lossy()
                ));
                continue;
            }
            if ours
                && let Some(dir) = gitdir.as_ref().and_then(|g| g.parent())
                && !git_running_under(&[canonical(dir), canonical(&admin)], None)
            {
                // an adopted worker's git may be at work in its worktree
                out.extend(clear_all(
                    &[admin.join("index.lock"), admin.join("HEAD.lock")],
                    Duration::ZERO,
                )?);
            }
        }
    }
    // sf's own refs: `refs/sf/*` only sfd writes; an `agent/*` branch is also written by
    // the git of a worker adopted after a restart, working in the worktree that has it
    // checked out (git closes a ref's lock a moment before renaming it into place)
    let mut sf_refs = Vec::new();
    find_locks(&common.join("refs/sf"), &mut sf_refs);
    out.extend(clear_all(&sf_refs, Duration::ZERO)?);
    let mut agent_refs = Vec::new();
    find_locks(&common.join("refs/heads/agent"), &mut agent_refs);
    let checked_out = worktrees_by_branch(&common);
    let users = repo.workdir().map(|w| canonical(w).join(".sf"));
    let main_places: Vec<PathBuf> = [repo.workdir(), Some(common.as_path())]
        .into_iter()
        .flatten()
        .map(canonical)
        .collect();
    for lock in agent_refs {
        let Some(refname) = lock
            .strip_prefix(&common)
            .ok()
            .and_then(|r| r.to_str())
            .and_then(|r| r.strip_suffix(".lock"))
            .map(str::to_owned)
        else {
            continue;
        };
        let in_use = git_running_under(&main_places, users.as_deref())
            || checked_out
                .get(&refname)
                .is_some_and(|dirs| git_running_under(dirs, None));
        if !in_use {
            out.extend(clear_if_stale(&lock, Duration::ZERO)?);
        }
    }
    if let Some(t) = target
        && !git_running_in(&repo)
    {
        out.extend(clear_all(&target_locks(&repo, t), SHARED_MIN_AGE)?);
    }
    Ok(out)
}

/// The worktrees (their directories and admin folders) each branch is checked out in, from
/// `<common>/worktrees/*/HEAD`, by full ref name.
fn worktrees_by_branch(common: &Path) -> std::collections::HashMap<String, Vec<PathBuf>> {
    let mut out: std::collections::HashMap<String, Vec<PathBuf>> = Default::default();
    for admin in std::fs::read_dir(common.join("worktrees"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let admin = admin.path();
        let Some(head) = std::fs::read_to_string(admin.join("HEAD")).ok() else {
            continue;
        };
        let Some(branch) = head.trim().strip_prefix("ref: ") else {
            continue;
        };
        let mut dirs = vec![canonical(&admin)];
        if let Ok(gitdir) = std::fs::read_to_string(admin.join("gitdir"))
            && let Some(dir) = Path::new(gitdir.trim()).parent()
        {
            dirs.push(canonical(dir));
        }
        out.entry(branch.to_owned()).or_default().extend(dirs);
    }
    out
}

fn find_locks(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_locks(&p, out);
        } else if p.extension().is_some_and(|x| x == "lock") {
            out.push(p);
        }
    }
}
