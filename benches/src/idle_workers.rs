//! An idle `sfd` with idle workers registered: CPU over a quiet window.

use std::time::{Duration, Instant};

use sf_proto::{Request, Response};

use crate::harness::{
    Agent, Bins, Daemon, ProcSample, Workspace, clock_ticks, load, mb, register_workers,
};

/// The idle bar of issue 2, reused: under 1% of a core.
pub const CPU_BOUND_PCT: f64 = 1.0;

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub workers: usize,
    pub seconds: u64,
    pub settle: u64,
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!(
        "== idle-workers: sfd with {} idle workers registered, no task, {} s window ==",
        o.workers, o.seconds
    );
    println!("  {}", load());
    let agent = Agent::new()?;
    let ws = Workspace::new(bins)?;
    ws.configure(bins, u32::try_from(o.workers)?, Some("true"))?;
    let daemon = Daemon::start(bins, &ws)?;
    register_workers(bins, &ws, &agent, o.workers)?;
    crate::harness::register(
        bins,
        &ws,
        "merger",
        &["--role", "steward", "--focus", "merge"],
    )?;
    std::thread::sleep(Duration::from_secs(o.settle));
    let tck = clock_ticks();
    let ticks_before = match daemon.request(&Request::Status)? {
        Response::Status(s) => s.ticks,
        _ => 0,
    };
    let first = ProcSample::read(daemon.pid)?;
    let t0 = Instant::now();
    let mut max_rss = first.rss_kb;
    for i in 1..=o.seconds {
        if let Some(d) = Duration::from_secs(i).checked_sub(t0.elapsed()) {
            std::thread::sleep(d);
        }
        max_rss = max_rss.max(ProcSample::read(daemon.pid)?.rss_kb);
    }
    let last = ProcSample::read(daemon.pid)?;
    let window = t0.elapsed();
    let (ticks, last_tick) = match daemon.request(&Request::Status)? {
        Response::Status(s) => (s.ticks - ticks_before, s.last_tick_us),
        _ => (0, None),
    };
    let cpu_ticks = last.cpu_ticks - first.cpu_ticks;
    let cpu_s = cpu_ticks as f64 / tck as f64;
    let pct = cpu_s * 100.0 / window.as_secs_f64();
    println!(
        "  RSS {:.1} MB at start, {:.1} MB max, {} threads",
        mb(first.rss_kb),
        mb(max_rss),
        last.threads
    );
    println!(
        "  {ticks} ticks in the window (last one {} µs); workers spawned: {}",
        last_tick.unwrap_or(0),
        std::fs::read_dir(&agent.results)?.count()
    );
    println!(
        "  CPU: {cpu_ticks} ticks ({cpu_s:.2} s at {tck} Hz) in {:.1} s = {pct:.3}% of one core: {}",
        window.as_secs_f64(),
        if pct < CPU_BOUND_PCT {
            "PASS (bound 1%)"
        } else {
            "FAIL (bound 1%)"
        }
    );
    daemon.stop()?;
    Ok(())
}
