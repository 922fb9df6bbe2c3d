//! Adding a linked worktree by writing git's metadata for it ourselves.
//!
//! libgit2's `git_worktree_add` first asks `git_branch_is_checked_out`, which opens every
//! linked worktree as a repository (its config, HEAD and gitdir): about 0.13 ms per worktree
//! on disk, paid on every dispatch while tasks waiting for review keep theirs. Here a new
//! branch is not checked anywhere (nothing can have it checked out) and an existing one is
//! checked by reading `HEAD` files, so the cost of an add does not grow with the worktrees
//! already there. The layout is git's own (`git worktree add`):
//!
//! ```text
//! <path>/.git                       gitdir: <common>/worktrees/<name>
//! <common>/worktrees/<name>/gitdir  <path>/.git
//! <common>/worktrees/<name>/commondir  ../..
//! <common>/worktrees/<name>/HEAD    ref: refs/heads/<branch>   (or a commit id)
//! ```
//!
//! `HEAD` is written last, by a rename: git and libgit2 only count a directory under
//! `worktrees/` with all three files as a worktree, so readers in other threads (libgit2's
//! own walks, e.g. in `git_branch_delete`) never see one half-made.
//!
//! A process killed while adding a worktree (or while checking its files out) leaves it
//! half-made: an admin folder without `gitdir` or `HEAD`, or a checkout with files missing.
//! Committing such a worktree would record the missing files as deletions, so the admin
//! folder carries a marker, [`INCOMPLETE`], from its first moment until the caller has
//! checked the files out ([`finish`]). [`is_half_made`] recognises both states; such a
//! worktree never had a worker in it and is rebuilt, never reused.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::{Ctx, GitError};

/// The marker file in a worktree's admin folder while it is being made.
pub(crate) const INCOMPLETE: &str = "sf-incomplete";

/// Whether the admin folder `admin` (`<common>/worktrees/<name>`) belongs to a worktree
/// whose creation was cut short: the marker is still there, or git's own files are not all
/// written.
pub(crate) fn is_half_made(admin: &Path) -> bool {
    admin.join(INCOMPLETE).exists()
        || !admin.join("gitdir").exists()
        || !admin.join("HEAD").exists()
}

/// Marks the worktree opened as `wt` complete: its files are checked out.
pub(crate) fn finish(wt: &Repository) -> Result<(), GitError> {
    let marker = wt.path().join(INCOMPLETE);
    match std::fs::remove_file(&marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GitError::Io {
            what: format!("remove {}", marker.display()),
            source,
        }),
    }
}

/// What the new worktree's HEAD is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Head<'a> {
    /// A local branch, by short name; it must exist.
    Branch {
        /// The branch.
        name: &'a str,
        /// Whether the caller just created it (then no worktree can have it checked out).
        new: bool,
    },
    /// Detached at a commit.
    Detached(Oid),
}

/// Adds the worktree `name` at `path` (which must not exist; its parent must) with `head`,
/// and returns it opened, with nothing checked out yet and marked [`INCOMPLETE`] until the
/// caller calls [`finish`]. Fails if `name` is taken or, like
/// git, if an existing branch is checked out in another worktree.
pub(crate) fn add(
    repo: &Repository,
    name: &str,
    path: &Path,
    head: Head<'_>,
) -> Result<Repository, GitError> {
    let what = || format!("add worktree `{name}` at {}", path.display());
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(GitError::Op {
            what: what(),
            source: git2::Error::from_str("invalid worktree name"),
        });
    }
    let head_text = match head {
        Head::Branch { name: b, .. } => format!("ref: refs/heads/{b}\n"),
        Head::Detached(oid) => format!("{oid}\n"),
    };
    let admin_root = repo.commondir().join("worktrees");
    let admin = admin_root.join(name);
    let serial = add_lock();
    if let Head::Branch {
        name: b,
        new: false,
    } = head
        && let Some(at) = checked_out_at(repo, &format!("refs/heads/{b}"))?
    {
        return Err(GitError::Op {
            what: what(),
            source: git2::Error::from_str(&format!(
                "branch `{b}` is already checked out at {}",
                at.display()
            )),
        });
    }
    std::fs::create_dir_all(&admin_root)
        .map_err(io(|| format!("create {}", admin_root.display())))?;
    std::fs::create_dir(&admin).map_err(io(|| format!("create {}", admin.display())))?;
    if let Err(source) = std::fs::write(admin.join(INCOMPLETE), b"") {
        let _ = std::fs::remove_dir_all(&admin);
        return Err(GitError::Io {
            what: format!("write {}", admin.join(INCOMPLETE).display()),
            source,
        });
    }
    if let Err(source) = std::fs::create_dir(path) {
        let _ = std::fs::remove_dir_all(&admin);
        return Err(GitError::Io {
            what: format!("create {}", path.display()),
            source,
        });
    }
    let written = write_metadata(&admin, path, &head_text);
    drop(serial);
    let opened = written.and_then(|()| {
        Repository::open(path).ctx(|| format!("open the new worktree at {}", path.display()))
    });
    if opened.is_err() {
        // best effort: leave nothing a retry would trip over
        let _ = std::fs::remove_dir_all(path);
        let _ = std::fs::remove_dir_all(&admin);
    }
    opened
}

fn write_metadata(admin: &Path, path: &Path, head: &str) -> Result<(), GitError> {
    let canonical =
        |p: &Path| std::fs::canonicalize(p).map_err(io(|| format!("resolve {}", p.display())));
    let (admin, path) = (canonical(admin)?, canonical(path)?);
    let dot_git = path.join(".git");
    // bytes, not `display()`: a path need not be UTF-8
    let line =
        |prefix: &str, p: &Path| [prefix.as_bytes(), p.as_os_str().as_bytes(), b"\n"].concat();
    let write = |file: &Path, bytes: &[u8]| {
        std::fs::write(file, bytes).map_err(io(|| format!("write {}", file.display())))
    };
    write(&dot_git, &line("gitdir: ", &admin))?;
    write(&admin.join("commondir"), b"../..\n")?;
    write(&admin.join("gitdir"), &line("", &dot_git))?;
    let (temp, head_file) = (admin.join("HEAD.lock"), admin.join("HEAD"));
    write(&temp, head.as_bytes())?;
    std::fs::rename(&temp, &head_file).map_err(io(|| format!("write {}", head_file.display())))
}

/// Where `refname` is checked out: the main working tree or a linked worktree whose
/// directory still exists (libgit2 and git skip those that are gone, too).
fn checked_out_at(repo: &Repository, refname: &str) -> Result<Option<PathBuf>, GitError> {
    let common = repo.commondir();
    let is_on = |head: &Path| {
        std::fs::read_to_string(head).is_ok_and(|t| {
            t.trim_end()
                .strip_prefix("ref:")
                .is_some_and(|r| r.trim() == refname)
        })
    };
    if !repo.is_bare() && is_on(&common.join("HEAD")) {
        let main = common.parent().unwrap_or(common);
        return Ok(Some(main.to_owned()));
    }
    let dir = common.join("worktrees");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(GitError::Io {
                what: format!("list {}", dir.display()),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        if !is_on(&entry.path().join("HEAD")) {
            continue;
        }
        let name = entry.file_name();
        if let Some(wt) = name.to_str().and_then(|n| repo.find_worktree(n).ok())
            && wt.validate().is_ok()
        {
            return Ok(Some(wt.path().to_owned()));
        }
    }
    Ok(None)
}

fn io(what: impl FnOnce() -> String) -> impl FnOnce(std::io::Error) -> GitError {
    |source| GitError::Io {
        what: what(),
        source,
    }
}

/// Serialises adding worktrees within the process, so that two adds of the same existing
/// branch cannot both pass the "checked out elsewhere" check. Held for the check and the
/// metadata only, not for the checkout.
fn add_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
