//! The socket: bind with safe permissions, accept, check the peer, handshake, then
//! forward each request to the owner and write its response.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context as _;

use crate::identity::Caller;
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName as _};
use interprocess::os::unix::local_socket::ListenerOptionsExt as _;
use sf_proto::{
    AuditEvent, ErrorKind, HANDSHAKE_TIMEOUT_SECS, Hello, MAX_FRAME, MAX_HELLO_FRAME,
    PROTOCOL_VERSION, ProtoError, Request, Response,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::mailbox::{Answer, DaemonHandle, Following};

/// `max_connections` and `idle_timeout` of config.toml.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once; one more is answered with a refusal and closed.
    pub max_connections: usize,
    /// How long a connection may sit between requests (follow streams excepted).
    pub idle_timeout: Duration,
}
/// Request bytes held in memory across all connections at once: the body of a frame over
/// [`MAX_HELLO_FRAME`] is read only once its length is reserved here, so clients stalled
/// inside large frames cannot add up (smaller frames are bounded by the connection cap).
const MAX_BUFFERED: usize = 4 * MAX_FRAME;
/// How long a request may wait for room in [`MAX_BUFFERED`] before it is refused.
const BUFFER_WAIT: Duration = Duration::from_secs(2);
/// How long the rest of a frame may take once its length arrived.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// A client connection: length-prefixed frames over the socket, read against the shared
/// byte budget, replies split into frames of at most [`MAX_FRAME`] when larger (see
/// [`sf_proto::CONTINUED`]).
struct Conn {
    stream: Stream,
    max_frame: usize,
    budget: Arc<Semaphore>,
}

/// Why no request was read.
enum ReadEnd {
    /// The client hung up between frames.
    Closed,
    /// Nothing within the idle timeout.
    Idle,
}

impl Conn {
    async fn send(&mut self, r: &Response) -> anyhow::Result<()> {
        let body = serde_json::to_vec(r)?;
        for (head, chunk) in sf_proto::frames(&body, MAX_FRAME) {
            self.stream.write_all(&head).await?;
            self.stream.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Reads one frame, waiting at most `idle` for it to begin. A frame over the limit, or
    /// one that cannot get room in the shared budget, is answered with an error and ends
    /// the connection.
    async fn read(&mut self, idle: Duration) -> anyhow::Result<Result<Vec<u8>, ReadEnd>> {
        let mut head = [0u8; 4];
        match tokio::time::timeout(idle, self.stream.read_exact(&mut head)).await {
            Err(_) => return Ok(Err(ReadEnd::Idle)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(Err(ReadEnd::Closed));
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes(head) as usize;
        if len > self.max_frame {
            let _ = self
                .send(&error(
                    ErrorKind::InvalidInput,
                    format!("frame too large: the limit is {} bytes", self.max_frame),
                    "split the request; the connection is closed",
                ))
                .await;
            anyhow::bail!("frame of {len} bytes over the limit");
        }
        // small frames (every ordinary request) need no reservation: the connection cap
        // bounds them; larger ones reserve their length from the shared budget first
        let permits = if len <= MAX_HELLO_FRAME {
            0
        } else {
            u32::try_from(len).unwrap_or(u32::MAX)
        };
        let Ok(Ok(_reserved)) = tokio::time::timeout(
            BUFFER_WAIT,
            Arc::clone(&self.budget).acquire_many_owned(permits),
        )
        .await
        else {
            let _ = self
                .send(&error(
                    ErrorKind::Busy,
                    format!(
                        "sfd is busy: other connections hold {MAX_BUFFERED} bytes of requests being received"
                    ),
                    "retry in a moment; the connection is closed",
                ))
                .await;
            anyhow::bail!("no room for a frame of {len} bytes");
        };
        let mut body = vec![0u8; len];
        tokio::time::timeout(FRAME_TIMEOUT, self.stream.read_exact(&mut body))
            .await
            .context("a frame's body did not arrive in time")??;
        Ok(Ok(body))
    }
}

/// Binds the socket in a directory of our own (see [`crate::private::socket_dir`]; `managed`:
/// sf chose the directory, so it is made 0700) and makes it 0600. A leftover socket file is
/// removed first: the caller holds the workspace lock, so nobody else is listening on it.
///
/// interprocess creates the socket with mode 0600 before it binds it (no moment with a
/// wider mode); the mode is set again after the bind so that a umask cannot narrow it. The
/// listener does not remove the socket file when dropped: the daemon does, when it stops.
pub(crate) fn bind(path: &Path, managed: bool) -> anyhow::Result<Listener> {
    let dir = path.parent().context("the socket path has no directory")?;
    crate::private::socket_dir(dir, sf_proto::paths::euid(), managed)?;
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("failed to remove {}", path.display())),
    }
    let listener = path
        .to_fs_name::<GenericFilePath>()
        .and_then(|name| {
            ListenerOptions::new()
                .name(name)
                .mode(0o600)
                .reclaim_name(false)
                .create_tokio()
        })
        .with_context(|| format!("failed to bind the socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub(crate) async fn accept_loop(
    listener: Listener,
    handle: DaemonHandle,
    tracker: TaskTracker,
    cancel: CancellationToken,
    limits: Limits,
) {
    let mut next_id: u64 = 0;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let budget = Arc::new(Semaphore::new(MAX_BUFFERED));
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "refused a connection: too many connections open"
            );
            tracker.spawn(refuse_busy(
                stream,
                Arc::clone(&budget),
                limits.max_connections,
            ));
            continue;
        };
        let span = tracing::debug_span!("conn", id = next_id);
        let handle = handle.clone();
        let cancel = cancel.clone();
        let budget = Arc::clone(&budget);
        tracker.spawn(
            async move {
                let _slot = slot;
                if let Err(e) = serve(stream, handle, cancel, budget, limits.idle_timeout).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
}

/// Tells a client over `max_connections` why it is turned away, without waiting on it.
async fn refuse_busy(stream: Stream, budget: Arc<Semaphore>, max: usize) {
    let mut conn = Conn {
        stream,
        max_frame: MAX_HELLO_FRAME,
        budget,
    };
    let refusal = error(
        ErrorKind::Busy,
        format!("sfd is serving {max} connections, its limit (max_connections)"),
        "close idle clients (a `--follow` nobody watches) or retry in a moment; raise \
         max_connections in .sf/config.toml if you need more",
    );
    // answer, then let the client finish writing its hello before the socket closes (a close
    // under its write would reach it as a broken connection, not as this answer)
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        conn.send(&refusal).await?;
        let mut sink = [0u8; 512];
        while conn.stream.read(&mut sink).await? > 0 {}
        anyhow::Ok(())
    })
    .await;
}

/// Who the peer `pid` is. A run's client may connect in the microseconds between the
/// run's start and the record of its namespace: an unknown namespace is looked up again for
/// up to a second before it is refused.
async fn caller(
    handle: &DaemonHandle,
    pid: Option<i32>,
    pidfd: Option<&std::os::fd::OwnedFd>,
) -> Caller {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let who = handle.identities.caller(pid);
        // the namespace was read from /proc/<pid>: if the peer has exited meanwhile, that
        // pid may be another process's, and the answer is not the peer's
        if let (Some(fd), Some(pid)) = (pidfd, pid)
            && crate::identity::pidfd_pid(fd) != Some(pid)
        {
            tracing::warn!(
                pid,
                "the peer exited before it could be identified; refused"
            );
            return Caller::Unknown;
        }
        match who {
            Caller::Unknown if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            known => return known,
        }
    }
}

fn error(kind: ErrorKind, message: impl Into<String>, hint: &str) -> Response {
    Response::Error(ProtoError::new(kind, message).with_hint(hint))
}

async fn serve(
    stream: Stream,
    handle: DaemonHandle,
    cancel: CancellationToken,
    budget: Arc<Semaphore>,
    idle_timeout: Duration,
) -> anyhow::Result<()> {
    // tokio's SO_PEERCRED, not interprocess's `peer_creds()`, which fails when the client's
    // pid is not visible here (see "The local socket" in sf-proto's README)
    let Stream::UdSocket(inner) = &stream;
    let peer = inner.inner().peer_cred()?;
    // the peer process itself (kernels from 6.5): its pid cannot be recycled while this is
    // held, so what is read of that pid is checked to be still about the peer
    let pidfd =
        nix::sys::socket::getsockopt(inner.inner(), nix::sys::socket::sockopt::PeerPidfd).ok();
    let mut conn = Conn {
        stream,
        max_frame: MAX_HELLO_FRAME,
        budget,
    };
    let me = nix::unistd::geteuid().as_raw();
    if peer.uid() != me {
        tracing::warn!(
            peer_uid = peer.uid(),
            "refused a connection from another user"
        );
        conn.send(&error(
            ErrorKind::PermissionDenied,
            "sfd serves only its own user",
            "",
        ))
        .await?;
        return Ok(());
    }
    let first = match conn
        .read(Duration::from_secs(HANDSHAKE_TIMEOUT_SECS))
        .await?
    {
        Ok(f) => f,
        Err(ReadEnd::Closed) => return Ok(()),
        Err(ReadEnd::Idle) => {
            let _ = conn
                .send(&error(
                    ErrorKind::InvalidInput,
                    "no hello within 10 seconds",
                    "send a Hello frame first",
                ))
                .await;
            return Ok(());
        }
    };
    let hello: Hello = match serde_json::from_slice(&first) {
        Ok(h) => h,
        Err(e) => {
            conn.send(&error(
                ErrorKind::InvalidInput,
                format!("malformed hello: {e}"),
                "the first frame must be a Hello",
            ))
            .await?;
            return Ok(());
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        conn.send(&error(
            ErrorKind::IncompatibleProtocol,
            format!(
                "client `{}` speaks protocol {}, this sfd speaks protocol {PROTOCOL_VERSION}",
                hello.client, hello.protocol
            ),
            "use sfctl and sfd from the same release",
        ))
        .await?;
        return Ok(());
    }
    let claimed = hello
        .actor
        .filter(|a| !a.is_empty() && a.len() <= 128)
        .unwrap_or_else(|| "unknown".into());
    // who the kernel says the peer is comes before what it says itself
    let actor = match caller(&handle, peer.pid(), pidfd.as_ref()).await {
        Caller::User => claimed,
        Caller::Agent(agent) => {
            if claimed != format!("agent:{agent}") {
                tracing::warn!(%claimed, %agent, "a sandboxed run's client named another actor; recorded as its agent");
            }
            format!("agent:{agent}")
        }
        // landlock-only: a confined process is an agent with a live run, by its own word
        Caller::SomeAgent(live)
            if claimed
                .strip_prefix("agent:")
                .is_some_and(|a| live.iter().any(|l| l == a)) =>
        {
            claimed
        }
        Caller::SomeAgent(_) => {
            tracing::warn!(pid = ?peer.pid(), %claimed, "refused a confined process that named no agent with a live run");
            conn.send(&error(
                ErrorKind::PermissionDenied,
                format!("this process is confined (no_new_privs), so it is an agent's, and `{claimed}` is not an agent with a live run"),
                "run sfctl from your own session, or from inside the run with its SF_AGENT",
            ))
            .await?;
            return Ok(());
        }
        Caller::Unknown => {
            tracing::warn!(pid = ?peer.pid(), "refused a connection from a user namespace sfd did not make");
            conn.send(&error(
                ErrorKind::PermissionDenied,
                "sfd serves its user and the runs it started; this process is in neither's user namespace",
                "run sfctl from your own session, or from inside the run",
            ))
            .await?;
            return Ok(());
        }
    };
    tracing::debug!(client = %hello.client, %actor, "handshake accepted");
    conn.send(&Response::Welcome {
        protocol: PROTOCOL_VERSION,
        daemon: format!("sfd {}", env!("CARGO_PKG_VERSION")),
        pid: std::process::id(),
    })
    .await?;
    conn.max_frame = MAX_FRAME;

    loop {
        let frame = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            f = conn.read(idle_timeout) => f?,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(ReadEnd::Closed) => return Ok(()),
            Err(ReadEnd::Idle) => {
                tracing::debug!("closed an idle connection");
                let _ = conn
                    .send(&error(
                        ErrorKind::InvalidInput,
                        format!(
                            "closed after {} without a request (idle_timeout)",
                            humantime::format_duration(idle_timeout)
                        ),
                        "connect again for the next request",
                    ))
                    .await;
                return Ok(());
            }
        };
        let request: Request = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                let msg = match std::str::from_utf8(&frame) {
                    Ok(_) => format!("malformed request: {e}"),
                    Err(_) => "malformed request: not UTF-8 JSON".to_owned(),
                };
                conn.send(&error(
                    ErrorKind::InvalidInput,
                    msg,
                    "see the sf-proto crate docs for the request types",
                ))
                .await?;
                continue;
            }
        };
        tracing::trace!(?request, "request");
        match handle.request(&actor, request).await {
            Answer::Response(response) => conn.send(&response).await?,
            Answer::Follow(following) => return follow(conn, following, cancel).await,
        }
    }
}

/// Streams an admitted follow (its backlog, then every new event) until the client or the
/// daemon goes away.
async fn follow(
    mut conn: Conn,
    following: Following,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Following {
        task: task_id,
        backlog,
        events: mut rx,
    } = following;
    // an event committed off the owner (by a janitor pass) is in the backlog before the
    // owner fans it out: it is sent once
    let mut last = None;
    for e in backlog {
        last = Some(e.id);
        conn.send(&Response::Event(e)).await?;
    }
    let wanted = |e: &AuditEvent| task_id.is_none() || e.task == task_id;
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            // the client hung up (or sent something: a follow takes no more requests)
            f = conn.stream.read(&mut probe) => { let _ = f; return Ok(()) },
            r = rx.recv() => match r {
                Ok(e) => {
                    if wanted(&e) && last.is_none_or(|l| e.id > l) {
                        last = Some(e.id);
                        conn.send(&Response::Event(e)).await?;
                    }
                }
                Err(RecvError::Lagged(skipped)) => conn.send(&Response::Lagged { skipped }).await?,
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}
