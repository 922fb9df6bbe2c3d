//! Where a workspace keeps its files, shared by the daemon and its clients so that both
//! compute the same socket path without talking to each other.

use std::path::{Path, PathBuf};

/// Name of the workspace directory inside a repository.
pub const SF_DIR: &str = ".sf";

/// Unix socket paths longer than this do not fit in `sockaddr_un` on every platform.
pub const MAX_SOCKET_PATH: usize = 100;

/// The files of one workspace, all derived from its root (the repository's top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePaths {
    /// The repository top level.
    pub root: PathBuf,
    /// `<root>/.sf`.
    pub dir: PathBuf,
}

impl WorkspacePaths {
    /// Paths of the workspace rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let dir = root.join(SF_DIR);
        Self { root, dir }
    }
    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    /// The policy: what agents may do (`sf_core::guard`).
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.toml")
    }
    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.dir.join("sf.db")
    }
    /// The lock held by the one daemon of this workspace.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("sfd.lock")
    }
    /// The log of a daemon started in the background by `sfctl daemon start`.
    pub fn daemon_log(&self) -> PathBuf {
        self.logs().join("sfd.log")
    }
    /// Per-run worker logs.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// Task worktrees.
    pub fn worktrees(&self) -> PathBuf {
        self.dir.join("worktrees")
    }
    /// Role prompt overrides.
    pub fn prompts(&self) -> PathBuf {
        self.dir.join("prompts")
    }
    /// The user's playbooks.
    pub fn playbooks(&self) -> PathBuf {
        self.dir.join("playbooks")
    }
    /// The directory (mode 0700, owned by the user) that holds the socket: `.sf/run`, unless
    /// the socket path would be too long; see [`Self::socket_dir_in`].
    pub fn socket_dir(&self) -> PathBuf {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        self.socket_dir_in(runtime.as_deref())
    }

    /// The socket directory when `XDG_RUNTIME_DIR` is `runtime`. `.sf/run` when the socket
    /// path fits; else `<runtime>/sf-<hash of the root>` (the runtime directory is the
    /// user's own), or without one `/tmp/sf-<euid>-<hash>`. That last name can be predicted,
    /// so sfd uses it only if it creates it itself or finds it owned by the same user, and
    /// sfctl checks who listens on the socket before sending anything.
    pub fn socket_dir_in(&self, runtime: Option<&Path>) -> PathBuf {
        let local = self.dir.join("run");
        if local.join("sfd.sock").as_os_str().len() <= MAX_SOCKET_PATH {
            return local;
        }
        let hash = fnv1a(self.root.as_os_str().as_encoded_bytes());
        match runtime.filter(|p| p.is_absolute()) {
            Some(runtime) => runtime.join(format!("sf-{hash:016x}")),
            None => PathBuf::from(format!("/tmp/sf-{}-{hash:016x}", euid())),
        }
    }

    /// The daemon's socket. Inside `.sf/run/` unless that path would be too long, in which
    /// case it moves to a per-workspace directory under `$XDG_RUNTIME_DIR` (or `/tmp`).
    pub fn socket(&self) -> PathBuf {
        self.socket_dir().join("sfd.sock")
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Walks up from `start` to the first directory holding `.sf/`.
pub fn find_workspace(start: &Path) -> Option<WorkspacePaths> {
    start
        .ancestors()
        .find(|dir| dir.join(SF_DIR).join("config.toml").is_file())
        .map(WorkspacePaths::new)
}

/// When [`find_workspace`] finds nothing: the first `.sf/` above `start` that exists but
/// cannot be read (another user's private workspace), and the uid that owns it.
pub fn unreadable_workspace(start: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    start.ancestors().find_map(|dir| {
        let sf = dir.join(SF_DIR);
        let meta = std::fs::symlink_metadata(&sf).ok()?;
        let denied = std::fs::metadata(sf.join("config.toml"))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
        (meta.is_dir() && denied).then(|| (sf, meta.uid()))
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_roots_keep_the_socket_inside_the_workspace() {
        let p = WorkspacePaths::new("/tmp/repo");
        assert_eq!(p.socket(), PathBuf::from("/tmp/repo/.sf/run/sfd.sock"));
    }

    #[test]
    fn long_roots_move_the_socket_somewhere_that_fits() {
        let long = format!("/tmp/{}", "d".repeat(150));
        let p = WorkspacePaths::new(&long);
        let sock = p.socket();
        assert!(sock.as_os_str().len() <= 108, "{}", sock.display());
        assert_ne!(sock, WorkspacePaths::new("/tmp/other").socket());
        assert_eq!(
            sock,
            WorkspacePaths::new(&long).socket(),
            "stable across calls"
        );
    }

    #[test]
    fn without_a_runtime_dir_the_fallback_names_the_user() {
        let long = WorkspacePaths::new(format!("/tmp/{}", "d".repeat(150)));
        let tmp = long.socket_dir_in(None);
        let name = tmp.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(tmp.starts_with("/tmp"), "{}", tmp.display());
        assert!(name.starts_with(&format!("sf-{}-", euid())), "{name}");
        let rt = long.socket_dir_in(Some(Path::new("/run/user/1000")));
        assert_eq!(rt.parent(), Some(Path::new("/run/user/1000")));
        assert!(
            rt.to_str().unwrap().starts_with("/run/user/1000/sf-"),
            "{}",
            rt.display()
        );
        assert_eq!(
            long.socket_dir_in(Some(Path::new("relative"))),
            tmp,
            "a relative XDG_RUNTIME_DIR is ignored"
        );
        let short = WorkspacePaths::new("/tmp/repo");
        assert_eq!(
            short.socket_dir_in(None),
            PathBuf::from("/tmp/repo/.sf/run")
        );
    }
}
