//! `sfctl push`: a worker asks sfd to push its task's branch.

use clap::Args;
use sf_proto::{Request, Response};

use crate::context::{Context, LEASE_ENV, expect_response};
use crate::error::{CliError, CliResult};

/// For workers: have sfd push your task's branch to the remote
#[derive(Debug, Args)]
#[command(
    long_about = "\
For workers: have sfd push the branch of the task this worker holds to a remote, as
refs/heads/B:refs/heads/B. Workers hold no push credentials and cannot write the remote or the
repository's configuration; sfd pushes with the credentials of the user who started it (the
SSH agent, git's credential helpers), the way `git push` would from the user's shell. What is
committed on the branch is pushed; uncommitted changes are not. A non-fast-forward is
refused: sfd never force-pushes.

Only agents registered with `--capability push` may push; others are refused
(denied, code CAPABILITY_REQUIRED in --json). Each push, and each refusal, is an
event (`branch_pushed`, `push_failed`). The lease token comes from SF_RUN, which sfd sets in
the worker's environment.

The remote is `[merge] remote` of .sf/config.toml (default `origin`) unless --remote names
another. sfd can also push the target branch after each merge: `[merge] push =
\"after-merge\"`.",
    after_help = "\
Examples:
  sfctl push
  sfctl push --remote upstream
  \"$SF_SFCTL\" push --json        # from a `command` agent's script"
)]
pub struct PushArgs {
    /// The remote to push to (default: `[merge] remote`, `origin`)
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

pub fn run(ctx: &mut Context, args: &PushArgs) -> CliResult {
    let token = std::env::var(LEASE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            CliError::refused(
                "permission_denied",
                format!("{LEASE_ENV} is not set: only a worker started by sfd pushes with `sfctl push`"),
            )
            .with_hint("humans push with `git push`, or set `[merge] push = \"after-merge\"` in .sf/config.toml")
        })?;
    let resp = ctx.request(&Request::PushBranch {
        token,
        remote: args.remote.clone(),
    })?;
    let pushed = expect_response!(resp, Response::Pushed(p) => p);
    ctx.ui.emit(&pushed, |ui, p| {
        let short = p.commit.get(..7).unwrap_or(&p.commit);
        ui.line(format!("pushed {} ({short}) to {}", p.branch, p.remote))
    })
}
