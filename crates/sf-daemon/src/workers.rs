//! Starting and supervising one worker run, entirely off the owner task: worktree, setup
//! command, prompt, spawn, then wait for the exit (or the wall-time limit, or a stop) and
//! report back to the owner as [`Internal`] messages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sf_proto::{AgentSpec, RunUsage, TaskDetail};
use sf_store::Claim;
use sf_worker::adapters::{RunReport, TokenUsage};
use sf_worker::launcher::{self, EndReason, Environment, Kind, LaunchError, Limits, Run, RunSpec};
use sf_worker::log::LogCap;
use sf_worker::outcome::RunClass;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::errors::error_chain;
use crate::mailbox::{Ending, ExitWhy, Internal};

/// Tells the owner what git work repaired, if anything.
pub(crate) fn report_repairs(
    tx: &mpsc::UnboundedSender<Internal>,
    task: Option<&str>,
    repaired: Vec<String>,
) {
    send_repairs(tx, task, repaired, false);
}

/// Records that a run changed its worktree's git links, restored since
/// (`worktree_tampered`).
pub(crate) fn report_tampering(
    tx: &mpsc::UnboundedSender<Internal>,
    task: Option<&str>,
    restored: Vec<String>,
) {
    send_repairs(tx, task, restored, true);
}

fn send_repairs(
    tx: &mpsc::UnboundedSender<Internal>,
    task: Option<&str>,
    repaired: Vec<String>,
    tampered: bool,
) {
    if repaired.is_empty() {
        return;
    }
    let task = task.and_then(|t| sf_proto::TaskId::new(t).ok());
    let _ = tx.send(Internal::Repaired {
        task,
        repaired,
        tampered,
    });
}

/// Everything a launch needs, moved into its task.
pub(crate) struct Launch {
    pub config: Arc<Config>,
    pub claim: Claim,
    pub agent: AgentSpec,
    pub task: TaskDetail,
    pub target: String,
    pub stop: CancellationToken,
    pub tx: mpsc::UnboundedSender<Internal>,
    /// A playbook shell step: run this instead of an agent.
    pub shell: Option<sf_store::ShellStep>,
    /// A session of the agent's CLI to continue (`agent start --resume`).
    pub resume: Option<String>,
    /// Where the run's sandbox namespace is recorded as this agent's.
    pub identities: crate::identity::Identities,
    /// What its budgets leave it to spend, in USD, for a CLI that stops itself at a cost.
    pub cost_left: Option<f64>,
    /// The skills its prompt gets (checked against their pins by the spawn gate).
    pub skills: Vec<sf_core::skills::Skill>,
    /// A session's turn: its input (the whole prompt when the CLI's session is resumed).
    pub turn_input: Option<String>,
}

pub(crate) fn worktree_path(config: &Config, name: &str) -> PathBuf {
    config.paths.worktrees().join(name)
}

pub(crate) fn log_path(config: &Config, task: &str, run_id: i64) -> PathBuf {
    config.paths.logs().join(format!("{task}-{run_id}.log"))
}

/// Runs one launch to the end.
pub(crate) async fn launch(l: Launch) {
    let run_id = l.claim.run_id;
    match start(&l).await {
        Err(e) => {
            tracing::warn!(run_id, error = %e.message, agent_fault = e.agent_fault, "worker failed to start");
            let _ = l.tx.send(Internal::SpawnFailed {
                run_id,
                error: e.message,
                agent_fault: e.agent_fault,
            });
        }
        Ok((run, log)) => {
            let watch = Watch {
                identities: l.identities,
                agent: l.claim.agent.clone(),
                egress: crate::egress::rules(&l.config, &l.agent),
            };
            supervise(run, run_id, l.stop, l.agent.adapter, log, l.tx, watch).await;
        }
    }
}

async fn start(l: &Launch) -> Result<(Run, PathBuf), LaunchError> {
    let config = &l.config;
    let root = config.paths.root.clone();
    let wt_path = worktree_path(config, &l.claim.worktree);
    let (name, branch, target) = (
        l.claim.task_id.to_string(),
        l.claim.branch.clone(),
        l.target.clone(),
    );
    let wt_path2 = wt_path.clone();
    let resumed = l.claim.resumed;
    let dir = l.claim.worktree.clone();
    let wt = tokio::task::spawn_blocking(move || {
        // a reopened task's worktree may be being retired: that ends first
        crate::janitor::wait_until_retired(&dir);
        // a reopened task whose branch was retired goes on from its archived work
        if resumed {
            sf_git::restore_branch(&root, &branch, &name)?;
        }
        sf_git::ensure_worktree(&root, &name, &wt_path2, &branch, &target)
    })
    .await
    .map_err(|e| LaunchError::other(format!("worktree task failed: {e}")))?
    .map_err(|e| LaunchError::other(error_chain(&e)))?;
    report_repairs(&l.tx, Some(l.claim.task_id.as_str()), wt.repaired.clone());
    let log = log_path(config, l.claim.task_id.as_str(), l.claim.run_id);
    // a shell command on the run's worktree, in the sandbox of the run's agent
    let shell_as_agent = |proxy| Confine {
        name: &l.claim.agent,
        worktree: &wt.path,
        branch: Some(&l.claim.branch),
        program: "/bin/sh",
        adapter: None,
        read: Vec::new(),
        proxy,
    };
    if wt.created
        && let Some(setup) = &config.worktree_setup
    {
        run_setup(config, setup, &shell_as_agent(false), &log).await?;
    }
    let task = l.claim.task_id.to_string();
    let who = RunIdentity {
        title: Some(&l.task.task.title),
        agent: &l.claim.agent,
        task: Some(&task),
        token: &l.claim.token,
        branch: &l.claim.branch,
        target: &l.target,
    };
    let limits = run_limits(config, &l.agent);
    let spec = if let Some(shell) = &l.shell {
        let mut env = run_environment(config, &who, &wt.path, &log);
        env.set
            .extend(shell.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        // a playbook's shell step runs as the agent's run: in its sandbox, with its proxy
        let sandbox = confine(config, &shell_as_agent(true), &mut env)?;
        RunSpec {
            env,
            log_cap: Some(LogCap::new(config.run_log_max)),
            sandbox,
            ..RunSpec::shell(Kind::Shell, &shell.command, &wt.path, &log, limits)
        }
    } else {
        let prompt = match (&l.turn_input, &l.resume) {
            // the CLI keeps the session's context: only the new input is sent
            (Some(input), Some(_)) => input.clone(),
            (Some(input), None) => format!(
                "{}\n\n{input}",
                crate::prompt::build(config, &l.agent, &l.task, &l.claim, &l.target, &l.skills)
            ),
            (None, _) => {
                crate::prompt::build(config, &l.agent, &l.task, &l.claim, &l.target, &l.skills)
            }
        };
        let prompt_file = config
            .paths
            .logs()
            .join(format!("{}-{}.prompt.md", l.claim.task_id, l.claim.run_id));
        if let Some(session) = &l.resume {
            tracing::info!(run_id = l.claim.run_id, %session, "continuing a session of the agent's CLI");
        }
        let prompt = Prompt {
            text: &prompt,
            file: &prompt_file,
            resume: l.resume.as_deref(),
        };
        let mut spec = agent_run(config, &l.agent, &who, &wt.path, &prompt, &log, Vec::new())?;
        spec.tap = live_tap(l.agent.adapter, l.claim.run_id, &l.tx);
        if let Some(usd) = l.cost_left {
            spec.args
                .extend(sf_worker::adapters::budget_args(l.agent.adapter, usd));
        }
        spec
    };
    let run = launcher::launch(spec)?;
    tracing::info!(run_id = l.claim.run_id, task = %l.claim.task_id, agent = %l.claim.agent, pid = run.pid(), "worker spawned");
    Ok((run, log))
}

/// What the owner follows of a run's output as it comes: the tool calls and results of the
/// CLIs whose calls sf's hook guards (`Internal::Live`).
pub(crate) fn live_tap(
    adapter: sf_proto::Adapter,
    run_id: i64,
    tx: &tokio::sync::mpsc::UnboundedSender<Internal>,
) -> Option<sf_worker::log::LineTap> {
    if !sf_worker::adapters::guarded(adapter) {
        return None;
    }
    let tx = tx.clone();
    Some(sf_worker::log::LineTap(std::sync::Arc::new(
        move |line: &str| {
            for live in sf_worker::adapters::live(adapter, line) {
                let _ = tx.send(Internal::Live { run_id, live });
            }
        },
    )))
}

/// An agent's wall time: its own `max_runtime_secs`, or the configured worker timeout.
pub(crate) fn run_limits(config: &Config, agent: &AgentSpec) -> Limits {
    Limits {
        wall: agent
            .max_runtime_secs
            .map_or(config.worker_timeout, Duration::from_secs),
        grace: config.stop_grace,
        stall: Some(sf_worker::launcher::Stall {
            after: config.stall_timeout,
            stream: agent.adapter,
        }),
    }
}

/// What an agent's run is asked: the prompt, the file it is also written to, and a session
/// of its CLI to continue.
pub(crate) struct Prompt<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    pub resume: Option<&'a str>,
}

/// The session a task's next run continues (`resume_on_handoff`): that of the task's last
/// run when it handed the task off, with a CLI of the same adapter.
pub(crate) fn handed_off_session(task: &TaskDetail, adapter: sf_proto::Adapter) -> Option<String> {
    let last = task.runs.iter().find(|r| r.ended_at.is_some())?;
    let usage = last.usage.as_ref()?;
    (last.outcome.as_deref() == Some("handed_off") && usage.adapter == Some(adapter))
        .then(|| usage.session_id.clone())
        .flatten()
}

/// Writes an agent's prompt and builds the run of its CLI with its adapter: argv, stdin,
/// the run environment, the adapter's variables, the extra ones and the agent's secrets.
pub(crate) fn agent_run(
    config: &Config,
    agent: &AgentSpec,
    who: &RunIdentity<'_>,
    cwd: &Path,
    prompt: &Prompt<'_>,
    log: &Path,
    extra_env: Vec<(String, String)>,
) -> Result<RunSpec, LaunchError> {
    let Prompt {
        text: prompt,
        file: prompt_file,
        resume,
    } = *prompt;
    std::fs::create_dir_all(config.paths.logs())
        .map_err(|e| LaunchError::other(format!("failed to create the log directory: {e}")))?;
    crate::private::write_file(prompt_file, prompt.as_bytes()).map_err(|e| {
        LaunchError::other(format!("failed to write {}: {e}", prompt_file.display()))
    })?;
    // OpenCode's settings as sfd passes them through, which its adapter adds sf's guard to
    let opencode_config = config
        .env_passthrough
        .iter()
        .any(|k| k == "OPENCODE_CONFIG_CONTENT")
        .then(|| std::env::var("OPENCODE_CONFIG_CONTENT").ok())
        .flatten();
    let argv = sf_worker::adapters::launch(&sf_worker::adapters::LaunchInput {
        adapter: agent.adapter,
        executable: agent.command.as_deref(),
        model: agent.model.as_deref(),
        effort: agent.effort,
        prompt,
        prompt_file,
        resume_session: resume,
        opencode_config: opencode_config.as_deref(),
    })
    .map_err(|e| LaunchError::agent(error_chain(&e)))?;
    // the adapter's files (OpenCode's guard plugin), fresh for each run, each in a folder
    // of its own which the run may read
    let mut read = vec![prompt_file.to_owned()];
    for (path, text) in &argv.files {
        let dir = path.parent().unwrap_or(path);
        crate::private::create_dir(dir)
            .and_then(|()| crate::private::write_file(path, text.as_bytes()))
            .map_err(|e| LaunchError::other(format!("failed to write {}: {e}", path.display())))?;
        read.push(dir.to_owned());
    }
    let mut env = run_environment(config, who, cwd, prompt_file);
    // secrets are set last: none may replace what the adapter sets (OpenCode's guard is in
    // OPENCODE_CONFIG_CONTENT)
    if let Some(alias) = agent
        .secrets
        .iter()
        .find(|a| argv.env.iter().any(|(k, _)| k == *a))
    {
        return Err(LaunchError::agent(format!(
            "secret `{alias}` would replace {alias}, which sf sets for the {} adapter",
            agent.adapter
        )));
    }
    env.set.extend(argv.env);
    env.set.extend(extra_env);
    // secrets last, by alias: only those the agent lists, read now, never logged (invariant 7);
    // their values are filtered out of the run's output
    for alias in &agent.secrets {
        let value = read_secret(config, alias).map_err(LaunchError::agent)?;
        env.secrets.push((alias.clone(), value));
    }
    claude_as_root(agent, &env)?;
    let sandbox = confine(
        config,
        &Confine {
            name: who.agent,
            worktree: cwd,
            branch: Some(who.branch),
            program: &argv.program,
            adapter: Some(agent.adapter),
            read,
            proxy: true,
        },
        &mut env,
    )?;
    Ok(RunSpec {
        kind: Kind::Agent,
        program: argv.program,
        args: argv.args,
        stdin: argv.stdin,
        cwd: cwd.to_owned(),
        env,
        log: log.to_owned(),
        log_cap: Some(LogCap::new(config.run_log_max)),
        limits: run_limits(config, agent),
        sandbox,
        tap: None,
    })
}

/// The value of the secret `alias`, read now from its source in `[secrets]`.
fn read_secret(config: &Config, alias: &str) -> Result<String, String> {
    match config.secrets.get(alias) {
        Some(source) => source.read(alias),
        None => Err(format!(
            "secret `{alias}` is no longer defined in [secrets] of .sf/config.toml"
        )),
    }
}

/// The secrets a run adopted after a restart holds, `(alias, value)`, for its resumed log
/// copier to filter out of its output (they are never stored, so they are read again): the
/// aliases `agent` lists (every alias of `[secrets]` when the agent is no longer known),
/// each with its value read from its source now and, while the process lives, the value it
/// was given at its start (`/proc/<pid>/environ`), should the two differ. An alias with
/// neither is said in sfd's log, by name.
pub(crate) fn adopted_secrets(
    config: &Config,
    run_id: i64,
    agent: Option<&AgentSpec>,
    process: Option<(u32, Option<u64>)>,
) -> Vec<(String, String)> {
    let aliases: Vec<&str> = match agent {
        Some(a) => a.secrets.iter().map(String::as_str).collect(),
        None => config.secrets.keys().map(String::as_str).collect(),
    };
    let mut secrets: Vec<(String, String)> = aliases
        .iter()
        .filter_map(|a| Some(((*a).to_owned(), read_secret(config, a).ok()?)))
        .collect();
    if let Some((pid, start)) = process {
        for given in sf_worker::process::environ_values(pid, start, &aliases) {
            if !secrets.contains(&given) {
                secrets.push(given);
            }
        }
    }
    for alias in aliases {
        if !secrets.iter().any(|(a, _)| a == alias) {
            tracing::warn!(
                run_id,
                alias,
                "the value of a secret of an adopted run cannot be read again; its output is not filtered for it"
            );
        }
    }
    secrets
}

/// What a confined process is: the name its private HOME and TMPDIR go by (the agent's),
/// the worktree it works in, the branch it may move (none: no ref), the program it runs,
/// the adapter whose login it gets, more files it may read, and whether it gets the egress
/// proxy (a run's own; other processes have no network in full mode).
pub(crate) struct Confine<'a> {
    pub name: &'a str,
    pub worktree: &'a Path,
    pub branch: Option<&'a str>,
    pub program: &'a str,
    pub adapter: Option<sf_proto::Adapter>,
    pub read: Vec<PathBuf>,
    pub proxy: bool,
}

/// The sandbox of `[sandbox] mode` for a process `c` describes (`None` with `"off"`), and
/// the variables it needs in `env`: its private HOME and TMPDIR, the toolchains' homes,
/// git without automatic housekeeping, and the proxy.
pub(crate) fn confine(
    config: &Config,
    c: &Confine<'_>,
    env: &mut Environment,
) -> Result<Option<sf_worker::sandbox::Policy>, LaunchError> {
    let (network, namespaces) = match config.sandbox {
        crate::config::SandboxMode::Off => return Ok(None),
        crate::config::SandboxMode::Full { network } => (network, true),
        crate::config::SandboxMode::LandlockOnly => (true, false),
    };
    let (mut policy, home, tmp) =
        sandbox_policy(config, c.name, c.branch, c.worktree, c.program, network)
            .map_err(|e| LaunchError::other(format!("cannot sandbox the run: {e}")))?;
    policy.read.extend(c.read.iter().cloned());
    policy.namespaces = namespaces;
    if let Some(adapter) = c.adapter {
        copy_home(config, adapter, &home);
    }
    env.set.push(("HOME".into(), home.display().to_string()));
    env.set.push(("TMPDIR".into(), tmp.display().to_string()));
    // with a private HOME the toolchains are found where the user's HOME has them
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        if std::env::var_os(var).is_none()
            && let Some(path) = user_home
                .as_ref()
                .map(|h| h.join(dir))
                .filter(|p| p.is_dir())
        {
            env.set.push((var.to_owned(), path.display().to_string()));
            policy.read.push(path);
        }
    }
    // git's automatic housekeeping would rewrite `packed-refs`, shared with the user and not
    // the run's to write: it is sfd's to do, not each commit's
    env.set.extend(
        [
            ("GIT_CONFIG_COUNT", "2"),
            ("GIT_CONFIG_KEY_0", "gc.auto"),
            ("GIT_CONFIG_VALUE_0", "0"),
            ("GIT_CONFIG_KEY_1", "maintenance.auto"),
            ("GIT_CONFIG_VALUE_1", "false"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    if !network && c.proxy {
        // its only way out: sfd's egress proxy (see `crate::egress`)
        policy.egress = Some(crate::egress::PORT);
        env.set.extend(crate::egress::proxy_env());
    }
    Ok(Some(policy))
}

/// What an agent's run may reach in `[sandbox] mode = "full"`, and its private HOME and
/// TMPDIR (made here, under `.sf/`):
/// - write: its worktree; of the git directory, the objects, its worktree's admin folder
///   and its own branch's folder of refs and reflogs; its HOME and TMPDIR;
/// - read: the system folders, the repository, the toolchains (`PATH`, `CARGO_HOME`,
///   `RUSTUP_HOME`), sfctl and the agent's program.
///
/// Nothing else: not the user's home, not another branch's ref, not `.sf/sf.db` for writing.
fn sandbox_policy(
    config: &Config,
    name: &str,
    branch: Option<&str>,
    worktree: &Path,
    program: &str,
    network: bool,
) -> std::io::Result<(sf_worker::sandbox::Policy, PathBuf, PathBuf)> {
    let root = &config.paths.root;
    let git = root.join(".git");
    let home = config.paths.dir.join("home").join(name);
    let tmp = config.paths.dir.join("tmp").join(name);
    for dir in [&home, &tmp] {
        crate::private::create_dir(dir)?;
    }
    // the worktree's admin folder, as its `.git` file names it
    let admin = std::fs::read_to_string(worktree.join(".git"))?
        .trim()
        .strip_prefix("gitdir:")
        .map(|p| PathBuf::from(p.trim()))
        .ok_or_else(|| std::io::Error::other("the worktree's .git file names no gitdir"))?;
    let branch_dir = |base: PathBuf| {
        let r = base.join(branch?);
        let dir = r.parent().map_or(base.clone(), Path::to_owned);
        let _ = std::fs::create_dir_all(&dir);
        Some(dir)
    };
    // the repository, but not `.sf/`: the database (other runs' leases), other agents'
    // homes, logs and worktrees; a run gets its own pieces of it below
    let repo = std::fs::read_dir(root)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != ".sf")
        .map(|e| e.path());
    let mut policy = sf_worker::sandbox::Policy::system(repo);
    policy.network = network;
    policy.write.extend([
        worktree.to_owned(),
        git.join("objects"),
        admin,
        home.clone(),
        tmp.clone(),
    ]);
    policy.write.extend(branch_dir(git.join("refs/heads")));
    policy.write.extend(branch_dir(git.join("logs/refs/heads")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    policy
        .read
        .extend(std::env::split_paths(&path).filter(|p| p.is_absolute()));
    for var in ["CARGO_HOME", "RUSTUP_HOME"] {
        policy.read.extend(std::env::var_os(var).map(PathBuf::from));
    }
    policy
        .read
        .extend(sfctl_path(config).iter().flat_map(|p| program_dirs(p)));
    policy.read.extend(program_dirs(Path::new(program)));
    Ok((policy, home, tmp))
}

/// What a sandboxed run must read to run `program`: its folder, and through any symbolic
/// link the folder of the file it names; for a program inside a `node_modules` tree (an
/// npm-installed CLI, which loads its package and its platform binary from there), that
/// whole tree.
fn program_dirs(program: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if !program.is_absolute() {
        return dirs;
    }
    dirs.extend(program.parent().map(Path::to_owned));
    if let Ok(real) = std::fs::canonicalize(program) {
        dirs.extend(real.parent().map(Path::to_owned));
        for p in [program, real.as_path()] {
            dirs.extend(
                p.ancestors()
                    .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
                    .map(Path::to_owned),
            );
        }
    }
    dirs
}

/// Copies what the adapter's CLI needs from the user's home (`[sandbox.home]`: its login,
/// its settings) into the run's private HOME, fresh for each run. Only regular files and
/// folders are copied, never a symbolic link (it could name anything); what is missing is
/// skipped: a CLI that then cannot log in says so, and its agent is disabled with the fix.
fn copy_home(config: &Config, adapter: sf_proto::Adapter, home: &Path) {
    let Some(user_home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return;
    };
    for rel in config.home_copies.0.get(&adapter).into_iter().flatten() {
        let (from, to) = (user_home.join(rel), home.join(rel));
        if let Err(e) = copy_tree(&from, &to) {
            tracing::warn!(from = %from.display(), error = %e, "cannot copy into a run's private HOME");
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(from) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(parent) = to.parent() {
        crate::private::create_dir(parent)?;
    }
    if meta.is_dir() {
        crate::private::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// Claude Code refuses `--dangerously-skip-permissions` (which an unattended run needs) as
/// root, unless told it runs in a sandbox with `IS_SANDBOX=1`. sf does not say so on its
/// own: a root sfd refuses the run (the agent is disabled with this message) unless the
/// user passes `IS_SANDBOX` through, on a machine that is itself a sandbox.
fn claude_as_root(agent: &AgentSpec, env: &Environment) -> Result<(), LaunchError> {
    if agent.adapter != sf_proto::Adapter::Claude || !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let told = env.set.iter().any(|(k, v)| k == "IS_SANDBOX" && v == "1")
        || (env.passthrough.iter().any(|k| k == "IS_SANDBOX")
            && std::env::var("IS_SANDBOX").is_ok_and(|v| v == "1"));
    if told {
        return Ok(());
    }
    Err(LaunchError::agent(
        "Claude Code refuses to run unattended (--dangerously-skip-permissions) as root: run          sfd as an ordinary user, or, only on a machine that is itself a sandbox, start sfd          with IS_SANDBOX=1 and add \"IS_SANDBOX\" to env_passthrough in .sf/config.toml",
    ))
}

/// Whether a failure to start a run (its error chain, as text: git2's errors carry only the
/// system's message) says the daemon itself ran out of something: descriptors, processes,
/// memory, disk space or quota.
pub(crate) fn out_of_resources(error: &str) -> bool {
    const SIGNS: [&str; 8] = [
        // the kernel cannot make the sandbox (`[sandbox] mode = "full"`): sfd's lack, not
        // the task's; dispatch waits, and `daemon status` says why
        "cannot sandbox",
        "Too many open files",
        "Cannot allocate memory",
        "No space left on device",
        "Disk quota exceeded",
        "Resource temporarily unavailable",
        "(os error 24)",
        "(os error 23)",
    ];
    SIGNS.iter().any(|s| error.contains(s))
}

/// The configured setup command is trusted configuration (the user wrote it), so it runs
/// through `sh -c`; nothing from a task ever reaches it.
async fn run_setup(
    config: &Config,
    setup: &str,
    confined: &Confine<'_>,
    log: &Path,
) -> Result<(), LaunchError> {
    let timeout = config.worktree_setup_timeout;
    let limits = Limits {
        wall: timeout,
        grace: Duration::from_secs(5),
        stall: None,
    };
    // in the sandbox of the agent's run (the user wrote the command, but it runs on the
    // agent's worktree), without network in full mode
    let mut env = trusted_environment(config);
    let sandbox = confine(config, confined, &mut env)?;
    let spec = RunSpec {
        env,
        log_cap: Some(LogCap::new(config.run_log_max)),
        sandbox,
        ..RunSpec::shell(Kind::Setup, setup, confined.worktree, log, limits)
    };
    let run = launcher::launch(spec)
        .map_err(|e| LaunchError::other(format!("worktree setup `{setup}`: {}", e.message)))?;
    // the worker appends to the same log: `wait` returns once the setup's output is complete
    let ended = run.wait(std::future::pending()).await;
    match ended.why {
        _ if ended.success() => Ok(()),
        EndReason::TimedOut => Err(LaunchError::other(format!(
            "worktree setup `{setup}` timed out after {}",
            humantime::format_duration(timeout)
        ))),
        _ => {
            let tail = sf_worker::process::tail_lines(log, 10).join("\n");
            let how = ended
                .exit
                .map_or_else(|| "could not be waited for".to_owned(), |e| e.to_string());
            Err(LaunchError::other(format!(
                "worktree setup `{setup}` failed ({how}):\n{tail}"
            )))
        }
    }
}

/// The environment of trusted configuration (a setup or test command): the base variables
/// and the configured pass-through list, no identity.
pub(crate) fn trusted_environment(config: &Config) -> Environment {
    Environment {
        passthrough: config.env_passthrough.clone(),
        ..Environment::default()
    }
}

/// Who a run is, for its environment.
pub(crate) struct RunIdentity<'a> {
    pub agent: &'a str,
    pub task: Option<&'a str>,
    /// The task's title (`SF_TASK_TITLE`).
    pub title: Option<&'a str>,
    pub token: &'a str,
    pub branch: &'a str,
    pub target: &'a str,
}

/// The sfctl binary workers use: configured, or next to sfd.
pub(crate) fn sfctl_path(config: &Config) -> Option<PathBuf> {
    config.sfctl.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("sfctl")))
            .filter(|p| p.exists())
    })
}

/// A run's environment: the base variables and the configured pass-through list, with
/// sfctl's directory first on `PATH`, and the `SF_*` variables that say who the run is.
pub(crate) fn run_environment(
    config: &Config,
    who: &RunIdentity<'_>,
    worktree: &Path,
    prompt_file: &Path,
) -> Environment {
    let sfctl = sfctl_path(config);
    let mut set: Vec<(String, String)> = vec![
        (
            "SF_WORKSPACE".into(),
            config.paths.root.display().to_string(),
        ),
        ("SF_SOCKET".into(), config.socket.display().to_string()),
        ("SF_AGENT".into(), who.agent.to_owned()),
        ("SF_RUN".into(), who.token.to_owned()),
        ("SF_BRANCH".into(), who.branch.to_owned()),
        ("SF_TARGET_BRANCH".into(), who.target.to_owned()),
        ("SF_WORKTREE".into(), worktree.display().to_string()),
        ("SF_PROMPT_FILE".into(), prompt_file.display().to_string()),
    ];
    if let Some(t) = who.task {
        set.push(("SF_TASK_ID".into(), t.to_owned()));
    }
    if let Some(t) = who.title {
        set.push(("SF_TASK_TITLE".into(), t.to_owned()));
    }
    if let Some(p) = &sfctl {
        set.push(("SF_SFCTL".into(), p.display().to_string()));
    }
    Environment {
        passthrough: config.env_passthrough.clone(),
        path_first: sfctl.as_ref().and_then(|p| p.parent()).map(Path::to_owned),
        set,
        secrets: Vec::new(),
    }
}

/// Who a supervised run is, and what its egress proxy allows.
pub(crate) struct Watch {
    /// Where the run's sandbox namespace is recorded as its agent's.
    pub identities: crate::identity::Identities,
    /// The agent.
    pub agent: String,
    /// The hosts its proxy relays to.
    pub egress: Vec<sf_core::egress::Allow>,
}

/// Waits for a run (its exit, its wall-time limit or a stop) and reports its end to the
/// owner, with what its adapter's parser read in its log. A sandboxed run's egress proxy
/// is served meanwhile.
pub(crate) async fn supervise(
    mut run: Run,
    run_id: i64,
    stop: CancellationToken,
    adapter: sf_proto::Adapter,
    log: PathBuf,
    tx: mpsc::UnboundedSender<Internal>,
    watch: Watch,
) {
    let Watch {
        identities,
        agent,
        egress,
    } = watch;
    // before anything else: the run may call sfd at once, from its own namespace
    identities.started(run_id, &agent, run.pid());
    let run_over = CancellationToken::new();
    if let Some(l) = run.take_egress() {
        crate::egress::serve(l, run_id, egress, tx.clone(), run_over.clone());
    }
    let _ = tx.send(Internal::Spawned {
        run_id,
        pid: run.pid(),
        start_time: run.start_time(),
        log_path: log.clone(),
    });
    let ended = run.wait(stop.cancelled()).await;
    run_over.cancel();
    if let Some(r) = ended.log
        && r.dropped > 0
    {
        let _ = tx.send(Internal::LogTruncated {
            run_id,
            dropped: r.dropped,
            log: log.clone(),
        });
    }
    let report = read_report(adapter, &log).await;
    let _ = tx.send(Internal::Exited {
        run_id,
        exit: ended.exit,
        why: ExitWhy::from(ended.why),
        report: report.map(Box::new),
    });
}

/// Parses a finished run's log with its adapter's parser (`None`: no log to read).
pub(crate) async fn read_report(adapter: sf_proto::Adapter, log: &Path) -> Option<RunReport> {
    let log = log.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let file = std::fs::File::open(&log).ok()?;
        let mut parser = sf_worker::adapters::parser(adapter);
        let mut report = RunReport::default();
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            for s in parser.feed_line(&line) {
                report.apply(&s);
            }
        }
        Some(report)
    })
    .await
    .ok()
    .flatten()
}

/// The tokens the earlier runs of `task` in `session` recorded: what a CLI that reports a
/// session's running total (Codex) had already counted when a run continues it.
pub(crate) fn session_tokens(task: &TaskDetail, session: &str) -> TokenUsage {
    task.runs
        .iter()
        .filter_map(|r| r.usage.as_ref())
        .filter(|u| u.session_id.as_deref() == Some(session))
        .fold(TokenUsage::default(), |sum, u| {
            sum.saturating_add(TokenUsage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_read_tokens: u.cache_read_tokens,
                cache_write_tokens: u.cache_write_tokens,
            })
        })
}

/// What a run's report adds to its record: tokens, cost, tool calls, session, result.
/// `counted`: tokens of its session that earlier runs recorded, when its CLI reports the
/// session's running total (Codex): they are not counted twice.
pub(crate) fn run_usage(
    report: &RunReport,
    adapter: sf_proto::Adapter,
    counted: Option<TokenUsage>,
) -> RunUsage {
    let tokens = match counted {
        Some(before) if adapter == sf_proto::Adapter::Codex => report.tokens.saturating_sub(before),
        _ => report.tokens,
    };
    RunUsage {
        adapter: report.session_id.is_some().then_some(adapter),
        session_id: report.session_id.clone(),
        input_tokens: tokens.input_tokens,
        output_tokens: tokens.output_tokens,
        cache_read_tokens: tokens.cache_read_tokens,
        cache_write_tokens: tokens.cache_write_tokens,
        cost_usd: report.cost_usd,
        tool_calls: report.tool_calls,
        steps: report.steps,
        result: report
            .result
            .as_ref()
            .map(|r| r.text.chars().take(2000).collect()),
    }
}

/// Saves a failed run's uncommitted work (off the owner) and reports back.
pub(crate) fn save_work(
    config: Arc<Config>,
    run: (i64, String, i64, Option<String>, Option<String>),
    ending: Ending,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let (run_id, task, epoch, worktree, log) = run;
    tokio::spawn(async move {
        let why = ending.why;
        // the recovery resumed the copier with the run's secrets; none is started here,
        // where they are not known
        if why == ExitWhy::Vanished
            && let Some(capture) = log
                .as_ref()
                .and_then(|l| sf_worker::log::running(Path::new(l)))
        {
            // the recovery's copier is finishing the tail the note quotes; a process the run
            // left behind may keep its output open, so it gets a few seconds, no more
            let _ = tokio::time::timeout(Duration::from_secs(5), capture.finished()).await;
        }
        let wt = worktree.map(|w| (worktree_path(&config, &w), w));
        let tampered = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let saved = match wt.filter(|(p, _)| p.exists()) {
            Some((path, name)) => {
                let (task2, tx2, root) = (task.clone(), tx.clone(), config.paths.root.clone());
                let tampered = Arc::clone(&tampered);
                tokio::task::spawn_blocking(move || {
                    // before any git work on it: the links the run may have rewritten
                    let restored = sf_git::restore_worktree_links(&root, admin_name(&name), &path)?;
                    if !restored.is_empty() {
                        tampered.store(true, std::sync::atomic::Ordering::Relaxed);
                        report_tampering(&tx2, Some(&task2), restored);
                    }
                    // the worker is gone: a lock in its worktree is a leftover
                    let repaired = sf_git::locks::repair_worktree(&path)?;
                    report_repairs(&tx2, Some(&task2), repaired);
                    sf_git::wip_snapshot(&path, &task2, epoch, "sf")
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| error_chain(&e)))
            }
            None => Err("no worktree".to_owned()),
        };
        let what = ending_words(&config, &ending);
        let saved = match saved {
            Ok(oid) => format!(
                "uncommitted work, if any, was saved to refs/sf/wip/{task}/{epoch} ({})",
                &oid[..oid.len().min(10)]
            ),
            Err(e) => format!("no work was saved: {e}"),
        };
        let tail = log
            .map(|l| sf_worker::process::tail_lines(Path::new(&l), 15))
            .unwrap_or_default();
        let mut note = format!("{what} without completing or handing off; {saved}.");
        if tampered.load(std::sync::atomic::Ordering::Relaxed) {
            note.push_str(
                "\nThe run had changed its worktree's git links (see the worktree_tampered event); \
                 sfd restored them before saving its work.",
            );
        }
        if let Some(said) = &ending.said {
            // the CLI's own words in full: the log's last lines may cut them
            note.push_str(&format!("\n{} said:\n{said}", ending.adapter));
        } else if !tail.is_empty() {
            note.push_str("\nLast log lines:\n");
            note.push_str(&tail.join("\n"));
        }
        let _ = tx.send(Internal::Saved {
            run_id,
            ending,
            note,
        });
    });
}

/// The admin folder's name of the worktree folder `folder` (`<task>-<slug>`): the task that
/// made it, whose id comes first (a fix task works in its original task's worktree).
pub(crate) fn admin_name(folder: &str) -> &str {
    folder.split('-').next().unwrap_or(folder)
}

/// How a failed run ended, in words for its note.
fn ending_words(config: &Config, ending: &Ending) -> String {
    match (ending.class, ending.why) {
        (RunClass::Authentication, _) => format!(
            "the {} CLI could not authenticate (the agent is disabled; the task is not charged)",
            ending.adapter
        ),
        (RunClass::UsageLimit, _) => format!(
            "the {} CLI hit a usage limit (dispatch to it is paused; the task is not charged)",
            ending.adapter
        ),
        (RunClass::NoProgress, _) => format!(
            "the worker showed no progress for {} (stall_timeout) and was stopped",
            humantime::format_duration(config.stall_timeout)
        ),
        (RunClass::Timeout, _) => "the worker hit its wall-time limit and was stopped".to_owned(),
        (RunClass::Stopped, _) => "the worker was stopped".to_owned(),
        (_, ExitWhy::Vanished) => "the worker process was gone after a daemon restart".to_owned(),
        _ => ending.exit.map_or_else(
            || "the worker exited".to_owned(),
            |e| format!("the worker exited ({e})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_daemons_own_exhaustion_is_told_from_the_tasks_failures() {
        for starved in [
            "failed to create /x/.sf/worktrees/a: Too many open files (os error 24)",
            "failed to spawn: Resource temporarily unavailable (os error 11)",
            "failed to write index: No space left on device",
            "failed to open /x: Too many open files in system (os error 23)",
        ] {
            assert!(super::out_of_resources(starved), "{starved}");
        }
        for own in [
            "`npm ci` failed (exit 1)",
            "check out `agent/w/x` in /x: the index is locked",
            "failed to spawn: No such file or directory (os error 2)",
        ] {
            assert!(!super::out_of_resources(own), "{own}");
        }
    }
}
