//! The sandbox an agent's process starts in (Linux, no privilege needed): a new user
//! namespace mapping the user to themselves, a new network namespace with only its own
//! loopback (up), Landlock filesystem rules (write only where the policy says, read only
//! what it lists) with the signal and abstract-socket scopes, and `no_new_privs`.
//!
//! The rules are built in sfd ([`prepare`], which may allocate and fail with a message);
//! the child applies them between fork and exec ([`Prepared::enter`]), with raw system
//! calls only, nothing that allocates or takes a lock. A kernel without unprivileged user
//! namespaces or Landlock makes [`prepare`] or the spawn fail: the sandbox fails closed.

use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;

use landlock::{
    ABI, Access as _, AccessFs, CompatLevel, Compatible as _, Ruleset, RulesetAttr as _,
    RulesetCreatedAttr as _, Scope, path_beneath_rules,
};
use nix::libc;

/// What a sandboxed process may reach.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Folders (or files) it may read, write, create and remove in.
    pub write: Vec<PathBuf>,
    /// Folders (or files) it may read and execute.
    pub read: Vec<PathBuf>,
    /// Keep the network (`false`: a network namespace of its own, loopback only).
    pub network: bool,
    /// Enter a user namespace of its own (and the network namespace): `false` for a kernel
    /// that refuses unprivileged user namespaces (`landlock-only`), where the host's network
    /// stays and only Landlock and `no_new_privs` confine.
    pub namespaces: bool,
    /// Without `network`: listen on this port of the sandbox's loopback and hand the
    /// listener to sfd (see [`Prepared::take_egress`]), which relays what it accepts there:
    /// the sandbox's only way out.
    pub egress: Option<u16>,
}

impl Policy {
    /// The system folders any program needs to read: binaries, libraries, `/etc`, `/proc`,
    /// `/dev` (and `/dev/null`, `/dev/tty` and friends writable), plus `extra`.
    pub fn system(extra: impl IntoIterator<Item = PathBuf>) -> Self {
        let read = [
            "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/dev", "/sys", "/opt",
            "/run",
        ]
        .into_iter()
        .map(PathBuf::from)
        .chain(extra)
        .collect();
        let write = [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/tty",
            "/dev/ptmx",
            "/dev/pts",
            "/dev/shm",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        Self {
            write,
            read,
            network: false,
            namespaces: true,
            egress: None,
        }
    }
}

/// Why the sandbox could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("cannot sandbox the process: {0}")]
pub struct SandboxError(String);

/// A policy ready to be entered by a child: the Landlock ruleset's descriptor and the
/// namespace maps, all made in sfd.
#[derive(Debug)]
pub struct Prepared {
    ruleset: OwnedFd,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    network: bool,
    namespaces: bool,
    /// The port of the egress listener and the child's end of the pair it is sent on.
    egress: Option<(u16, OwnedFd)>,
    /// sfd's end of that pair.
    egress_rx: Option<OwnedFd>,
}

/// The Landlock ABI whose rules sf relies on: 6 brings the signal and abstract-socket scopes.
const ABI_NEEDED: ABI = ABI::V6;

/// Builds the ruleset for `policy`. Fails when the kernel lacks what the sandbox needs.
pub fn prepare(policy: &Policy) -> Result<Prepared, SandboxError> {
    let err = |e: &dyn std::fmt::Display| SandboxError(format!("Landlock: {e}"));
    let created = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI_NEEDED))
        .map_err(|e| err(&e))?
        .scope(Scope::from_all(ABI_NEEDED))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(
            &policy.read,
            AccessFs::from_read(ABI_NEEDED),
        ))
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(
            &policy.write,
            AccessFs::from_all(ABI_NEEDED),
        ))
        .map_err(|e| err(&e))?;
    let ruleset: Option<OwnedFd> = created.into();
    let ruleset =
        ruleset.ok_or_else(|| SandboxError("Landlock is not enforced by this kernel".into()))?;
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let (egress, egress_rx) = match policy
        .egress
        .filter(|_| !policy.network && policy.namespaces)
    {
        Some(port) => {
            let (tx, rx) = std::os::unix::net::UnixStream::pair()
                .map_err(|e| SandboxError(format!("the egress channel: {e}")))?;
            (Some((port, OwnedFd::from(tx))), Some(OwnedFd::from(rx)))
        }
        None => (None, None),
    };
    Ok(Prepared {
        ruleset,
        uid_map: format!("{uid} {uid} 1\n").into_bytes(),
        gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        network: policy.network,
        namespaces: policy.namespaces,
        egress,
        egress_rx,
    })
}

impl Prepared {
    /// The user namespace (and, without `network`, the network namespace with its loopback
    /// up and the egress listener handed over).
    #[expect(unsafe_code, reason = "unshare between fork and exec")]
    fn enter_namespaces(&self) -> io::Result<()> {
        let mut flags = libc::CLONE_NEWUSER;
        if !self.network {
            flags |= libc::CLONE_NEWNET;
        }
        // SAFETY: plain system calls on this process's own state.
        // sfd is not dumpable (so that agents cannot read its memory), which a fork
        // inherits, and a process that is not dumpable has its /proc files owned by root:
        // an ordinary user could not write the child's namespace maps. The child is about to
        // exec the agent's program, which is dumpable again anyway.
        check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) })?;
        check(unsafe { libc::unshare(flags) })?;
        write_proc(c"/proc/self/setgroups", b"deny")?;
        write_proc(c"/proc/self/gid_map", &self.gid_map)?;
        write_proc(c"/proc/self/uid_map", &self.uid_map)?;
        if !self.network {
            loopback_up()?;
            if let Some((port, channel)) = &self.egress {
                hand_over_listener(*port, channel.as_raw_fd())?;
            }
        }
        Ok(())
    }

    /// sfd's end of the channel the sandbox's egress listener comes through (to give to
    /// [`receive_listener`] once the child has started); `None` without an egress port.
    pub fn take_egress(&mut self) -> Option<OwnedFd> {
        self.egress_rx.take()
    }

    /// Enters the sandbox: to be called in the child between fork and exec, where only
    /// async-signal-safe calls are allowed (no allocation, no locks).
    #[expect(unsafe_code, reason = "raw system calls between fork and exec")]
    pub(crate) fn enter(&self) -> io::Result<()> {
        if self.namespaces {
            self.enter_namespaces()?;
        }
        // SAFETY: plain system calls on this process's own state; nothing allocates.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
        check(unsafe {
            libc::syscall(
                libc::SYS_landlock_restrict_self,
                self.ruleset.as_raw_fd(),
                0,
            ) as libc::c_int
        })?;
        Ok(())
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[expect(unsafe_code, reason = "open/write/close between fork and exec")]
fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: a NUL-terminated path and a live buffer; the descriptor is closed here.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        check(fd)?;
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Brings up `lo` in the new network namespace (`SIOCSIFFLAGS` with `IFF_UP`).
#[expect(unsafe_code, reason = "socket/ioctl between fork and exec")]
fn loopback_up() -> io::Result<()> {
    // SAFETY: a zeroed ifreq on the stack with the name "lo"; the socket is closed here.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(sock)?;
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let e = io::Error::last_os_error();
        libc::close(sock);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Whether this kernel makes the sandbox of `policy`: a trivial program (`/bin/true`) is
/// started in it. Building the ruleset proves Landlock; only a spawn proves that
/// unprivileged user namespaces are allowed (some distributions refuse them).
pub fn probe(policy: &Policy) -> Result<(), SandboxError> {
    use std::os::unix::process::CommandExt as _;
    let prepared = std::sync::Arc::new(prepare(policy)?);
    let mut cmd = std::process::Command::new("/bin/true");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let inside = std::sync::Arc::clone(&prepared);
    // SAFETY: as in `process::enter_before_exec`: `enter` only makes async-signal-safe
    // system calls on data prepared before the fork.
    #[expect(unsafe_code, reason = "pre_exec runs in the forked child")]
    unsafe {
        cmd.pre_exec(move || inside.enter());
    }
    match cmd.status() {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(SandboxError(format!(
            "a probe in the sandbox exited with {st}"
        ))),
        Err(e) => Err(SandboxError(format!(
            "the kernel refused to start a process in it: {e}{}",
            if policy.namespaces {
                " (unprivileged user namespaces may be disabled: see README, \"The sandbox\")"
            } else {
                ""
            }
        ))),
    }
}

/// Listens on `127.0.0.1:port` of the sandbox's loopback and sends the listener over
/// `channel` (`SCM_RIGHTS`); the child keeps no copy.
#[expect(
    unsafe_code,
    reason = "socket/bind/listen/sendmsg between fork and exec"
)]
fn hand_over_listener(port: u16, channel: libc::c_int) -> io::Result<()> {
    /// Room for one descriptor's control message, aligned as `cmsghdr` needs.
    #[repr(C, align(8))]
    struct Control([u8; 64]);
    // SAFETY: stack buffers that outlive each call; the control buffer is larger than
    // CMSG_SPACE(sizeof(int)) and aligned for a cmsghdr; the socket is closed here.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        check(sock)?;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let mut r = libc::bind(
            sock,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r == 0 {
            r = libc::listen(sock, 128);
        }
        if r == 0 {
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut control = Control([0; 64]);
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), sock);
            r = libc::sendmsg(channel, &raw const msg, libc::MSG_NOSIGNAL) as libc::c_int;
        }
        let e = io::Error::last_os_error();
        libc::close(sock);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Receives the listener a sandboxed child handed over before its exec (the child has
/// started, so it is waiting in `channel` already).
pub fn receive_listener(channel: OwnedFd) -> io::Result<std::net::TcpListener> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let msg = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just gave this process the descriptor; nothing else owns it
            #[expect(unsafe_code, reason = "taking ownership of a received descriptor")]
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            return Ok(listener);
        }
    }
    Err(io::Error::other("the sandbox sent no listener"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::launcher::{EndReason, Kind, Limits, RunSpec, launch};

    /// `script` run by bash in `work`, in the sandbox of `policy`; its stdout and stderr
    /// go to `<work>/out`.
    fn bash(work: &Path, policy: Option<Policy>, script: &str) -> RunSpec {
        RunSpec {
            sandbox: policy,
            program: "/bin/bash".into(),
            ..RunSpec::shell(
                Kind::Agent,
                script,
                work,
                &work.join("out"),
                Limits {
                    wall: Duration::from_secs(30),
                    grace: Duration::from_millis(200),
                    stall: None,
                },
            )
        }
    }

    /// Runs `script` with bash in the sandbox of `policy`; its stdout and stderr go to
    /// `<work>/out`.
    async fn run(
        dir: &Path,
        policy: Option<Policy>,
        script: &str,
    ) -> (EndReason, Option<i32>, String) {
        let work = dir.join("work");
        let spec = bash(&work, policy, script);
        let ended = launch(spec)
            .expect("launch")
            .wait(std::future::pending())
            .await;
        let out = std::fs::read_to_string(work.join("out")).unwrap_or_default();
        (ended.why, ended.exit.and_then(|e| e.code), out)
    }

    fn setup() -> (tempfile::TempDir, Policy) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("work")).expect("mkdir");
        std::fs::write(dir.path().join("secret"), "the user's token").expect("secret");
        let mut policy = Policy::system([]);
        policy.write.push(dir.path().join("work"));
        (dir, policy)
    }

    fn escapes(d: &Path) -> String {
        let d = d.display();
        format!(
            "set -u
             echo allowed > {d}/work/inside && echo WRITE-INSIDE-OK
             echo planted > {d}/outside 2>/dev/null && echo ESCAPED-WRITE
             cat {d}/secret 2>/dev/null && echo ESCAPED-READ
             kill -0 $PPID 2>/dev/null && echo ESCAPED-SIGNAL
             test \"$(id -u)\" = \"{uid}\" && echo SAME-UID
             exit 0",
            uid = nix::unistd::geteuid()
        )
    }

    /// Each escape is tried and must fail; what the policy allows still works.
    #[tokio::test]
    async fn a_sandboxed_process_reaches_only_what_its_policy_lists() {
        let (dir, policy) = setup();
        let (why, code, out) = run(dir.path(), Some(policy), &escapes(dir.path())).await;
        assert_eq!((why, code), (EndReason::Exited, Some(0)), "{out}");
        assert!(out.contains("WRITE-INSIDE-OK"), "{out}");
        assert!(out.contains("SAME-UID"), "{out}");
        assert!(!out.contains("ESCAPED"), "{out}");
        assert!(!dir.path().join("outside").exists());
    }

    /// The check of the escapes can fail: unsandboxed, the same script gets out.
    #[tokio::test]
    async fn the_same_escapes_succeed_without_the_sandbox() {
        let (dir, _) = setup();
        let (_, _, out) = run(dir.path(), None, &escapes(dir.path())).await;
        for escape in ["ESCAPED-WRITE", "ESCAPED-READ", "ESCAPED-SIGNAL"] {
            assert!(out.contains(escape), "{escape}: {out}");
        }
    }

    /// The host's loopback is another network: a server listening there is not reached;
    /// the sandbox's own loopback is up.
    #[tokio::test]
    async fn a_sandboxed_process_has_no_network_but_its_own_loopback() {
        let (dir, policy) = setup();
        let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        host.set_nonblocking(true).expect("nonblocking");
        let port = host.local_addr().expect("addr").port();
        let script = format!(
            "(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo ESCAPED-NETWORK
             ip -o link show lo | grep -q ',UP' && echo LOOPBACK-UP
             test \"$(ip -o link | wc -l)\" = 1 && echo ONLY-LOOPBACK
             exit 0"
        );
        let (why, code, out) = run(dir.path(), Some(policy), &script).await;
        assert_eq!((why, code), (EndReason::Exited, Some(0)), "{out}");
        assert!(!out.contains("ESCAPED"), "{out}");
        assert!(out.contains("LOOPBACK-UP"), "{out}");
        assert!(out.contains("ONLY-LOOPBACK"), "{out}");
        assert!(
            host.accept().is_err(),
            "the host's listener was reached from inside the sandbox"
        );
    }

    /// With an egress port, what the sandboxed process sends to its own loopback at that
    /// port reaches whoever holds the handed-over listener (sfd's proxy), and back.
    #[tokio::test]
    async fn the_egress_listener_is_handed_to_the_launcher() {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        let (dir, mut policy) = setup();
        policy.egress = Some(3128);
        let work = dir.path().join("work");
        let script = "exec 3<>/dev/tcp/127.0.0.1/3128 && echo hello >&3 && read -r line <&3 && echo \"got $line\"";
        let spec = bash(&work, Some(policy), script);
        let mut run = launch(spec).expect("launch");
        let listener = run.take_egress().expect("the listener was handed over");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let (conn, _) = listener.accept().await.expect("accept");
        let mut conn = tokio::io::BufReader::new(conn);
        let mut line = String::new();
        conn.read_line(&mut line).await.expect("read");
        assert_eq!(line, "hello\n");
        conn.get_mut().write_all(b"world\n").await.expect("write");
        let ended = run.wait(std::future::pending()).await;
        let out = std::fs::read_to_string(work.join("out")).unwrap_or_default();
        assert!(ended.success(), "{out}");
        assert_eq!(out.trim(), "got world");
    }

    /// With `network` the process keeps the host's network (for a trusted setup).
    #[tokio::test]
    async fn network_can_be_kept() {
        let (dir, mut policy) = setup();
        policy.network = true;
        let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = host.local_addr().expect("addr").port();
        let script = format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) && echo CONNECTED\nexit 0");
        let (_, _, out) = run(dir.path(), Some(policy), &script).await;
        assert!(out.contains("CONNECTED"), "{out}");
    }
}
