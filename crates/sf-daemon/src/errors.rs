//! How the daemon puts an error into words for a user: the error and each of its causes
//! (the one function lives in sf-worker, which the launcher needs it in too).

pub(crate) use sf_worker::error_chain;
