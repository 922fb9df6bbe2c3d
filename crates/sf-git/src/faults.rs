//! A test hook for the fault tests: when the environment variable `SF_TEST_CRASH_AT` names a
//! crash point, the process kills itself with `SIGKILL` there, exactly as `kill -9` from
//! outside would, so that a test can stop `sfd` at one precise step (half-way through a
//! worktree's checkout, right after the target moved). Unset, which it always is outside
//! those tests, a crash point costs one read of a cached value.
//!
//! The points: `worktree_checkout` (half of a new worktree's files checked out),
//! `target_moved` (the merge moved the target, nothing recorded yet), `checkout_sync` (the
//! user's checkout of the target half brought along).

use std::sync::OnceLock;

fn configured() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| {
        std::env::var("SF_TEST_CRASH_AT")
            .ok()
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Whether `SF_TEST_CRASH_AT` names `point`.
pub fn armed(point: &str) -> bool {
    configured() == Some(point)
}

/// Kills this process at once if `SF_TEST_CRASH_AT` names `point`.
pub fn crash_point(point: &str) {
    if armed(point) {
        crash_now(point);
    }
}

/// Kills this process at once with `SIGKILL`: no destructor runs, nothing is flushed.
pub fn crash_now(point: &str) -> ! {
    tracing::warn!(point, "SF_TEST_CRASH_AT: killing this process");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::process::abort()
}
