//! `sfctl demo`: the whole loop on a throwaway repository, with no agent CLI installed.
//!
//! It makes a small Rust crate with a real test suite, starts `sfd` on it, registers three
//! ephemeral workers that run `sfctl demo-agent` (a scripted stand-in for a coding agent that
//! writes real code and commits it) and a merge steward whose test command is `cargo test`,
//! plans six tasks with priorities and dependencies, and shows live progress until every
//! task is merged. One task's first attempt fails its tests and is repaired through a fix
//! task. The repository is left for the user to inspect.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use sf_client::Client;
use sf_proto::paths::WorkspacePaths;
use sf_proto::{AuditEvent, EventId, PlanDetail, Request, Response, TaskDetail, TaskStatus};

use crate::context::{Context, client_name};
use crate::error::{CliError, CliResult};

/// Run the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the throwaway repository (default: a new directory under the system
    /// temp directory)
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Number of ephemeral workers
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub workers: u32,
    /// Give up after this long
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Leave the daemon running at the end
    #[arg(long)]
    pub keep_running: bool,
}

/// One task of the demo plan: title, priority, the module it fills, and what it waits on.
struct Step {
    title: &'static str,
    priority: u8,
    module: &'static str,
    after: &'static [&'static str],
    description: &'static str,
}

const STEPS: &[Step] = &[
    Step {
        title: "Add addition",
        priority: 2,
        module: "add",
        after: &[],
        description: "pub fn add(a, b) with tests",
    },
    Step {
        title: "Add subtraction",
        priority: 3,
        module: "sub",
        after: &[],
        description: "pub fn sub(a, b) with tests",
    },
    Step {
        title: "Add multiplication",
        priority: 3,
        module: "mul",
        after: &[],
        description: "pub fn mul(a, b) with tests",
    },
    Step {
        title: "Add integer division",
        priority: 2,
        module: "div",
        after: &[],
        description: "pub fn div(a, b) -> Option<i64>: None when dividing by zero",
    },
    Step {
        title: "Add power on top of multiplication",
        priority: 4,
        module: "pow",
        after: &["Add multiplication"],
        description: "pub fn pow(base, exp) built on mul()",
    },
    Step {
        title: "Add the mean of a list",
        priority: 3,
        module: "stats",
        after: &["Add addition", "Add integer division"],
        description: "pub fn mean(&[i64]) -> Option<i64> built on add() and div()",
    },
];

fn module_source(module: &str, fixed: bool) -> &'static str {
    match (module, fixed) {
        ("add", _) => {
            "/// Adds two numbers.\npub fn add(a: i64, b: i64) -> i64 {\n    a + b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        assert_eq!(super::add(2, 3), 5);\n        assert_eq!(super::add(-2, 2), 0);\n    }\n}\n"
        }
        ("sub", _) => {
            "/// Subtracts `b` from `a`.\npub fn sub(a: i64, b: i64) -> i64 {\n    a - b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn subtracts() {\n        assert_eq!(super::sub(5, 3), 2);\n    }\n}\n"
        }
        ("mul", _) => {
            "/// Multiplies two numbers.\npub fn mul(a: i64, b: i64) -> i64 {\n    a * b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn multiplies() {\n        assert_eq!(super::mul(4, 3), 12);\n    }\n}\n"
        }
        // the first attempt forgets the zero check: its own test catches it on the merge result
        ("div", false) => {
            "/// Divides `a` by `b`, or `None` when `b` is zero.\npub fn div(a: i64, b: i64) -> Option<i64> {\n    Some(a / b)\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn divides() {\n        assert_eq!(super::div(7, 2), Some(3));\n    }\n\n    #[test]\n    fn refuses_zero() {\n        assert_eq!(super::div(1, 0), None);\n    }\n}\n"
        }
        ("div", true) => {
            "/// Divides `a` by `b`, or `None` when `b` is zero.\npub fn div(a: i64, b: i64) -> Option<i64> {\n    if b == 0 { None } else { Some(a / b) }\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn divides() {\n        assert_eq!(super::div(7, 2), Some(3));\n    }\n\n    #[test]\n    fn refuses_zero() {\n        assert_eq!(super::div(1, 0), None);\n    }\n}\n"
        }
        ("pow", _) => {
            "use crate::mul::mul;\n\n/// `base` to the power `exp`, by repeated multiplication.\npub fn pow(base: i64, exp: u32) -> i64 {\n    (0..exp).fold(1, |acc, _| mul(acc, base))\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn powers() {\n        assert_eq!(super::pow(2, 10), 1024);\n        assert_eq!(super::pow(7, 0), 1);\n    }\n}\n"
        }
        ("stats", _) => {
            "use crate::add::add;\nuse crate::div::div;\n\n/// The integer mean of a list, or `None` for an empty list.\npub fn mean(xs: &[i64]) -> Option<i64> {\n    let n = i64::try_from(xs.len()).ok()?;\n    div(xs.iter().copied().fold(0, add), n)\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn means() {\n        assert_eq!(super::mean(&[1, 2, 3, 6]), Some(3));\n        assert_eq!(super::mean(&[]), None);\n    }\n}\n"
        }
        _ => "",
    }
}

fn git(dir: &Path, args: &[&str]) -> CliResult<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=sf demo",
            "-c",
            "user.email=demo@sf.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CliError::io("failed to run git (is it installed?)", &e))?;
    if !out.status.success() {
        return Err(CliError::user(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn me() -> CliResult<PathBuf> {
    std::env::current_exe().map_err(|e| CliError::io("failed to find the sfctl binary", &e))
}

/// Runs this sfctl with `args` in the demo workspace; returns stdout.
fn sfctl(root: &Path, args: &[&str]) -> CliResult<String> {
    let out = Command::new(me()?)
        .arg("--workspace")
        .arg(root)
        .args(args)
        .env_remove("SF_SOCKET")
        .env_remove("SF_RUN")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CliError::io("failed to run sfctl", &e))?;
    if !out.status.success() {
        return Err(CliError::user(format!(
            "sfctl {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> CliResult<T> {
    serde_json::from_str(text)
        .map_err(|e| CliError::internal(format!("unexpected output from sfctl: {e}")))
}

fn make_repo(dir: &Path) -> CliResult<()> {
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| CliError::io("failed to create the demo repository", &e))?;
    let write = |rel: &str, text: &str| {
        std::fs::write(dir.join(rel), text)
            .map_err(|e| CliError::io(format!("failed to write {rel}"), &e))
    };
    write(
        "Cargo.toml",
        "[package]\nname = \"calc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
    )?;
    write(".gitignore", "/target\n")?;
    write(
        "README.md",
        "# calc\n\nA tiny calculator, written by sf's demo agents.\n",
    )?;
    let mut lib =
        String::from("//! A tiny calculator. Each module is one task of the demo plan.\n\n");
    for s in STEPS {
        lib.push_str(&format!("pub mod {};\n", s.module));
        write(
            &format!("src/{}.rs", s.module),
            &format!("// {}: to be written by a worker\n", s.title),
        )?;
    }
    write("src/lib.rs", &lib)?;
    git(dir, &["init", "-q", "-b", "main"])?;
    git(dir, &["add", "-A"])?;
    git(
        dir,
        &[
            "commit",
            "-q",
            "-m",
            "A calculator crate with empty modules",
        ],
    )?;
    Ok(())
}

fn event_line(
    e: &AuditEvent,
    titles: &std::collections::HashMap<String, String>,
    start: Instant,
) -> Option<String> {
    let t = format!("[{:>5.1}s]", start.elapsed().as_secs_f64());
    let task = e.task.as_ref().map(|t| t.to_string()).unwrap_or_default();
    let title = titles
        .get(&task)
        .map_or_else(String::new, |s| format!(" \"{s}\""));
    let after = e.after.clone().unwrap_or_default();
    let s = |k: &str| {
        after
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    Some(match e.action.as_str() {
        "task_dispatched" => format!(
            "{t} dispatch  {task}{title} -> worker {} on {}",
            s("assignee"),
            s("branch")
        ),
        "task_completed" => format!("{t} complete  {task}{title}: queued for merge"),
        "task_handed_off" => format!("{t} handoff   {task}{title}"),
        "run_failed" => format!("{t} failed    {task}{title}: the worker exited without finishing"),
        "merge_request_updated" if s("state") == "testing" => format!(
            "{t} testing   {} (cargo test on the merge result)",
            e.subject.replace("mr:", "merge request #")
        ),
        "task_merged" => format!(
            "{t} merged    {task}{title} as {}",
            &s("commit")[..s("commit").len().min(10)]
        ),
        "merge_failed" => format!(
            "{t} tests FAILED for {task}{title}: {}",
            e.reason
                .clone()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or("")
        ),
        "task_created" if after.get("fix_of").is_some() => {
            format!("{t} fix task  {task} \"{}\"", s("title"))
        }
        "merge_requeued" => format!("{t} requeued  {task}{title}: the fix is done, testing again"),
        "plan_completed" => format!("{t} plan completed"),
        _ => return None,
    })
}

pub fn run(ctx: &mut Context, args: &DemoArgs) -> CliResult {
    let started = Instant::now();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "sf-demo-{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%H%M%S")
        )),
    };
    if dir.join(".git").exists() {
        return Err(
            CliError::user(format!("{} already holds a repository", dir.display()))
                .with_hint("pass another --dir"),
        );
    }
    ctx.ui.status(format!(
        "creating a throwaway repository at {}",
        dir.display()
    ));
    make_repo(&dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| CliError::io("failed to resolve the demo directory", &e))?;
    sfctl(&dir, &["init"])?;
    let paths = WorkspacePaths::new(&dir);
    let me = me()?;
    // the tests build in the merge worktree's own `target/`, which the repository ignores
    // and the merge queue keeps between merges (and the sandbox lets the tests write)
    let config = format!(
        "# written by `sfctl demo`\nmax_workers = {w}\ncomplete_grace = \"2s\"\nsfctl = \"{me}\"\n\n[merge]\ntest_command = \"cargo test --quiet --offline\"\ntest_timeout = \"5m\"\n",
        w = args.workers,
        me = me.display(),
    );
    std::fs::write(paths.config(), config)
        .map_err(|e| CliError::io("failed to write the demo config", &e))?;
    ctx.ui.status("starting sfd");
    sfctl(&dir, &["daemon", "start"])?;
    let result = drive(ctx, args, &dir, &me, started);
    if !args.keep_running {
        let _ = sfctl(&dir, &["daemon", "stop"]);
    }
    result?;
    say(
        ctx,
        format!("\nThe repository is yours to inspect: cd {}", dir.display()),
    )?;
    if args.keep_running {
        say(
            ctx,
            "sfd is still running there; stop it with `sfctl daemon stop`.",
        )?;
    }
    Ok(())
}

fn drive(ctx: &mut Context, args: &DemoArgs, dir: &Path, me: &Path, started: Instant) -> CliResult {
    let command = format!("{} demo-agent", me.display());
    for i in 1..=args.workers {
        sfctl(
            dir,
            &[
                "agent",
                "register",
                &format!("w{i}"),
                "--role",
                "worker",
                "--command",
                &command,
                "--title",
                "demo worker",
            ],
        )?;
    }
    sfctl(
        dir,
        &[
            "agent", "register", "merger", "--role", "steward", "--focus", "merge",
        ],
    )?;
    let plan: PlanDetail = json(&sfctl(
        dir,
        &["--json", "plan", "create", "A tiny calculator"],
    )?)?;
    let plan_id = plan.plan.id.to_string();
    let mut ids: Vec<(String, String)> = Vec::new();
    for s in STEPS {
        let mut a: Vec<String> = vec![
            "--json".into(),
            "task".into(),
            "create".into(),
            s.title.into(),
            "-p".into(),
            s.priority.to_string(),
            "--plan".into(),
            plan_id.clone(),
            "-d".into(),
            s.description.into(),
        ];
        for dep in s.after {
            let id = ids
                .iter()
                .find(|(t, _)| t == dep)
                .map(|(_, id)| id.clone())
                .unwrap_or_default();
            a.push("--blocked-by".into());
            a.push(id);
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let t: TaskDetail = json(&sfctl(dir, &refs)?)?;
        ids.push((s.title.to_owned(), t.task.id.to_string()));
    }
    say(
        ctx,
        format!(
            "planned {} tasks in plan {plan_id}; {} workers and a merge steward (test command: cargo test)\n",
            STEPS.len(),
            args.workers
        ),
    )?;
    say(ctx, sfctl(dir, &["plan", "show", &plan_id])?)?;
    say(
        ctx,
        "(a draft plan: none of its tasks is dispatched until it is activated)\n",
    )?;
    let socket = WorkspacePaths::new(dir).socket();
    let mut client = Client::connect(&socket, &client_name(), Some("human:demo".into()))?;
    let since = match client.request(&Request::ListEvents {
        since: None,
        task: None,
        limit: Some(1),
        denied: false,
    })? {
        Response::Events(e) => e.last().map_or(EventId(0), |e| e.id),
        _ => EventId(0),
    };
    sfctl(dir, &["plan", "activate", &plan_id])?;
    say(
        ctx,
        format!("activated plan {plan_id}: its tasks go to the workers as they become ready\n"),
    )?;
    let mut titles: std::collections::HashMap<String, String> =
        ids.iter().map(|(t, id)| (id.clone(), t.clone())).collect();
    client.send(&Request::FollowEvents {
        since: Some(since),
        task: None,
    })?;
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| CliError::io("socket", &e))?;
    let deadline = Instant::now() + args.timeout;
    loop {
        if Instant::now() > deadline {
            return Err(CliError::user(format!(
                "the demo did not finish within {}",
                humantime::format_duration(args.timeout)
            ))
            .with_hint(format!(
                "see `sfctl --workspace {} task list` and `sfctl mr list`",
                dir.display()
            )));
        }
        match client.recv() {
            Ok(Response::Event(e)) => {
                if e.action == "task_created"
                    && let (Some(t), Some(title)) = (
                        &e.task,
                        e.after
                            .as_ref()
                            .and_then(|a| a.get("title"))
                            .and_then(|v| v.as_str()),
                    )
                {
                    titles.insert(t.to_string(), title.to_owned());
                }
                if let Some(line) = event_line(&e, &titles, started) {
                    say(ctx, line)?;
                    ctx.ui.flush()?;
                }
                if e.action == "plan_completed" {
                    break;
                }
            }
            Ok(_) => {}
            Err(sf_client::ClientError::Frame(sf_proto::FrameError::Io(err)))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let tasks: Vec<sf_proto::TaskSummary> =
        json(&sfctl(dir, &["--json", "task", "list", "--all"])?)?;
    let mrs: Vec<sf_proto::MergeRequestInfo> = json(&sfctl(dir, &["--json", "mr", "list"])?)?;
    let mut runs = 0;
    for t in &tasks {
        let d: TaskDetail = json(&sfctl(dir, &["--json", "task", "show", t.id.as_str()])?)?;
        runs += d.runs.len();
    }
    let closed = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Closed)
        .count();
    let merged = mrs
        .iter()
        .filter(|m| m.state == sf_proto::MergeState::Merged)
        .count();
    say(ctx, "\nhistory of main:")?;
    let history = git(dir, &["log", "--oneline", "--graph", "main"])?;
    say(ctx, &history)?;
    say(
        ctx,
        format!(
            "{closed}/{} tasks closed ({} fix task), {runs} worker runs, {merged} merges, in {:.1}s",
            tasks.len(),
            tasks.len() - STEPS.len(),
            started.elapsed().as_secs_f64()
        ),
    )?;
    if ctx.ui.json {
        return ctx.ui.json_value(&serde_json::json!({
            "dir": dir,
            "tasks": tasks.len(),
            "closed": closed,
            "fix_tasks": tasks.len() - STEPS.len(),
            "worker_runs": runs,
            "merges": merged,
            "seconds": started.elapsed().as_secs_f64(),
            "history": history.lines().collect::<Vec<_>>(),
        }));
    }
    Ok(())
}

/// The demo's narration: stdout, or stderr under `--json` (where stdout holds the summary).
fn say(ctx: &mut Context, text: impl AsRef<str>) -> CliResult {
    if ctx.ui.json {
        ctx.ui.status(text);
        Ok(())
    } else {
        ctx.ui.line(text)
    }
}

/// `sfctl demo-agent`: the scripted stand-in for a coding agent that the demo's workers run.
/// It reads its task from the environment sfd gives every worker, writes the module the task
/// names, commits, and completes.
pub fn agent(ctx: &mut Context) -> CliResult {
    let task = std::env::var("SF_TASK_ID")
        .map_err(|_| CliError::user("demo-agent runs inside a worker started by sfd"))?;
    let prompt = std::fs::read_to_string(std::env::var("SF_PROMPT_FILE").unwrap_or_default())
        .unwrap_or_default();
    let title = prompt
        .lines()
        .find_map(|l| l.strip_prefix("## Your task: "))
        .unwrap_or_default()
        .to_owned();
    let fixing = title.starts_with("Fix failing tests: ");
    let step = STEPS
        .iter()
        .find(|s| title.contains(s.title))
        .ok_or_else(|| CliError::user(format!("demo-agent does not know task {task} ({title})")))?;
    let agent = std::env::var("SF_AGENT").unwrap_or_else(|_| "demo".into());
    println!("{agent}: working on {task} \"{title}\"");
    std::thread::sleep(Duration::from_millis(300 + 100 * u64::from(step.priority)));
    let cwd = std::env::current_dir().map_err(|e| CliError::io("cwd", &e))?;
    let file = cwd.join("src").join(format!("{}.rs", step.module));
    std::fs::write(&file, module_source(step.module, fixing))
        .map_err(|e| CliError::io("failed to write the module", &e))?;
    let msg = if fixing {
        format!("{}: handle division by zero", step.module)
    } else {
        format!("{}: {}", step.module, step.description)
    };
    Command::new("git")
        .args([
            "-c",
            &format!("user.name={agent}"),
            "-c",
            "user.email=demo-agent@sf.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-am",
            &msg,
        ])
        .status()
        .map_err(|e| CliError::io("failed to run git", &e))?;
    println!("{agent}: committed \"{msg}\"; completing");
    let summary = format!("wrote src/{}.rs with tests", step.module);
    let status = Command::new(me()?)
        .args(["task", "complete", "--summary", &summary])
        .status()
        .map_err(|e| CliError::io("failed to run sfctl", &e))?;
    if !status.success() {
        return Err(CliError::user("sfctl task complete failed"));
    }
    ctx.ui.flush()
}
