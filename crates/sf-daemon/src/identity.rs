//! Who is calling, from the kernel rather than from what the caller says. Each run sfd
//! starts in its sandbox has a user namespace of its own; the owner records it when the
//! run starts and forgets it when the run ends. On accept, the server reads the peer's pid
//! (`SO_PEERCRED`) and its user namespace: sfd's own is the user (the actor the client
//! names is kept), a run's is that run's agent whatever the client claims (`SF_AGENT`,
//! `SF_RUN` and `USER` removed or changed make no difference: a process cannot leave its
//! namespace), and any other is refused.
//!
//! With `[sandbox] mode = "off"` runs share sfd's namespace, and the client's word is all
//! there is (`daemon status` says which).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The user namespace of process `pid` (the inode of `/proc/<pid>/ns/user`).
pub(crate) fn user_namespace(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("user:[")?.strip_suffix(']')?.parse().ok()
}

/// The pid of the live process a pidfd refers to (`None` once it has exited: the kernel
/// then says `-1`), from `/proc/self/fdinfo`.
pub(crate) fn pidfd_pid(pidfd: &std::os::fd::OwnedFd) -> Option<i32> {
    use std::os::fd::AsRawFd as _;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    let line = info.lines().find(|l| l.starts_with("Pid:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
}

/// Whether the kernel says process `pid` runs with `no_new_privs` (which nothing can clear:
/// every sandboxed run has it).
pub(crate) fn no_new_privs(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NoNewPrivs:"))?;
    Some(line.split_whitespace().nth(1)? == "1")
}

/// Who a connection's peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A process in sfd's own user namespace: the user.
    User,
    /// A process in the namespace of a live run of this agent.
    Agent(String),
    /// `landlock-only`: a confined process (`no_new_privs`), so an agent, but which one the
    /// kernel does not say; these agents have live runs.
    SomeAgent(Vec<String>),
    /// A process in a namespace sfd did not make (or of a run that ended).
    Unknown,
}

/// The user namespaces of the live sandboxed runs, by run.
#[derive(Debug, Clone)]
pub(crate) struct Identities {
    own: Option<u64>,
    runs: Arc<RwLock<HashMap<u64, (i64, String)>>>,
    /// The agents of the live runs, by run (every mode).
    live: Arc<RwLock<HashMap<i64, String>>>,
    /// How callers are told apart: `[sandbox] mode`.
    mode: Arc<RwLock<Option<crate::config::SandboxMode>>>,
}

impl Identities {
    pub(crate) fn new() -> Self {
        Self {
            own: user_namespace(std::process::id()),
            runs: Arc::default(),
            live: Arc::default(),
            mode: Arc::default(),
        }
    }

    /// How runs are sandboxed, as the configuration (re)loaded says.
    pub(crate) fn enforce(&self, mode: crate::config::SandboxMode) {
        *self
            .mode
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mode);
    }

    /// Run `run_id` of `agent`, whose process is `pid`, has started: if it is in a
    /// namespace of its own, calls from that namespace are that agent's.
    pub(crate) fn started(&self, run_id: i64, agent: &str, pid: u32) {
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(run_id, agent.to_owned());
        match user_namespace(pid) {
            Some(ns) if Some(ns) != self.own => {
                self.write().insert(ns, (run_id, agent.to_owned()));
            }
            _ => {}
        }
    }

    /// Run `run_id` has ended: its namespace names nobody any more.
    pub(crate) fn ended(&self, run_id: i64) {
        self.write().retain(|_, (id, _)| *id != run_id);
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&run_id);
    }

    /// Who the process `pid` is. Without the sandbox every run shares sfd's namespace and
    /// every caller is the user's (whose client names the actor). In `landlock-only` a
    /// confined caller is some agent (see [`Caller::SomeAgent`]).
    pub(crate) fn caller(&self, pid: Option<i32>) -> Caller {
        use crate::config::SandboxMode;
        let mode = *self
            .mode
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pid = pid.and_then(|p| u32::try_from(p).ok());
        match mode {
            None | Some(SandboxMode::Off) => Caller::User,
            Some(SandboxMode::LandlockOnly) => match pid.and_then(no_new_privs) {
                Some(false) => Caller::User,
                Some(true) => Caller::SomeAgent(
                    self.live
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .values()
                        .cloned()
                        .collect(),
                ),
                None => Caller::Unknown,
            },
            Some(SandboxMode::Full { .. }) => match pid.and_then(user_namespace) {
                None => Caller::Unknown,
                Some(ns) if Some(ns) == self.own => Caller::User,
                Some(ns) => self
                    .runs
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&ns)
                    .map_or(Caller::Unknown, |(_, agent)| Caller::Agent(agent.clone())),
            },
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, (i64, String)>> {
        self.runs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod pidfd_tests {
    /// The pidfd of a connection's peer names the live peer (here: this process, at both
    /// ends of a pair).
    #[test]
    fn a_peers_pidfd_names_its_pid_while_it_lives() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let fd = nix::sys::socket::getsockopt(&a, nix::sys::socket::sockopt::PeerPidfd)
            .expect("SO_PEERPIDFD (Linux 6.5+)");
        assert_eq!(
            super::pidfd_pid(&fd),
            i32::try_from(std::process::id()).ok()
        );
    }
}
