#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::TryClone as _;
use interprocess::local_socket::traits::Stream as _;
use interprocess::local_socket::{ConnectOptions, GenericFilePath, Stream, ToFsName as _};

use sf_proto::{
    FrameError, Hello, MAX_FRAME, MAX_REPLY, PROTOCOL_VERSION, ProtoError, Request, Response,
    read_message, write_frame,
};

/// How long connecting and the handshake may take before [`ClientError::Timeout`] by
/// default (`SF_CONNECT_TIMEOUT`, in seconds, changes it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `SF_<name>` in seconds, else `default`.
fn env_secs(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(default, Duration::from_secs_f64)
}
/// How long [`Client::request`] waits for its reply by default (`SF_REPLY_TIMEOUT`, in
/// seconds, changes it); streams read with [`Client::recv`] wait as long as they need.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// A failure to talk to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("failed to connect to sfd at {}", path.display())]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The process listening on the socket belongs to another user: it may be a socket
    /// planted to read our requests, so nothing was sent to it.
    #[error(
        "refusing to talk to {}: it is served by uid {peer}, not by you (uid {me}) or root",
        path.display()
    )]
    ForeignPeer {
        /// The socket path.
        path: PathBuf,
        /// The uid of the process listening on it.
        peer: u32,
        /// Our effective uid.
        me: u32,
    },
    /// The daemon refused the request (or the handshake).
    #[error("{0}")]
    Refused(ProtoError),
    /// The connection broke or carried something unexpected.
    #[error("failed to talk to sfd")]
    Frame(#[from] FrameError),
    /// The daemon did not answer in time (connect, handshake or reply).
    #[error("sfd at {} did not answer within {:?} ({what})", path.display(), after)]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// What was waited for: `connect`, `handshake` or `reply`.
        what: &'static str,
        /// How long.
        after: Duration,
    },
    /// The daemon answered with a response of the wrong kind.
    #[error("unexpected response from sfd: {0}")]
    Unexpected(String),
}

/// A connected, handshaken client.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reply_timeout: Duration,
    reader: BufReader<Stream>,
    writer: BufWriter<Stream>,
    /// The daemon's pid, from its welcome.
    pub daemon_pid: u32,
    /// The daemon's name and version.
    pub daemon: String,
}

impl Client {
    /// Connects to the socket at `path` and performs the handshake. Refuses, before sending
    /// anything, a socket served by another user than ours or root.
    pub fn connect(path: &Path, client: &str, actor: Option<String>) -> Result<Self, ClientError> {
        let limit = env_secs("SF_CONNECT_TIMEOUT", CONNECT_TIMEOUT);
        let stream = connect_within(path, limit)?;
        check_peer(&stream, path)?;
        let timed_out = |what| ClientError::Timeout {
            path: path.to_owned(),
            what,
            after: limit,
        };
        stream
            .set_recv_timeout(Some(limit))
            .and_then(|()| stream.set_send_timeout(Some(limit)))
            .map_err(FrameError::Io)?;
        let mut writer = BufWriter::new(stream.try_clone().map_err(FrameError::Io)?);
        let mut reader = BufReader::new(stream);
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            client: client.to_owned(),
            actor,
        };
        // a daemon that turns us away may close before our hello is written: its answer is
        // still there to read
        let written = write_frame(&mut writer, &hello);
        let welcome = read_message(&mut reader, MAX_FRAME, MAX_FRAME)
            .map_err(|e| written.err().unwrap_or(e))
            .map_err(|e| timeout_or(e, || timed_out("handshake")))?;
        // replies have their own timeout; a write never waits on a healthy daemon for long
        reader
            .get_ref()
            .set_recv_timeout(None)
            .map_err(FrameError::Io)?;
        let reply_timeout = env_secs("SF_REPLY_TIMEOUT", REPLY_TIMEOUT);
        match welcome {
            Response::Welcome { daemon, pid, .. } => Ok(Self {
                path: path.to_owned(),
                reply_timeout,
                reader,
                writer,
                daemon_pid: pid,
                daemon,
            }),
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sets a read timeout for responses (`None`: wait forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_recv_timeout(timeout)
    }

    /// How long [`Client::request`] waits for a reply (`SF_REPLY_TIMEOUT`, 120 s by default):
    /// a guard check that a human may hold waits longer.
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.reply_timeout = timeout;
    }

    /// Sends one request and reads its response. A refusal becomes [`ClientError::Refused`].
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request)?;
        let reader = self.reader.get_ref();
        reader
            .set_recv_timeout(Some(self.reply_timeout))
            .map_err(FrameError::Io)?;
        let reply = read_message(&mut self.reader, MAX_FRAME, MAX_REPLY);
        let _ = self.reader.get_ref().set_recv_timeout(None);
        let reply = reply.map_err(|e| {
            timeout_or(e, || ClientError::Timeout {
                path: self.path.clone(),
                what: "reply",
                after: self.reply_timeout,
            })
        })?;
        match reply {
            Response::Error(e) => Err(ClientError::Refused(e)),
            other => Ok(other),
        }
    }

    /// Sends a request without waiting for the response (for streams).
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        write_frame(&mut self.writer, request)?;
        Ok(())
    }

    /// Reads the next response frame.
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        Ok(read_message(&mut self.reader, MAX_FRAME, MAX_REPLY)?)
    }
}

/// A socket read or write that gave up on its timeout, as `timeout()`; anything else as is.
fn timeout_or(e: FrameError, timeout: impl FnOnce() -> ClientError) -> ClientError {
    match &e {
        FrameError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            timeout()
        }
        _ => ClientError::Frame(e),
    }
}

/// Connects, giving up after `limit`: a daemon whose backlog is full (it stopped accepting)
/// would otherwise keep `connect` waiting forever. The attempt (a blocking connect through
/// interprocess) goes on in a thread, which is left behind if it does not finish in time.
/// interprocess's own `ConnectWaitMode::Timeout` is not used: see "The local socket" in
/// sf-proto's README.
fn connect_within(path: &Path, limit: Duration) -> Result<Stream, ClientError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(connect(&target));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(ClientError::Unreachable {
            path: path.to_owned(),
            source,
        }),
        Err(_) => Err(ClientError::Timeout {
            path: path.to_owned(),
            what: "connect",
            after: limit,
        }),
    }
}

/// Connects to the socket at `path`, waiting as long as that takes.
fn connect(path: &Path) -> io::Result<Stream> {
    ConnectOptions::new()
        .name(path.to_fs_name::<GenericFilePath>()?)
        .connect_sync()
}

/// Refuses a socket whose listening process (`SO_PEERCRED`) runs as another user than us or
/// root. Read with rustix, not interprocess's `peer_creds()`, which fails when the daemon's
/// pid is not visible here (a client in a pid namespace of its own): see "The local socket"
/// in sf-proto's README.
fn check_peer(stream: &Stream, path: &Path) -> Result<(), ClientError> {
    let Stream::UdSocket(stream) = stream;
    let peer = rustix::net::sockopt::socket_peercred(stream.inner())
        .map_err(|e| FrameError::Io(e.into()))?
        .uid
        .as_raw();
    let me = rustix::process::geteuid().as_raw();
    if peer == me || peer == 0 {
        return Ok(());
    }
    Err(ClientError::ForeignPeer {
        path: path.to_owned(),
        peer,
        me,
    })
}
