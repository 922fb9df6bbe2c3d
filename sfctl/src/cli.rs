//! The clap tree: global flags and the command groups; each group's arguments live in its
//! own file under `commands/`.

use clap::{Parser, Subcommand};

use crate::args::GlobalArgs;
use crate::commands::{
    agent, approval, budget, daemon, demo, dep, docs, events, gc, guard, init, logs, message, mr,
    plan, playbook, push, staff, steward, task,
};

const LONG_ABOUT: &str = "\
sfctl talks to sfd, the daemon that runs a team of AI coding agents on one git repository.

It finds the workspace by walking up from the current directory to the first `.sf/`
(or uses --workspace / SF_WORKSPACE) and connects to the daemon's Unix socket.

Exit codes: 0 ok, 1 refused (by the daemon, bad input, or permission denied: the workspace,
its daemon or the socket belongs to another user), 2 usage error, 3 daemon unreachable,
255 internal error. Inside a worker started by sfd (SF_RUN set), a
command first waits for an unreachable daemon, which may be restarting: up to SF_CONNECT_WAIT
seconds (default 120).

With --json, results are printed on stdout as the protocol's JSON (one document; `events`
prints JSON Lines) and errors additionally as {\"error\": {\"kind\", \"message\", \"hint\"}} (plus a stable \"code\"
where the daemon gives one, e.g. CAPABILITY_REQUIRED).";

const AFTER_HELP: &str = "\
Quick start:
  sfctl init
  sfctl daemon start
  sfctl task create \"Fix the flaky login test\" -p 2
  sfctl task list
  sfctl logs TASK --follow";

/// The command line of `sfctl`.
#[derive(Debug, Parser)]
#[command(
    name = "sfctl",
    version,
    about = "Control sfd, the sf daemon that runs AI coding agents on a git repository",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(after_help = "\
Examples:
  cd your-repo && sfctl init && sfctl daemon start
  sfctl init --workspace ~/src/app")]
    Init(init::InitArgs),
    #[command(subcommand)]
    Daemon(daemon::DaemonCommand),
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    #[command(subcommand)]
    Approval(approval::ApprovalCommand),
    Adapters(approval::AdaptersArgs),
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    #[command(subcommand)]
    Budget(budget::BudgetCommand),
    #[command(subcommand)]
    Seat(staff::SeatCommand),
    #[command(subcommand)]
    Charter(staff::CharterCommand),
    #[command(subcommand)]
    Skill(staff::SkillCommand),
    #[command(subcommand)]
    Task(task::TaskCommand),
    #[command(subcommand)]
    Dep(dep::DepCommand),
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    Events(events::EventsArgs),
    Logs(logs::LogsArgs),
    #[command(subcommand)]
    Mr(mr::MrCommand),
    Merge(mr::MergeArgs),
    Push(push::PushArgs),
    Gc(gc::GcArgs),
    #[command(subcommand)]
    Docs(docs::DocsCommand),
    #[command(subcommand)]
    Playbook(playbook::PlaybookCommand),
    #[command(subcommand)]
    Steward(steward::StewardCommand),
    #[command(subcommand)]
    Event(steward::EventCommand),
    #[command(
        subcommand,
        mut_subcommand("read", examples_unless_set(MESSAGE_READ_EXAMPLES)),
        mut_subcommand("list", examples_unless_set(MESSAGE_LIST_EXAMPLES))
    )]
    Message(message::MessageCommand),
    Inbox(message::InboxArgs),
    /// Talk to the workspace's director: `sfctl agent attach` for the director whose
    /// session runs (start it first with `sfctl agent start NAME`)
    #[command(after_help = "\
Examples:
  sfctl director
  echo 'plan the billing export' | sfctl director")]
    Director,
    /// Run the whole loop on a throwaway repository: tasks dispatched to workers in
    /// worktrees, completed, tested and merged (needs only Rust and git)
    #[command(after_help = "\
Examples:
  sfctl demo
  sfctl demo --workers 5 --dir /tmp/sf-demo --keep-running")]
    Demo(demo::DemoArgs),
    /// The scripted agent the demo's workers run (not for humans)
    #[command(hide = true)]
    DemoAgent,
}

// `message read` and `message list` are defined in `commands/message.rs`; their examples sit
// here, and give way to any `after_help` that file sets.
const MESSAGE_READ_EXAMPLES: &str = "\
Examples:
  sfctl message read 12
  sfctl message read 12 13 --json";
const MESSAGE_LIST_EXAMPLES: &str = "\
Examples:
  sfctl message list
  sfctl message list --to director --unread
  sfctl message list --limit 10 --json";

fn examples_unless_set(text: &'static str) -> impl FnOnce(clap::Command) -> clap::Command {
    move |cmd| {
        if cmd.get_after_help().is_some() {
            cmd
        } else {
            cmd.after_help(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::args::parse_number_id;

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_an_about_examples_and_json() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            // clap's generated `help` subcommands are not ours to document.
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "`{path}` has no about");
                // Every command one can run shows an `Examples:` block in --help, with at
                // least one example running it (no exemptions, and no lone `Example:`); a
                // group (`sfctl task`) only lists its commands, and hidden ones are not for
                // humans.
                if !sub.is_hide_set() && !sub.has_subcommands() {
                    let help = sub
                        .get_after_help()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    let titled = help.lines().any(|l| l == "Examples:");
                    let examples = help
                        .lines()
                        .filter(|l| {
                            l.strip_prefix(&format!("  {path}"))
                                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
                        })
                        .count();
                    if !titled || examples == 0 {
                        missing.push(path.clone());
                    }
                }
                walk(sub, &path, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "sfctl", &mut missing);
        assert!(
            missing.is_empty(),
            "these commands have no `Examples:` block running them in --help: {missing:?}"
        );
        let m = Cli::try_parse_from(["sfctl", "task", "list", "--json"]).unwrap();
        assert!(m.global.json);
    }

    #[test]
    fn wire_enums_parse_loosely_and_list_values_on_error() {
        let cli = Cli::try_parse_from(["sfctl", "task", "list", "--status", "IN-PROGRESS"]);
        assert!(cli.is_ok(), "{cli:?}");
        let err = Cli::try_parse_from(["sfctl", "agent", "register", "a", "--role", "boss"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("director, worker, steward"), "{err}");
        assert!(err.contains("--role"), "{err}");
    }

    #[test]
    fn number_ids_accept_a_hash() {
        assert_eq!(parse_number_id("12", "merge request"), Ok(12));
        assert_eq!(parse_number_id(" #7 ", "merge request"), Ok(7));
        for bad in ["", "#", "x", "0", "-3", "##1", "1.5"] {
            let err = parse_number_id(bad, "merge request").unwrap_err();
            assert!(err.contains("not a merge request id"), "{bad}: {err}");
        }
    }

    #[test]
    fn priority_is_range_checked_by_clap() {
        let err = Cli::try_parse_from(["sfctl", "task", "create", "x", "-p", "9"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("1..=5"), "{err}");
    }
}
