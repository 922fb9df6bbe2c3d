//! The arguments of `sfctl task …`, one struct per subcommand that takes more than an id.

use clap::{Args, Subcommand};
use sf_proto::{TaskStatus, TaskType};

use crate::args::wire;

/// Create, list, inspect and change tasks
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    Create(CreateArgs),
    List(ListArgs),
    /// Show a task in full: fields, why it waits, dependencies, notes, runs, events
    #[command(after_help = "\
Examples:
  sfctl task show k3f9xq
  sfctl task show k3f                      # any unique prefix
  sfctl task show k3f9xq --json | jq -r .branch")]
    Show {
        /// Task id or unique prefix
        id: String,
    },
    Update(UpdateArgs),
    /// Close a task (done, or not worth doing)
    #[command(after_help = "\
Examples:
  sfctl task close k3f9xq
  sfctl task close k3f9xq --reason \"duplicate of m2n3p4\"")]
    Close(ChangeArgs),
    /// Cancel a task: its live run is stopped (its work saved), its merge request
    /// withdrawn, and it is closed as cancelled
    #[command(after_help = "\
Examples:
  sfctl task cancel k3f9xq
  sfctl task cancel k3f9xq --reason \"not needed after all\"")]
    Cancel(ChangeArgs),
    /// Reopen a closed, review or blocked task
    #[command(after_help = "\
Examples:
  sfctl task reopen k3f9xq --reason \"the fix did not cover Safari\"
  sfctl task reopen k3f9xq --json | jq -r .status    # open")]
    Reopen(ChangeArgs),
    /// Put a task off, optionally until a time
    #[command(after_help = "\
Examples:
  sfctl task defer k3f9xq --until +3d --reason \"after the release\"
  sfctl task defer k3f9xq --until 2025-06-01
  sfctl task defer k3f9xq                  # until `sfctl task undefer`")]
    Defer(DeferArgs),
    /// Bring a deferred task back to open
    #[command(after_help = "\
Examples:
  sfctl task undefer k3f9xq
  sfctl task undefer k3f9xq --reason \"the release is out\"")]
    Undefer(ChangeArgs),
    /// Move a task to the backlog (not planned yet)
    #[command(after_help = "\
Examples:
  sfctl task backlog k3f9xq --reason \"not this quarter\"
  sfctl task activate k3f9xq               # back to open")]
    Backlog(ChangeArgs),
    /// Move a backlog task to open
    #[command(after_help = "\
Examples:
  sfctl task activate k3f9xq
  sfctl task list --status backlog         # what could be activated")]
    Activate(ChangeArgs),
    /// Block a task until someone unblocks it
    #[command(after_help = "\
Examples:
  sfctl task block k3f9xq --reason \"waiting for the staging credentials\"
  sfctl task unblock k3f9xq")]
    Block(BlockArgs),
    /// Unblock a blocked task
    #[command(after_help = "\
Examples:
  sfctl task unblock k3f9xq --reason \"credentials arrived\"
  sfctl task blocked                       # why the others still wait")]
    Unblock(ChangeArgs),
    /// Delete a task (it becomes a tombstone)
    #[command(after_help = "\
Examples:
  sfctl task delete k3f9xq --reason \"created by mistake\"
  sfctl task list --status tombstone       # deleted tasks")]
    Delete(ChangeArgs),
    /// Ready tasks, in the order the daemon dispatches them
    #[command(after_help = "\
Examples:
  sfctl task ready
  sfctl task ready --limit 5 --json | jq -r '.[].id'")]
    Ready {
        /// At most this many
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Tasks that wait, with why
    #[command(after_help = "\
Examples:
  sfctl task blocked
  sfctl task blocked --limit 10 --json")]
    Blocked {
        /// At most this many
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    Complete(CompleteArgs),
    Handoff(HandoffArgs),
}

/// For workers: finish your task and queue it for merge
#[derive(Debug, Args)]
#[command(
    long_about = "\
For workers: finish the task this worker holds. The daemon commits what is left in the
worktree, queues a merge request and moves the task to `review`. With --no-changes, a branch
without commits closes the task as nothing to merge instead.

Only a worker started by sfd can do this: the lease token comes from SF_RUN, which sfd sets
in the worker's environment (with SF_WORKSPACE and SF_SOCKET). Humans close tasks with
`sfctl task close ID`. If sfd is restarting, this waits for it (up to SF_CONNECT_WAIT
seconds, default 120) instead of failing.",
    after_help = "\
Examples:
  sfctl task complete --summary \"Fixed the race in the login test; added a regression test\"
  sfctl task complete --no-changes --summary \"Already fixed upstream\""
)]
pub struct CompleteArgs {
    /// What was done (recorded as a note on the task)
    #[arg(long, value_name = "TEXT")]
    pub summary: Option<String>,
    /// If the branch has no commits, close the task as nothing to merge
    #[arg(long)]
    pub no_changes: bool,
}

/// For workers: give your task back to the pool, with a note for the next worker
#[derive(Debug, Args)]
#[command(
    long_about = "\
For workers: hand the task this worker holds back to the pool, with a note for the next
worker. The branch and worktree are kept, so the next worker continues where this one stopped.

Only a worker started by sfd can do this: the lease token comes from SF_RUN.",
    after_help = "\
Examples:
  sfctl task handoff --note \"Parser done; the CLI flags in src/cli.rs still need tests\"
  \"$SF_SFCTL\" task handoff --note \"$(cat notes.md)\"    # from a `command` agent's script"
)]
pub struct HandoffArgs {
    /// What the next worker needs to know
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

/// Create a task
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl task create \"Fix the flaky login test\" -p 2 --type bug --skill rust
  sfctl task create \"Write release notes\" --blocked-by k3f9xq --scheduled-for +2h
  id=$(sfctl task create -q \"Refactor the parser\")")]
pub struct CreateArgs {
    /// One-line title
    pub title: String,
    /// Longer description
    #[arg(short, long, value_name = "TEXT")]
    pub description: Option<String>,
    /// 1 (most urgent) to 5
    #[arg(short, long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub priority: u8,
    /// Plan id or prefix
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// A task that must close first; repeatable
    #[arg(long, value_name = "ID")]
    pub blocked_by: Vec<String>,
    /// A skill the worker needs; repeatable, or comma-separated (`--skills a,b`)
    #[arg(
        long = "skill",
        visible_alias = "skills",
        value_name = "SKILL",
        value_delimiter = ','
    )]
    pub skills: Vec<String>,
    /// The seat it is for: only its agent takes it; a human seat's task goes to its
    /// stewards' inboxes and is never dispatched
    #[arg(long, value_name = "SEAT")]
    pub seat: Option<String>,
    /// Kind of work
    #[arg(long = "type", value_parser = wire::<TaskType>(), default_value = "task")]
    pub task_type: TaskType,
    /// Acceptance criteria
    #[arg(long, value_name = "TEXT")]
    pub acceptance: Option<String>,
    /// Not ready before this time (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, or +2h/30m/3d)
    #[arg(long, value_name = "TIME")]
    pub scheduled_for: Option<String>,
    /// Print only the new task's id
    #[arg(short, long)]
    pub quiet: bool,
}

/// List tasks (every status but deleted, unless filtered)
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl task list
  sfctl task list --status open,in_progress --plan 7hm2pa
  sfctl task list --assignee w1 --json | jq -r '.[].id'
  sfctl task list --ready --limit 10")]
pub struct ListArgs {
    /// Only this status; repeatable or comma-separated
    #[arg(long, value_parser = wire::<TaskStatus>(), value_delimiter = ',', conflicts_with = "all")]
    pub status: Vec<TaskStatus>,
    /// Only tasks assigned to this agent
    #[arg(long, value_name = "AGENT")]
    pub assignee: Option<String>,
    /// Only tasks of this plan
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// Only ready tasks, in dispatch order
    #[arg(long)]
    pub ready: bool,
    /// At most this many
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Include deleted (tombstone) tasks
    #[arg(long)]
    pub all: bool,
}

/// Change a task's fields
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl task update k3f9xq -p 1 --note \"customers hit this\"
  sfctl task update k3f9xq --skill rust --skill sql --no-plan")]
pub struct UpdateArgs {
    /// Task id or unique prefix
    pub id: String,
    /// New title
    #[arg(long)]
    pub title: Option<String>,
    /// New description
    #[arg(short, long, value_name = "TEXT")]
    pub description: Option<String>,
    /// New priority, 1 (most urgent) to 5
    #[arg(short, long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub priority: Option<u8>,
    /// New kind of work
    #[arg(long = "type", value_parser = wire::<TaskType>())]
    pub task_type: Option<TaskType>,
    /// New acceptance criteria
    #[arg(long, value_name = "TEXT")]
    pub acceptance: Option<String>,
    /// Required skill; repeatable, or comma-separated (`--skills a,b`); replaces the set
    #[arg(
        long = "skill",
        visible_alias = "skills",
        value_name = "SKILL",
        value_delimiter = ',',
        conflicts_with = "no_skills"
    )]
    pub skills: Vec<String>,
    /// Remove every required skill
    #[arg(long)]
    pub no_skills: bool,
    /// Move to a plan
    #[arg(long, value_name = "PLAN", conflicts_with = "no_plan")]
    pub plan: Option<String>,
    /// Take out of its plan
    #[arg(long)]
    pub no_plan: bool,
    /// Not ready before this time (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, or +2h/30m/3d)
    #[arg(long, value_name = "TIME", conflicts_with = "no_schedule")]
    pub scheduled_for: Option<String>,
    /// Remove the schedule
    #[arg(long)]
    pub no_schedule: bool,
    /// Append a note
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Task id or unique prefix
    pub id: String,
    /// Why (recorded as a note and in the audit log)
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeferArgs {
    /// Task id or unique prefix
    pub id: String,
    /// Until when (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, or +2h/30m/3d)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Why
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct BlockArgs {
    /// Task id or unique prefix
    pub id: String,
    /// Why it is blocked
    #[arg(long)]
    pub reason: String,
}
