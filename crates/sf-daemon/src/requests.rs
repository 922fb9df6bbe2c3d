//! What the router's store-side handlers share: the guard that turns a refusal into an
//! error response and a panic into an internal error (the in-memory index rebuilt from the
//! file), so no request can take the daemon down; and the check of an agent's command.

use std::panic::{AssertUnwindSafe, catch_unwind};

use sf_proto::{ErrorKind, ProtoError, Response};
use sf_store::{Store, StoreError};

/// An agent's `--command` must split into words and name a program that exists: an
/// absolute path to an executable file, or a name found on the daemon's `PATH` (which its
/// workers inherit). A relative path is looked up in each worktree, so it is not checked.
fn check_command(command: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let refuse = |message: String, hint: &str| StoreError::Refused {
        kind: ErrorKind::InvalidInput,
        message,
        hint: Some(hint.to_owned()),
    };
    let words = sf_worker::adapters::split_command(command).map_err(|e| {
        refuse(
            e.to_string(),
            "quote words with spaces in '...' or \"...\", e.g. --command \"my-agent --flag 'a b'\"",
        )
    })?;
    let Some(program) = words.first() else {
        return Err(refuse(
            "the command is empty".into(),
            "--command PROGRAM [ARGS...]",
        ));
    };
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = std::path::Path::new(program);
    let found = if path.is_absolute() {
        runnable(path)
    } else if program.contains('/') {
        true
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|dir| runnable(&dir.join(program))))
    };
    if found {
        Ok(())
    } else {
        Err(refuse(
            format!("cannot run `{program}`: no such executable file (looked on sfd's PATH)"),
            "give the full path of an executable, or install it where sfd's PATH can find it",
        ))
    }
}

/// The registration checks of an agent's command: its `--command`, or else its adapter's
/// own CLI (found on sfd's PATH at each spawn, so checked now, not at the first dispatch).
pub(crate) fn check_registration_command(spec: &sf_proto::AgentSpec) -> Result<(), StoreError> {
    if let Some(command) = &spec.command {
        return check_command(command);
    }
    if spec.adapter == sf_proto::Adapter::Command || spec.role == sf_proto::Role::Director {
        return Ok(());
    }
    let cli = spec.adapter.as_str();
    check_command(cli).map_err(|_| StoreError::Refused {
        kind: ErrorKind::InvalidInput,
        message: format!("the {cli} adapter runs `{cli}`, and there is no `{cli}` on sfd's PATH"),
        hint: Some(format!(
            "install {cli} where sfd's PATH finds it (then restart sfd), or pass \
             --command /path/to/{cli}"
        )),
    })
}

/// Runs one request's handler on the store thread: a refusal becomes an error response; a
/// panic an internal error, after which the in-memory index is rebuilt from the file.
pub(crate) fn on_store_thread(
    store: &mut Store,
    handler: impl FnOnce(&mut Store) -> Result<Response, StoreError>,
) -> Response {
    match catch_unwind(AssertUnwindSafe(|| handler(store))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if e.kind() == ErrorKind::Internal {
                tracing::error!(error = ?e, "request failed");
            }
            Response::Error(ProtoError::from(e))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "request handler panicked; rebuilding the index");
            if let Err(e) = store.reload_index() {
                tracing::error!(error = ?e, "failed to rebuild the index");
            }
            Response::Error(
                ProtoError::new(ErrorKind::Internal, format!("internal error: {what}"))
                    .with_hint("this is a bug in sfd; nothing was changed by this request"),
            )
        }
    }
}
