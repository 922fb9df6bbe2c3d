//! Dispatch latency: from `sfctl task create` returning to the worker process running.

use std::time::{Duration, Instant, SystemTime};

use crate::harness::{
    Agent, Bins, Daemon, EventLog, Workspace, create_task, load, register_workers, wait_no_workers,
};
use crate::stats::{Summary, ms, report};

/// The bar of issue 3: median at most 50 ms.
pub const BOUND: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub samples: usize,
    pub warmup: usize,
    /// Worktrees made (with the git CLI) before the daemon starts, as tasks waiting for
    /// review leave them.
    pub worktrees: usize,
    /// The worker runs in the sandbox (`[sandbox] mode = "full"`).
    pub sandbox: bool,
}

/// `n` worktrees `.sf/worktrees/bench-pre-<i>` on new branches `bench/pre-<i>` from `main`,
/// like those of tasks waiting for review.
fn add_worktrees(ws: &Workspace, n: usize) -> anyhow::Result<()> {
    let dir = ws.paths.worktrees();
    for i in 0..n {
        let path = dir.join(format!("bench-pre-{i}"));
        let path = path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", path.display()))?;
        let branch = format!("bench/pre-{i}");
        ws.git(&["worktree", "add", "-q", "-b", &branch, path, "main"])?;
    }
    Ok(())
}

/// `b - a`, or zero if `b` came first (with a count of how often).
fn after(a: SystemTime, b: SystemTime, negative: &mut usize) -> Duration {
    b.duration_since(a).unwrap_or_else(|_| {
        *negative += 1;
        Duration::ZERO
    })
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!(
        "== dispatch: `sfctl task create` returns -> worker running; 1 idle worker, {} samples ({} warm-up), {} worktrees made beforehand ==",
        o.samples, o.warmup, o.worktrees
    );
    println!("  {}", load());
    let ws = Workspace::new(bins)?;
    ws.configure(bins, 8, None)?;
    // sandboxed, the agent's script and stamps live in its private HOME, which its run
    // may read and write
    let agent = if o.sandbox {
        ws.sandbox_full()?;
        println!("  the worker runs in the sandbox ([sandbox] mode = \"full\")");
        Agent::inside(&ws, "w1")?
    } else {
        println!("  the worker runs unsandboxed ([sandbox] mode = \"off\")");
        Agent::new()?
    };

    // the floor: what the agent script's first stamp costs by itself (exec sh, fork+exec date)
    let mut floor = Vec::new();
    for i in 0..20 {
        let id = format!("floor{i}");
        let t = SystemTime::now();
        let st = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "date +%s%N > '{}/{id}.start'",
                agent.results.display()
            ))
            .status()?;
        anyhow::ensure!(st.success(), "sh -c date failed");
        floor.push(after(
            t,
            agent.wait_stamp(&id, "start", Duration::from_secs(5))?,
            &mut 0,
        ));
    }
    report(
        "floor: spawn sh -c 'date +%s%N' -> its stamp",
        &Summary::of(&floor),
        None,
    );

    if o.worktrees > 0 {
        let t = Instant::now();
        add_worktrees(&ws, o.worktrees)?;
        println!(
            "  made {} worktrees with `git worktree add` in {}",
            o.worktrees,
            ms(t.elapsed())
        );
    }
    let daemon = Daemon::start(bins, &ws)?;
    register_workers(bins, &ws, &agent, 1)?;
    let mut events = EventLog::follow(&daemon)?;
    std::thread::sleep(Duration::from_millis(500));

    let (mut create_took, mut latency, mut to_dispatched, mut dispatched_to_start) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut spawn_to_start = Vec::new();
    let mut negative = 0;
    for i in 0..o.warmup + o.samples {
        let (id, returned, took) = create_task(bins, &ws, &format!("dispatch sample {i}"))?;
        let start = agent.wait_stamp(&id, "start", Duration::from_secs(30))?;
        agent.wait_stamp(&id, "end", Duration::from_secs(30))?;
        events.wait_until(Duration::from_secs(30), |seen| {
            seen.iter().any(|(e, _)| {
                e.action == "task_completed" && e.task.as_ref().is_some_and(|t| t.as_str() == id)
            })
        })?;
        wait_no_workers(&daemon, Duration::from_secs(30))?;
        if i < o.warmup {
            continue;
        }
        let dispatched = events
            .seen
            .iter()
            .find(|(e, _)| {
                e.action == "task_dispatched" && e.task.as_ref().is_some_and(|t| t.as_str() == id)
            })
            .map(|(_, at)| *at)
            .ok_or_else(|| anyhow::anyhow!("no task_dispatched event for {id}"))?;
        create_took.push(took);
        latency.push(after(returned, start, &mut negative));
        let spawned = returned - took;
        to_dispatched.push(after(spawned, dispatched, &mut 0));
        spawn_to_start.push(after(spawned, start, &mut 0));
        dispatched_to_start.push(after(dispatched, start, &mut 0));
    }
    report(
        "`sfctl task create` process, spawn to exit",
        &Summary::of(&create_took),
        None,
    );
    report(
        "create spawned -> `task_dispatched` seen",
        &Summary::of(&to_dispatched),
        None,
    );
    report(
        "`task_dispatched` seen -> worker stamp",
        &Summary::of(&dispatched_to_start),
        None,
    );
    report(
        "create spawned -> worker's first stamp",
        &Summary::of(&spawn_to_start),
        None,
    );
    report(
        "create returned -> worker's first stamp",
        &Summary::of(&latency),
        Some(BOUND),
    );
    let k = (latency.len() / 5).max(1);
    println!(
        "  first {k} samples (fewest worktrees on disk): median {}; last {k}: median {}",
        ms(Summary::of(&latency[..k]).median),
        ms(Summary::of(&latency[latency.len() - k..]).median)
    );
    if negative > 0 {
        println!(
            "  ({negative} samples had the worker running before sfctl returned; counted as 0)"
        );
    }
    let t = Instant::now();
    daemon.stop()?;
    println!("  sfd stopped in {}", ms(t.elapsed()));
    Ok(())
}
