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

/// Who a connection's peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A process in sfd's own user namespace: the user.
    User,
    /// A process in the namespace of a live run of this agent.
    Agent(String),
    /// A process in a namespace sfd did not make (or of a run that ended).
    Unknown,
}

/// The user namespaces of the live sandboxed runs, by run.
#[derive(Debug, Clone)]
pub(crate) struct Identities {
    own: Option<u64>,
    runs: Arc<RwLock<HashMap<u64, (i64, String)>>>,
    /// Runs are sandboxed (`[sandbox] mode = "full"`): only then do namespaces tell runs
    /// from the user, and only then is an unknown namespace refused.
    enforced: Arc<std::sync::atomic::AtomicBool>,
}

impl Identities {
    pub(crate) fn new() -> Self {
        Self {
            own: user_namespace(std::process::id()),
            runs: Arc::default(),
            enforced: Arc::default(),
        }
    }

    /// Whether runs are sandboxed, as the configuration (re)loaded says.
    pub(crate) fn enforce(&self, on: bool) {
        self.enforced
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run `run_id` of `agent`, whose process is `pid`, has started: if it is in a
    /// namespace of its own, calls from that namespace are that agent's.
    pub(crate) fn started(&self, run_id: i64, agent: &str, pid: u32) {
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
    }

    /// Who the process `pid` is. Without the sandbox every run shares sfd's namespace and
    /// every caller is the user's (whose client names the actor).
    pub(crate) fn caller(&self, pid: Option<i32>) -> Caller {
        if !self.enforced.load(std::sync::atomic::Ordering::Relaxed) {
            return Caller::User;
        }
        let ns = pid
            .and_then(|p| u32::try_from(p).ok())
            .and_then(user_namespace);
        match ns {
            None => Caller::Unknown,
            Some(ns) if Some(ns) == self.own => Caller::User,
            Some(ns) => self
                .runs
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&ns)
                .map_or(Caller::Unknown, |(_, agent)| Caller::Agent(agent.clone())),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, (i64, String)>> {
        self.runs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
