#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dto;
mod frame;
mod ids;
pub mod paths;

pub use dto::*;
pub use frame::{CONTINUED, FrameError, frames, read_frame, read_message, write_frame};
pub use ids::{
    DepId, EventId, ID_ALPHABET, ID_LEN, IdError, MergeRequestId, MessageId, PlanId, RunId, TaskId,
    normalize_prefix,
};

/// The protocol version. Bumped only for breaking changes; a mismatch is refused.
pub const PROTOCOL_VERSION: u32 = 4;

/// The `.sf/policy.toml` `sfctl init` writes: safe defaults, every setting explained (the
/// guard that reads it is `sf_core::guard`).
pub const DEFAULT_POLICY: &str = include_str!("default_policy.toml");

/// Largest frame accepted after the handshake, in bytes.
pub const MAX_FRAME: usize = 16 << 20;

/// Largest reply a client accepts, across the frames it may span (see [`CONTINUED`]).
pub const MAX_REPLY: usize = 1 << 30;

/// Largest frame accepted before the handshake has been accepted, in bytes.
pub const MAX_HELLO_FRAME: usize = 64 << 10;

/// Seconds the daemon waits for a client's [`Hello`].
pub const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
