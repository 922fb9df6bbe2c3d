//! `sfctl init`: create `.sf/` in a git repository. Uses the `git` CLI (argv only), never
//! git2, and never creates the database (the daemon does on first start).

use crate::git::git;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clap::Args;
use sf_proto::paths::WorkspacePaths;

use crate::context::Context;
use crate::error::{CliError, CliResult};

/// Create the sf workspace (`.sf/`) in the current git repository
#[derive(Debug, Args)]
#[command(long_about = "\
Create the sf workspace (`.sf/`) at the top level of the current git repository (or of the
repository at --workspace): config.toml with commented defaults, worktrees/, logs/, prompts/,
playbooks/ and run/ (mode 0700). `/.sf/` is added to the repository's info/exclude so git
ignores it. The database is created by sfd on first start.

Running it again in an initialised repository changes nothing.")]
pub struct InitArgs {}

/// The default `config.toml`: every key commented out, showing its default.
pub const DEFAULT_CONFIG: &str = r#"# sf workspace configuration. Every key is optional; the values shown are the defaults.
# Durations are written like "30s", "10m" or "2h".
#
# Top-level keys must stay above the first [section]: TOML reads a key written below a
# [section] header as part of that section.

# How often the daemon runs its phases (recover, dispatch, triggers, merge, reconcile).
# tick_interval = "5s"

# Most worker processes running at once.
# max_workers = 4

# The branch finished work is merged into.
# target_branch = "main"  # default: the repository's current HEAD branch

# Failed runs of a task before it is blocked.
# max_attempts = 3

# Daemon log level (overridden by the SF_LOG environment variable).
# log_level = "info"

# Wall-time limit of one worker run, unless the agent sets its own (--max-runtime).
# worker_timeout = "2h"

# A run whose output shows no progress for this long is stopped, its work saved, and its
# task charged one attempt (a CLI retrying an unreachable model prints only retries).
# stall_timeout = "10m"

# Messages to an idle ephemeral worker gather; a triage run of it starts, with the batch in
# its prompt, once this many wait or the oldest has waited this long. Messages to a busy
# worker wait for it to read them; a director reads its own inbox.
# triage_batch = 3
# How long the oldest of a worker's messages waits before a triage run starts anyway.
# triage_after = "15m"

# A session (a director's or persistent worker's, `sfctl agent start`) that has taken no turn
# for this long is sent a health-check message, which is its next turn (a paid model turn;
# never twice in a row); "0" never, e.g. "1h".
# session_health_interval = "0"

# A task handed off by a run of an adapter continues that run's CLI session when the next
# run is of the same adapter (Claude Code --resume, Codex exec resume, OpenCode --session).
# resume_on_handoff = false

# An agent hired by another (`sfctl agent hire`) waits in `pending_approval` until a human
# approves it (`sfctl approval approve`). With false, a hire works at once.
# require_approval_for_new_agents = true

# Time between SIGTERM and SIGKILL when a worker is stopped.
# stop_grace = "10s"

# Time a worker has to exit after completing or handing off before it is stopped.
# complete_grace = "30s"

# Time a client connection may sit idle between requests before sfd closes it (event
# streams such as `sfctl events --follow` are exempt).
# idle_timeout = "60s"

# Most client connections sfd serves at once; one more is told sfd is busy.
# max_connections = 512

# Most times a minute one steward's event triggers (--on) fire; past it, fires are skipped
# and a steward_rate_limited event says so. A steward never fires on its own tasks' events.
# steward_fire_limit = 10

# Most bytes kept of one run's log (worker, steward and setup output). A run that writes
# more keeps its first and its last half, with a line saying how much was dropped between.
# run_log_max = "16 MiB"

# Variables of the daemon's environment passed on to every worker, steward and the merge
# test command (besides PATH, HOME, LANG, TERM, CARGO_HOME and RUSTUP_HOME), e.g.
# ["RUSTFLAGS"]. Never a key: give a credential to the agents that need it with [secrets].
# env_passthrough = []

# The sfctl binary workers use; its directory goes first on their PATH.
# sfctl = "/usr/local/bin/sfctl"  # default: the sfctl next to sfd

# The time zone cron triggers are read in (an IANA name such as "Europe/Berlin").
# timezone = "UTC"

[secrets]
# Secrets by alias, each ALIAS="env:VARIABLE" (from sfd's environment) or ALIAS="file:PATH". Only
# agents registered with `--secret ALIAS` get the value, as $ALIAS in their environment;
# it never goes into sf.db, events or sfd's log.
# GITHUB_TOKEN = "env:GITHUB_TOKEN"
# ANTHROPIC_API_KEY = "env:ANTHROPIC_API_KEY"  # then: agent register … --secret ANTHROPIC_API_KEY

[sandbox]
# How agents' processes are confined (README, "The sandbox"). "full": each runs in a user
# namespace of its own, with Landlock rules (it writes only its worktree, its own slice of
# the git directory and a private TMPDIR and HOME under .sf/; it reads the system, the
# toolchains and the repository; it cannot signal sfd) and a network namespace of its own,
# whose only way out is sfd's egress proxy. "landlock-only": the Landlock rules and the
# host's network, for kernels that refuse unprivileged user namespaces (sfd can tell agents
# from you, not one agent from another). "off": the user's whole authority (a trusted setup).
# A sandbox the kernel cannot make starts nothing: sfd never runs agents unconfined unless
# told to here.
# mode = "full"
# Keep the host's network in "full" mode (no egress proxy).
# network = false
# Where runs may connect through the egress proxy: each adapter's model API hosts, and the
# hosts the network, github and ticketing capabilities open. Host patterns:
# "api.example.com", "*.example.com", "127.0.0.1:8080", "*". Anything else is denied and
# recorded (`sfctl agent egress NAME`). A list given replaces that default.
# egress = { claude = ["api.anthropic.com"], codex = ["api.openai.com", "chatgpt.com"], opencode = ["opencode.ai", "models.dev", "api.anthropic.com", "api.openai.com"], command = [], network = ["*"], github = ["github.com", "api.github.com", "codeload.github.com", "uploads.github.com", "objects.githubusercontent.com", "raw.githubusercontent.com"], ticketing = [] }
# What each adapter's CLI gets from your home in its private HOME (copied before each run,
# paths relative to your home): its login and settings, and your git identity. Nothing else
# of your home is readable to a run (~/.ssh, ~/.git-credentials, other tools' tokens).
# home = { claude = [".gitconfig", ".config/git/config", ".config/git/ignore", ".claude/.credentials.json", ".claude/settings.json", ".claude.json"], codex = [".gitconfig", ".config/git/config", ".config/git/ignore", ".codex/auth.json", ".codex/config.toml"], opencode = [".gitconfig", ".config/git/config", ".config/git/ignore", ".local/share/opencode/auth.json", ".config/opencode"], command = [".gitconfig", ".config/git/config", ".config/git/ignore"] }

[prices]
# What a model costs, in US dollars per million tokens, for the CLIs that report no cost
# (Codex): cost budgets (`sfctl budget set --cost`) count what these make of its tokens.
# "gpt-5-codex" = { input = 1.25, output = 10.0, cache_read = 0.125 }  # default: none

[staffing]
# Whether a human's `sfctl agent register` also takes the draft path (signed with
# `sfctl charter sign-manifest`, dry-run with `sfctl agent dry-run`, taken live with
# `sfctl agent go-live`) instead of creating a live agent at once. Agents' hires always do.
# require_dry_run = false

[worktree]
# Command run in each new worktree before the agent starts.
# setup = "npm ci"  # default: none
# How long the setup command may run.
# setup_timeout = "10m"

[merge]
# Command that must pass on the merge result before the target branch moves.
# test_command = "cargo test"  # default: none
# How long the test command may run.
# test_timeout = "30m"
# How finished branches land: "squash" (one commit) or "merge" (a merge commit).
# strategy = "squash"
# Hold every merge request until a human runs `sfctl mr approve`.
# require_approval = false
# Delete a merged branch (after archiving it under refs/sf/archive/).
# delete_branch = true
# Push the target branch to the remote after each merge: "never" or "after-merge". sfd
# pushes with your credentials (SSH agent, git's credential helpers); workers never hold them.
# push = "never"
# The remote sfd pushes to: after a merge, and for `sfctl push` from workers registered with
# `--capability push`.
# remote = "origin"

"#;

const EXCLUDE_LINE: &str = "/.sf/";

pub fn run(ctx: &mut Context, _args: &InitArgs) -> CliResult {
    let dir = ctx.start_dir()?;
    let top = PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?);
    let common = PathBuf::from(git(&dir, &["rev-parse", "--git-common-dir"])?);
    let common = if common.is_absolute() {
        common
    } else {
        dir.join(common)
    };
    let ws = WorkspacePaths::new(&top);
    let created = if ws.config().is_file() {
        false
    } else {
        create_layout(&ws)?;
        add_exclude(&common.join("info").join("exclude"))?;
        true
    };
    // a workspace made before policies existed gets the default one; an existing policy
    // is the user's and is never overwritten
    let policy = ws.policy();
    let policy_written = !policy.exists();
    if policy_written {
        write_private(&policy, sf_proto::DEFAULT_POLICY)?;
    }
    let root = ws.root.display().to_string();
    let report = serde_json::json!({
        "workspace": root,
        "created": created,
        "policy_written": policy_written,
    });
    ctx.ui.emit(&report, |ui, _| {
        if created {
            ui.line(format!("initialised sf workspace at {}", ws.dir.display()))?;
            ui.status("hint: start the daemon with `sfctl daemon start`");
            Ok(())
        } else {
            ui.line(format!("already initialised at {}", ws.dir.display()))?;
            if policy_written {
                ui.line(format!(
                    "wrote the default policy to {} (apply it with `sfctl daemon reload`)",
                    policy.display()
                ))?;
            }
            Ok(())
        }
    })
}

fn create_layout(ws: &WorkspacePaths) -> CliResult {
    let mkdir = |p: &Path, mode: u32| {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(p)
            .map_err(|e| CliError::io(format!("failed to create {}", p.display()), &e))
    };
    // Private to the user: the database holds lease tokens, and logs and prompts may quote
    // secrets. sfd repairs these modes when it starts.
    mkdir(&ws.dir, 0o700)?;
    for d in [ws.worktrees(), ws.logs(), ws.prompts(), ws.playbooks()] {
        mkdir(&d, 0o700)?;
    }
    mkdir(&ws.dir.join("run"), 0o700)?;
    write_private(&ws.config(), DEFAULT_CONFIG)
}

/// Writes `text` to a new file only the user can read.
fn write_private(path: &Path, text: &str) -> CliResult {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| CliError::io(format!("failed to write {}", path.display()), &e))
}

/// Appends `/.sf/` to git's info/exclude unless a line already says it.
fn add_exclude(path: &Path) -> CliResult {
    let fail = |e: std::io::Error| CliError::io(format!("failed to update {}", path.display()), &e);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    let existing = match fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fail(e)),
    };
    if existing.lines().any(|l| l.trim() == EXCLUDE_LINE) {
        return Ok(());
    }
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(EXCLUDE_LINE);
    text.push('\n');
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comments must not lead a user to hand a key to every run (`env_passthrough`
    /// reaches every worker, steward and merge test), and name only flags that exist.
    #[test]
    fn default_config_suggests_keys_as_secrets_and_real_flags_only() {
        let passthrough = DEFAULT_CONFIG
            .lines()
            .skip_while(|l| !l.contains("passed on to every worker"))
            .take_while(|l| !l.starts_with("# env_passthrough"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!passthrough.contains("API_KEY"), "{passthrough}");
        assert!(!DEFAULT_CONFIG.contains("--timeout"));
        assert!(DEFAULT_CONFIG.contains("(--max-runtime)"));
        assert!(DEFAULT_CONFIG.contains("ANTHROPIC_API_KEY = \"env:ANTHROPIC_API_KEY\""));
        let register = crate::clap_tree();
        let agent = register.find_subcommand("agent").expect("agent");
        let reg = agent.find_subcommand("register").expect("register");
        assert!(
            reg.get_arguments()
                .any(|a| a.get_long() == Some("max-runtime"))
        );
    }

    #[test]
    fn default_config_is_valid_toml_with_only_comments_and_tables() {
        let value: toml::Table = toml::from_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(
            value.keys().collect::<Vec<_>>(),
            [
                "merge", "prices", "sandbox", "secrets", "staffing", "worktree"
            ]
        );
        assert!(value["merge"].as_table().unwrap().is_empty());
        let uncommented: toml::Table = toml::from_str(
            &DEFAULT_CONFIG
                .lines()
                .map(|l| {
                    l.strip_prefix("# ")
                        .filter(|r| r.contains(" = "))
                        .unwrap_or(l)
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        assert_eq!(uncommented["max_workers"].as_integer(), Some(4));
        assert_eq!(uncommented["merge"]["strategy"].as_str(), Some("squash"));
    }

    #[test]
    fn exclude_line_is_added_once() {
        let dir = std::env::temp_dir().join(format!("sfctl-init-{}", std::process::id()));
        let path = dir.join("info").join("exclude");
        add_exclude(&path).unwrap();
        fs::write(&path, "# comment\n/.sf/\nfoo").unwrap();
        add_exclude(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "# comment\n/.sf/\nfoo");
        fs::write(&path, "foo").unwrap();
        add_exclude(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "foo\n/.sf/\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
