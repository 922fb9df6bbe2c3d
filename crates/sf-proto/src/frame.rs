//! Length-prefixed JSON frames, blocking flavour (the daemon uses the same format through
//! `tokio_util::codec::LengthDelimitedCodec`).

use std::io::{self, Read, Write};

use serde::{Serialize, de::DeserializeOwned};

/// A failure to read or write one frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// The frame announced more bytes than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// An IO failure.
    #[error("failed to transfer a frame")]
    Io(#[from] io::Error),
    /// The body was not the JSON we expected.
    #[error("failed to decode a frame")]
    Json(#[from] serde_json::Error),
}

/// Writes one frame holding `value` as JSON.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, value: &T) -> Result<(), FrameError> {
    let body = serde_json::to_vec(value)?;
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// The bit of a frame's length prefix that says the message goes on in the next frame: a
/// reply larger than [`crate::MAX_FRAME`] (a list of 100,000 tasks) is sent as a run of
/// frames, each at most `MAX_FRAME` bytes, all but the last with this bit set.
pub const CONTINUED: u32 = 1 << 31;

/// Splits a message body into frames: `(length prefix, bytes)` pairs, each at most
/// `max_frame` bytes, every prefix but the last carrying [`CONTINUED`].
pub fn frames(body: &[u8], max_frame: usize) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let n = body.len().div_ceil(max_frame).max(1);
    (0..n).map(move |i| {
        let chunk = &body[(i * max_frame).min(body.len())..((i + 1) * max_frame).min(body.len())];
        let mut len = chunk.len() as u32;
        if i + 1 < n {
            len |= CONTINUED;
        }
        (len.to_be_bytes(), chunk)
    })
}

/// Reads one message, which may span several frames (see [`CONTINUED`]), each of at most
/// `max_frame` bytes and all together at most `max_total`, and decodes it.
pub fn read_message<R: Read, T: DeserializeOwned>(
    r: &mut R,
    max_frame: usize,
    max_total: usize,
) -> Result<T, FrameError> {
    let mut body = Vec::new();
    let mut first = true;
    loop {
        let mut head = [0u8; 4];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if first && e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        first = false;
        let raw = u32::from_be_bytes(head);
        let len = (raw & !CONTINUED) as usize;
        if len > max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: max_frame,
            });
        }
        if body.len() + len > max_total {
            return Err(FrameError::TooLarge {
                len: body.len() + len,
                max: max_total,
            });
        }
        let start = body.len();
        body.resize(start + len, 0);
        r.read_exact(&mut body[start..])?;
        if raw & CONTINUED == 0 {
            return Ok(serde_json::from_slice(&body)?);
        }
    }
}

/// Reads one frame of at most `max` bytes and decodes it.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R, max: usize) -> Result<T, FrameError> {
    let mut head = [0u8; 4];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hello, Request, TaskFilter};

    #[test]
    fn a_message_larger_than_a_frame_goes_as_several_and_comes_back_whole() {
        let text = "x".repeat(10_000);
        let body = serde_json::to_vec(&text).unwrap();
        let mut wire = Vec::new();
        let mut n = 0;
        for (head, chunk) in frames(&body, 4096) {
            wire.extend_from_slice(&head);
            wire.extend_from_slice(chunk);
            n += 1;
        }
        assert_eq!(n, 3);
        let back: String = read_message(&mut wire.as_slice(), 4096, 1 << 20).unwrap();
        assert_eq!(back, text);
        // a reader that takes single frames only refuses the first part as too large
        assert!(matches!(
            read_frame::<_, String>(&mut wire.as_slice(), 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
        // and the total is capped
        assert!(matches!(
            read_message::<_, String>(&mut wire.as_slice(), 4096, 8192),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn successive_messages_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Status).unwrap();
        write_frame(
            &mut buf,
            &Request::ListTasks {
                filter: TaskFilter::default(),
            },
        )
        .unwrap();
        let mut r = buf.as_slice();
        let a: Request = read_frame(&mut r, 1024).unwrap();
        let b: Request = read_frame(&mut r, 1024).unwrap();
        assert!(matches!(a, Request::Status));
        assert!(matches!(b, Request::ListTasks { .. }));
        assert!(matches!(
            read_frame::<_, Request>(&mut r, 1024),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn restricted_payload_size() {
        let mut buf = Vec::new();
        let hello = Hello {
            protocol: 1,
            client: "x".repeat(2000),
            actor: None,
        };
        write_frame(&mut buf, &hello).unwrap();
        let err = read_frame::<_, Hello>(&mut buf.as_slice(), 100).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { max: 100, .. }),
            "{err}"
        );
    }

    #[test]
    fn truncated_frame_is_an_error_not_a_hang() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Status).unwrap();
        buf.truncate(buf.len() - 1);
        assert!(matches!(
            read_frame::<_, Request>(&mut buf.as_slice(), 1024),
            Err(FrameError::Io(_))
        ));
    }
}
