//! Many tasks through a pool of scripted workers: total time and the daemon's CPU.

use std::time::{Duration, Instant, SystemTime};

use sf_proto::{NewTask, Request, Response};

use crate::harness::{
    Agent, Bins, Daemon, EventLog, ProcSample, Workspace, clock_ticks, load, register,
    register_workers, wait_no_workers,
};
use crate::stats::{Summary, ms, report};

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub tasks: usize,
    pub workers: usize,
    /// Also register a merge steward (test command `true`) and wait for every merge.
    pub merge: bool,
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!(
        "== throughput: {} tasks through {} scripted workers{} ==",
        o.tasks,
        o.workers,
        if o.merge {
            ", each merged (test command `true`)"
        } else {
            " (no merge steward: tasks end in review)"
        }
    );
    println!("  {}", load());
    let agent = Agent::new()?;
    let ws = Workspace::new(bins)?;
    ws.configure(bins, u32::try_from(o.workers)?, Some("true"))?;
    let daemon = Daemon::start(bins, &ws)?;
    register_workers(bins, &ws, &agent, o.workers)?;
    if o.merge {
        register(
            bins,
            &ws,
            "merger",
            &["--role", "steward", "--focus", "merge"],
        )?;
    }
    let mut events = EventLog::follow(&daemon)?;
    std::thread::sleep(Duration::from_secs(1));

    let tck = clock_ticks() as f64;
    let p0 = ProcSample::read(daemon.pid)?;
    let t0 = Instant::now();
    let wall0 = SystemTime::now();
    let mut client = daemon.client()?;
    let mut ids = Vec::with_capacity(o.tasks);
    for i in 0..o.tasks {
        match client.request(&Request::CreateTask {
            task: NewTask {
                title: format!("throughput task {i}"),
                ..NewTask::default()
            },
        })? {
            Response::Task(t) => ids.push(t.task.id.to_string()),
            other => anyhow::bail!("unexpected response to CreateTask: {other:?}"),
        }
    }
    let created = t0.elapsed();
    let last = if o.merge {
        "task_merged"
    } else {
        "task_completed"
    };
    let n = o.tasks;
    // wait in 30 s rounds; a round without progress means something is stuck: say what
    let mut before = 0;
    loop {
        let r = events.wait_until(Duration::from_secs(30), |seen| {
            seen.iter().filter(|(e, _)| e.action == last).count() >= n
        });
        if r.is_ok() {
            break;
        }
        let now = events.count(last);
        if now == before {
            if let Response::MergeRequests(mrs) = daemon.request(&Request::ListMergeRequests)? {
                for m in mrs
                    .iter()
                    .filter(|m| m.state != sf_proto::MergeState::Merged)
                {
                    println!(
                        "  STUCK: merge request #{} {:?}: {}",
                        m.id,
                        m.state,
                        m.reason.as_deref().unwrap_or("")
                    );
                }
            }
            anyhow::bail!(
                "no progress for 30 s: {now}/{n} `{last}` events after {:.1} s",
                t0.elapsed().as_secs_f64()
            );
        }
        before = now;
    }
    let all_done = t0.elapsed();
    wait_no_workers(&daemon, Duration::from_secs(60))?;
    let wall = t0.elapsed();
    let p1 = ProcSample::read(daemon.pid)?;

    let cpu = (p1.cpu_ticks - p0.cpu_ticks) as f64 / tck;
    let child = (p1.child_ticks - p0.child_ticks) as f64 / tck;
    println!(
        "  {n} tasks created through one socket connection in {}",
        ms(created)
    );
    println!(
        "  last `{last}` {:.2} s after the first create; every worker exited at {:.2} s",
        all_done.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "  throughput: {:.1} tasks/s ({:.1} ms of wall time per task)",
        n as f64 / all_done.as_secs_f64(),
        all_done.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "  sfd CPU (utime+stime): {cpu:.2} s = {:.1}% of one core over {:.2} s, {:.2} ms per task",
        cpu * 100.0 / wall.as_secs_f64(),
        wall.as_secs_f64(),
        cpu * 1e3 / n as f64
    );
    println!(
        "  reaped children's CPU (cutime+cstime: workers with their git and sfctl{}): {child:.2} s, {:.2} ms per task",
        if o.merge { ", test commands" } else { "" },
        child * 1e3 / n as f64
    );
    println!(
        "  sfd RSS {:.1} MB at the end, peak {:.1} MB, {} threads",
        crate::harness::mb(p1.rss_kb),
        crate::harness::mb(p1.hwm_kb),
        p1.threads
    );

    // the workers' own view: how long each script ran, and how many ran at once
    let mut spans = Vec::with_capacity(n);
    for id in &ids {
        let s = agent
            .stamp(id, "start")
            .ok_or_else(|| anyhow::anyhow!("task {id} has no start stamp"))?;
        let e = agent
            .stamp(id, "end")
            .ok_or_else(|| anyhow::anyhow!("task {id} has no end stamp"))?;
        spans.push((s, e));
    }
    let runs: Vec<Duration> = spans
        .iter()
        .map(|(s, e)| e.duration_since(*s).unwrap_or_default())
        .collect();
    report(
        "worker script, first stamp -> after complete",
        &Summary::of(&runs),
        None,
    );
    let mut edges: Vec<(SystemTime, i32)> =
        spans.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    edges.sort();
    let (mut cur, mut peak) = (0, 0);
    for (_, d) in edges {
        cur += d;
        peak = peak.max(cur);
    }
    let first_start = spans.iter().map(|s| s.0).min().unwrap_or(wall0);
    println!(
        "  peak concurrent worker scripts: {peak}; first worker started {} after the first create",
        ms(first_start.duration_since(wall0).unwrap_or_default())
    );
    let dispatched = events.count("task_dispatched");
    let failed: Vec<&str> = events
        .seen
        .iter()
        .filter(|(e, _)| e.action == "run_failed")
        .filter_map(|(e, _)| e.reason.as_deref())
        .collect();
    println!(
        "  events: {} task_created, {dispatched} task_dispatched, {} run_failed, {} task_completed, {} task_merged: {}",
        events.count("task_created"),
        failed.len(),
        events.count("task_completed"),
        events.count("task_merged"),
        if dispatched == n {
            "each task dispatched once"
        } else {
            "UNEXPECTED dispatch count"
        }
    );
    if let Some(first) = failed.first() {
        println!("  first failed run: {first}");
    }
    if let Some(path) = std::env::var_os("SF_BENCH_EVENTS") {
        let mut out = String::new();
        for (e, at) in &events.seen {
            out.push_str(&format!(
                "{:.3} {} {} {} {}\n",
                at.duration_since(wall0).unwrap_or_default().as_secs_f64() * 1e3,
                e.action,
                e.subject,
                e.actor,
                e.reason.as_deref().unwrap_or("")
            ));
        }
        std::fs::write(path, out)?;
    }
    daemon.stop()?;
    Ok(())
}
