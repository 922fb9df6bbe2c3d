#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, BufReader, BufWriter};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sf_proto::{
    FrameError, Hello, MAX_FRAME, PROTOCOL_VERSION, ProtoError, Request, Response, read_frame,
    write_frame,
};

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
    /// The daemon answered with a response of the wrong kind.
    #[error("unexpected response from sfd: {0}")]
    Unexpected(String),
}

/// A connected, handshaken client.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
    /// The daemon's pid, from its welcome.
    pub daemon_pid: u32,
    /// The daemon's name and version.
    pub daemon: String,
}

impl Client {
    /// Connects to the socket at `path` and performs the handshake. Refuses, before sending
    /// anything, a socket served by another user than ours or root.
    pub fn connect(path: &Path, client: &str, actor: Option<String>) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Unreachable {
            path: path.to_owned(),
            source,
        })?;
        check_peer(&stream, path)?;
        let mut writer = BufWriter::new(stream.try_clone().map_err(FrameError::Io)?);
        let mut reader = BufReader::new(stream);
        write_frame(
            &mut writer,
            &Hello {
                protocol: PROTOCOL_VERSION,
                client: client.to_owned(),
                actor,
            },
        )?;
        match read_frame(&mut reader, MAX_FRAME)? {
            Response::Welcome { daemon, pid, .. } => Ok(Self {
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
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Sends one request and reads its response. A refusal becomes [`ClientError::Refused`].
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.send(request)?;
        match self.recv()? {
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
        Ok(read_frame(&mut self.reader, MAX_FRAME)?)
    }
}

/// Refuses a socket whose listening process (`SO_PEERCRED`) runs as another user than us or
/// root.
fn check_peer(stream: &UnixStream, path: &Path) -> Result<(), ClientError> {
    let peer = rustix::net::sockopt::socket_peercred(stream)
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
