//! Keeping a workspace private to its user: the socket directory must be the user's own
//! (another user who owns it could swap the socket and read every request), and `.sf/`
//! holds the database (with lease tokens), run logs and prompts, so its folders are 0700
//! and its files 0600. sf's own files are created with those modes explicitly rather than
//! through a umask, which workers would inherit for the user's repository files.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::bail;
use sf_proto::paths::WorkspacePaths;

/// Mode of sf's own directories.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of sf's own files.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Makes sure that `dir` is a directory only `uid` can use before a socket goes in it:
/// creates it (mode 0700) if missing, then checks with `lstat` that it is a directory, not
/// a symlink, owned by `uid`. A directory sf manages (`managed`) is then set to 0700; one the
/// user chose with `--socket` is left as it is but refused if others may write in it.
pub(crate) fn socket_dir(dir: &Path, uid: u32, managed: bool) -> anyhow::Result<()> {
    let way_out = if managed {
        "set XDG_RUNTIME_DIR to a directory of your own, or move the workspace to a shorter \
         path so that the socket fits in .sf/run; if you trust that directory, remove it"
    } else {
        "choose a --socket (SF_SOCKET) in a directory that only you can write to, such as \
         $XDG_RUNTIME_DIR"
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => bail!(
            "failed to create the socket directory {}: {e}; {way_out}",
            dir.display()
        ),
    }
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| anyhow::anyhow!("failed to inspect {}: {e}", dir.display()))?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        bail!(
            "refusing the socket directory {}: it is a symlink or not a directory; {way_out}",
            dir.display()
        );
    }
    if meta.uid() != uid {
        bail!(
            "refusing the socket directory {}: it belongs to uid {}, not to you (uid {uid}), \
             so its owner could replace the socket and read your requests; {way_out}",
            dir.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if managed {
        if mode != DIR_MODE {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| anyhow::anyhow!("failed to make {} private: {e}", dir.display()))?;
        }
    } else if mode & 0o022 != 0 {
        bail!(
            "refusing the socket directory {}: others may write in it (mode {mode:o}); {way_out}",
            dir.display()
        );
    }
    Ok(())
}

/// A mode changed by [`repair_modes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repair {
    pub path: PathBuf,
    pub from: u32,
    pub to: u32,
}

/// Sets `.sf/` and the folders under it to 0700 and sf's files to 0600, returning what it
/// changed and what it could not. It looks into `.sf/` and, all the way down, into the
/// folders whose files are sf's own (`logs`, `prompts`, `playbooks`, `run`); any other
/// folder (`worktrees`, `merge`: checkouts of the user's repository, whose files keep their
/// modes) is made 0700 but not entered. Symlinks and the socket are left alone.
pub(crate) fn repair_modes(paths: &WorkspacePaths) -> (Vec<Repair>, Vec<String>) {
    const SF_FOLDERS: [&str; 4] = ["logs", "prompts", "playbooks", "run"];
    let mut repaired = Vec::new();
    let mut failed = Vec::new();
    // (path, whether to look inside if it is a folder)
    let mut stack = vec![(paths.dir.clone(), true)];
    while let Some((path, enter)) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    failed.push(format!("{}: {e}", path.display()));
                }
                continue;
            }
        };
        let kind = meta.file_type();
        let want = if kind.is_dir() {
            DIR_MODE
        } else if kind.is_file() {
            FILE_MODE
        } else {
            continue; // symlinks, the socket
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode != want {
            match fs::set_permissions(&path, fs::Permissions::from_mode(want)) {
                Ok(()) => repaired.push(Repair {
                    path: path.clone(),
                    from: mode,
                    to: want,
                }),
                Err(e) => failed.push(format!("{}: {e}", path.display())),
            }
        }
        if !(kind.is_dir() && enter) {
            continue;
        }
        let top = path == paths.dir;
        match fs::read_dir(&path) {
            Ok(entries) => stack.extend(entries.flatten().map(|e| {
                let inner = !top || SF_FOLDERS.iter().any(|f| e.file_name() == *f);
                (e.path(), inner)
            })),
            Err(e) => failed.push(format!("{}: {e}", path.display())),
        }
    }
    repaired.sort_by(|a, b| a.path.cmp(&b.path));
    (repaired, failed)
}

/// [`repair_modes`], reported in the log: one line per change (the first 20) and a count.
pub(crate) fn repair_and_report(paths: &WorkspacePaths) {
    const SHOWN: usize = 20;
    let (repaired, failed) = repair_modes(paths);
    for r in repaired.iter().take(SHOWN) {
        tracing::warn!(
            path = %r.path.display(),
            from = format_args!("{:o}", r.from),
            to = format_args!("{:o}", r.to),
            "repaired the mode of a workspace file that other users could reach"
        );
    }
    if repaired.len() > SHOWN {
        tracing::warn!(
            more = repaired.len() - SHOWN,
            "repaired the modes of more workspace files"
        );
    }
    for f in &failed {
        tracing::warn!(error = %f, "failed to make a workspace file private");
    }
}

/// Creates (or truncates) `path` with mode 0600 and writes `bytes` to it.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.write_all(bytes)
}

/// Creates the folder `path` (and its parents) with mode 0700.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates `path` empty with mode 0600 if it does not exist (for the database, whose
/// `-wal` and `-shm` files SQLite then creates with the same mode).
pub(crate) fn create_file(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn me() -> u32 {
        sf_proto::paths::euid()
    }

    #[test]
    fn a_missing_socket_dir_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sf-x");
        socket_dir(&dir, me(), true).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(fs::metadata(&dir).unwrap().uid(), me());
    }

    #[test]
    fn an_own_socket_dir_is_made_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        socket_dir(&dir, me(), true).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    /// A directory of someone else: without root we cannot chown one, so the check is asked
    /// for another uid than the directory's owner, which is the same comparison.
    #[test]
    fn a_socket_dir_of_another_user_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sf-squatted");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let other = me().wrapping_add(1);
        let err = socket_dir(&dir, other, true).unwrap_err().to_string();
        assert!(err.contains(&format!("belongs to uid {}", me())), "{err}");
        assert!(err.contains("XDG_RUNTIME_DIR"), "{err}");
        assert_eq!(mode(&dir), 0o777, "not touched");
    }

    #[test]
    fn a_symlinked_socket_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        fs::create_dir(&target).unwrap();
        let link = tmp.path().join("sf-link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = socket_dir(&link, me(), true).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
    }

    #[test]
    fn a_chosen_socket_dir_is_not_chmodded_but_must_not_be_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mine");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        socket_dir(&dir, me(), false).unwrap();
        assert_eq!(mode(&dir), 0o755, "the user's directory keeps its mode");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = socket_dir(&dir, me(), false).unwrap_err().to_string();
        assert!(err.contains("others may write"), "{err}");
        assert!(err.contains("--socket"), "{err}");
    }

    #[test]
    fn modes_are_repaired_except_inside_checkouts() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = WorkspacePaths::new(tmp.path());
        let wt = ws.worktrees().join("t1");
        fs::create_dir_all(&wt).unwrap();
        let merge = ws.dir.join("merge/mr-1");
        fs::create_dir_all(&merge).unwrap();
        fs::write(merge.join("run.sh"), "x").unwrap();
        fs::set_permissions(merge.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(ws.logs().join("old")).unwrap();
        fs::write(ws.logs().join("old/a.log"), "x").unwrap();
        fs::create_dir_all(ws.logs()).unwrap();
        fs::write(ws.db(), "").unwrap();
        fs::write(ws.logs().join("run.log"), "x").unwrap();
        fs::write(wt.join("script.sh"), "x").unwrap();
        for (p, m) in [
            (&ws.dir, 0o755),
            (&ws.db(), 0o644),
            (&ws.logs(), 0o755),
            (&ws.logs().join("run.log"), 0o644),
            (&ws.worktrees(), 0o755),
            (&wt, 0o755),
            (&ws.logs().join("old"), 0o755),
            (&ws.logs().join("old/a.log"), 0o644),
            (&ws.dir.join("merge"), 0o755),
            (&wt.join("script.sh"), 0o755),
        ] {
            fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        }
        let outside = tmp.path().join("outside.txt");
        fs::write(&outside, "x").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, ws.dir.join("link")).unwrap();
        let (repaired, failed) = repair_modes(&ws);
        assert!(failed.is_empty(), "{failed:?}");
        let names: Vec<_> = repaired
            .iter()
            .map(|r| {
                r.path
                    .strip_prefix(tmp.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                ".sf",
                ".sf/logs",
                ".sf/logs/old",
                ".sf/logs/old/a.log",
                ".sf/logs/run.log",
                ".sf/merge",
                ".sf/sf.db",
                ".sf/worktrees"
            ]
        );
        assert_eq!(
            mode(&merge.join("run.sh")),
            0o755,
            "a merge checkout's file"
        );
        assert_eq!(mode(&ws.db()), 0o600);
        assert_eq!(
            mode(&wt.join("script.sh")),
            0o755,
            "the user's file is theirs"
        );
        assert_eq!(mode(&outside), 0o644, "symlinks are not followed");
        let (again, _) = repair_modes(&ws);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn files_are_written_private() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("prompt.md");
        write_file(&p, b"hello").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        let db = tmp.path().join("sf.db");
        create_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }
}
