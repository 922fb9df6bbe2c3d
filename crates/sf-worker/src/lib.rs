#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The adapters, from their own crate (pure, shared with `sfctl logs`).
pub use sf_adapters as adapters;
pub mod launcher;
pub mod log;
pub mod outcome;
pub mod process;
pub mod redact;
pub mod sandbox;

/// An error and each of its causes, on one line: `error: cause: cause of the cause`. How
/// sf puts an error into words for a user.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
