//! `sfctl gc`: clean up the worktrees and branches of work that is done.

use clap::Args;
use sf_proto::{Request, Response};

use crate::context::{Context, expect_response};
use crate::error::CliResult;

/// Remove the worktrees and branches of tasks that are done
#[derive(Debug, Args)]
#[command(
    long_about = "\
Remove the worktrees and branches of tasks that are done.

sfd does this by itself when a task is merged or closed and its run has ended; `sfctl gc` is
for what is left (say, from before an upgrade). A worktree goes once every task using it is
closed or deleted: its uncommitted work is saved first, as a commit on its branch and in
refs/sf/wip/<task>/<n>. A task's branch then goes too, kept as refs/sf/archive/<task> when
the target lacks its commits (unless [merge] delete_branch = false). A reopened task goes on
from its archived branch. Branches no task names are left alone.",
    after_help = "\
Examples:
  sfctl gc --dry-run        # what would go, changing nothing
  sfctl gc
  sfctl gc --json | jq -r '.actions[]'"
)]
pub struct GcArgs {
    /// Only say what would be removed
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

pub fn run(ctx: &mut Context, args: &GcArgs) -> CliResult {
    let resp = ctx.request(&Request::Gc {
        dry_run: args.dry_run,
    })?;
    let report = expect_response!(resp, Response::Cleaned(r) => r);
    ctx.ui.emit(&report, |ui, report| {
        if report.actions.is_empty() {
            return ui.line("nothing to clean up");
        }
        for a in &report.actions {
            let prefix = if report.dry_run { "would " } else { "" };
            ui.line(format!("{prefix}{a}"))?;
        }
        Ok(())
    })
}
