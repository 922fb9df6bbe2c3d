//! The socket: bind with safe permissions, accept, check the peer, handshake, then
//! forward each request to the owner and write its response.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use sf_proto::{
    AuditEvent, ErrorKind, EventId, HANDSHAKE_TIMEOUT_SECS, Hello, MAX_FRAME, MAX_HELLO_FRAME,
    PROTOCOL_VERSION, ProtoError, Request, Response, TaskId,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::owner::DaemonHandle;

type Conn = Framed<UnixStream, LengthDelimitedCodec>;

/// Binds the socket in a directory of our own (see [`crate::private::socket_dir`]; `managed`:
/// sf chose the directory, so it is made 0700) and makes it 0600. A leftover socket file is
/// removed first: the caller holds the workspace lock, so nobody else is listening on it.
pub(crate) fn bind(path: &Path, managed: bool) -> anyhow::Result<UnixListener> {
    let dir = path.parent().context("the socket path has no directory")?;
    crate::private::socket_dir(dir, sf_proto::paths::euid(), managed)?;
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("failed to remove {}", path.display())),
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("failed to bind the socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub(crate) async fn accept_loop(
    listener: UnixListener,
    handle: DaemonHandle,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    let mut next_id: u64 = 0;
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let span = tracing::debug_span!("conn", id = next_id);
        let handle = handle.clone();
        let cancel = cancel.clone();
        tracker.spawn(
            async move {
                if let Err(e) = serve(stream, handle, cancel).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
}

async fn send(conn: &mut Conn, r: &Response) -> anyhow::Result<()> {
    let body = serde_json::to_vec(r)?;
    conn.send(Bytes::from(body)).await?;
    Ok(())
}

fn error(kind: ErrorKind, message: impl Into<String>, hint: &str) -> Response {
    Response::Error(ProtoError::new(kind, message).with_hint(hint))
}

/// Reads one frame; `Ok(None)` on a clean close, an error reply already sent on a bad one.
async fn read_frame(conn: &mut Conn) -> anyhow::Result<Option<Bytes>> {
    match conn.next().await {
        None => Ok(None),
        Some(Ok(b)) => Ok(Some(b.freeze())),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            let max = conn.codec().max_frame_length();
            let _ = send(
                conn,
                &error(
                    ErrorKind::InvalidInput,
                    format!("frame too large: the limit is {max} bytes"),
                    "split the request; the connection is closed",
                ),
            )
            .await;
            Err(e.into())
        }
        Some(Err(e)) => Err(e.into()),
    }
}

async fn serve(
    stream: UnixStream,
    handle: DaemonHandle,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let peer = stream.peer_cred()?;
    let mut conn = Framed::new(
        stream,
        LengthDelimitedCodec::builder()
            .max_frame_length(MAX_HELLO_FRAME)
            .new_codec(),
    );
    let me = nix::unistd::geteuid().as_raw();
    if peer.uid() != me {
        tracing::warn!(
            peer_uid = peer.uid(),
            "refused a connection from another user"
        );
        send(
            &mut conn,
            &error(
                ErrorKind::PermissionDenied,
                "sfd serves only its own user",
                "",
            ),
        )
        .await?;
        return Ok(());
    }
    let first = tokio::time::timeout(
        Duration::from_secs(HANDSHAKE_TIMEOUT_SECS),
        read_frame(&mut conn),
    )
    .await;
    let Ok(first) = first else {
        let _ = send(
            &mut conn,
            &error(
                ErrorKind::InvalidInput,
                "no hello within 10 seconds",
                "send a Hello frame first",
            ),
        )
        .await;
        return Ok(());
    };
    let Some(first) = first? else { return Ok(()) };
    let hello: Hello = match serde_json::from_slice(&first) {
        Ok(h) => h,
        Err(e) => {
            send(
                &mut conn,
                &error(
                    ErrorKind::InvalidInput,
                    format!("malformed hello: {e}"),
                    "the first frame must be a Hello",
                ),
            )
            .await?;
            return Ok(());
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        send(
            &mut conn,
            &error(
                ErrorKind::IncompatibleProtocol,
                format!(
                    "client `{}` speaks protocol {}, this sfd speaks protocol {PROTOCOL_VERSION}",
                    hello.client, hello.protocol
                ),
                "use sfctl and sfd from the same release",
            ),
        )
        .await?;
        return Ok(());
    }
    let actor = hello
        .actor
        .filter(|a| !a.is_empty() && a.len() <= 128)
        .unwrap_or_else(|| "unknown".into());
    tracing::debug!(client = %hello.client, %actor, "handshake accepted");
    send(
        &mut conn,
        &Response::Welcome {
            protocol: PROTOCOL_VERSION,
            daemon: format!("sfd {}", env!("CARGO_PKG_VERSION")),
            pid: std::process::id(),
        },
    )
    .await?;
    conn.codec_mut().set_max_frame_length(MAX_FRAME);

    loop {
        let frame = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            f = read_frame(&mut conn) => f?,
        };
        let Some(frame) = frame else { return Ok(()) };
        let request: Request = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                let msg = match std::str::from_utf8(&frame) {
                    Ok(_) => format!("malformed request: {e}"),
                    Err(_) => "malformed request: not UTF-8 JSON".to_owned(),
                };
                send(
                    &mut conn,
                    &error(
                        ErrorKind::InvalidInput,
                        msg,
                        "see the sf-proto crate docs for the request types",
                    ),
                )
                .await?;
                continue;
            }
        };
        tracing::trace!(?request, "request");
        if let Request::FollowEvents { since, task } = request {
            return follow(conn, &handle, &actor, since, task, cancel).await;
        }
        let response = handle.request(&actor, request).await;
        send(&mut conn, &response).await?;
    }
}

/// Streams the backlog after `since`, then every new event, until the client or the
/// daemon goes away.
async fn follow(
    mut conn: Conn,
    handle: &DaemonHandle,
    actor: &str,
    since: Option<EventId>,
    task: Option<String>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut rx = handle.subscribe();
    let task_id: Option<TaskId> = match &task {
        Some(t) => match handle
            .request(actor, Request::ShowTask { id: t.clone() })
            .await
        {
            Response::Task(d) => Some(d.task.id),
            other => {
                send(&mut conn, &other).await?;
                return Ok(());
            }
        },
        None => None,
    };
    let mut last = since.unwrap_or(EventId(i64::MAX));
    if since.is_some() {
        match handle
            .request(
                actor,
                Request::ListEvents {
                    since,
                    task: task.clone(),
                    limit: None,
                },
            )
            .await
        {
            Response::Events(events) => {
                for e in events {
                    last = e.id;
                    send(&mut conn, &Response::Event(e)).await?;
                }
            }
            other => {
                send(&mut conn, &other).await?;
                return Ok(());
            }
        }
    }
    let wanted = |e: &AuditEvent| task_id.is_none() || e.task == task_id;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            // the client hung up (or sent something: a follow takes no more requests)
            f = conn.next() => if f.is_none() { return Ok(()) },
            r = rx.recv() => match r {
                Ok(e) => {
                    if (since.is_none() || e.id > last) && wanted(&e) {
                        last = e.id;
                        send(&mut conn, &Response::Event(e)).await?;
                    }
                }
                Err(RecvError::Lagged(skipped)) => send(&mut conn, &Response::Lagged { skipped }).await?,
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}
