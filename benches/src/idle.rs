//! An idle `sfd` holding 100,000 tasks: resident memory and CPU over a quiet window.

use std::time::{Duration, Instant};

use anyhow::bail;
use sf_proto::{Request, Response};

use crate::harness::{Bins, Daemon, ProcSample, Workspace, clock_ticks, mb};
use crate::seed::{Dataset, Spec};
use crate::stats::{ms, report, sample};

/// The bars: under 30 MB resident, under 1% of a core.
pub const RSS_BOUND_MB: f64 = 30.0;
pub const CPU_BOUND_PCT: f64 = 1.0;

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub spec: Spec,
    pub seconds: u64,
    pub settle: u64,
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!(
        "== idle: sfd over {} tasks and {} dependencies (mix {:?}), {} s window ==",
        o.spec.tasks, o.spec.deps, o.spec.mix, o.seconds
    );
    // baseline: the same daemon over an empty store
    {
        let empty = Workspace::new(bins)?;
        let daemon = Daemon::start(bins, &empty)?;
        std::thread::sleep(Duration::from_secs(1));
        let s = ProcSample::read(daemon.pid)?;
        println!(
            "  baseline, empty store: RSS {:.1} MB, {} threads",
            mb(s.rss_kb),
            s.threads
        );
        daemon.stop()?;
    }
    let ws = Workspace::new(bins)?;
    let data = Dataset::generate(o.spec, sf_store::now_ms());
    println!(
        "  dataset: {} live of {} tasks",
        data.live(),
        data.tasks.len()
    );
    data.write_store(&ws.paths.db())?;
    drop(data);
    println!(
        "  database file: {:.1} MB",
        std::fs::metadata(ws.paths.db())?.len() as f64 / 1e6
    );

    let daemon = Daemon::start(bins, &ws)?;
    println!(
        "  sfd pid {} answered {} after spawn (opens the store, loads the index)",
        daemon.pid,
        ms(daemon.startup)
    );
    let at_start = ProcSample::read(daemon.pid)?;
    println!(
        "  right after startup: RSS {:.1} MB, peak {:.1} MB, {} threads",
        mb(at_start.rss_kb),
        mb(at_start.hwm_kb),
        at_start.threads
    );
    std::thread::sleep(Duration::from_secs(o.settle));

    let tck = clock_ticks();
    let first = ProcSample::read(daemon.pid)?;
    let t0 = Instant::now();
    let mut max_rss = first.rss_kb;
    let mut last = first;
    for i in 1..=o.seconds {
        // sleep to the i-th second boundary of the window, not i × (1 s + read time)
        let due = Duration::from_secs(i);
        if let Some(d) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(d);
        }
        last = ProcSample::read(daemon.pid)?;
        max_rss = max_rss.max(last.rss_kb);
    }
    let window = t0.elapsed().as_secs_f64();
    let cpu_s = (last.cpu_ticks - first.cpu_ticks) as f64 / tck as f64;
    let cpu_pct = cpu_s / window * 100.0;
    let rss = mb(max_rss);
    println!(
        "  window {:.1} s: RSS {:.1} MB at start, {:.1} MB at end, max {:.1} MB (peak since \
         start {:.1} MB); {} threads",
        window,
        mb(first.rss_kb),
        mb(last.rss_kb),
        rss,
        mb(last.hwm_kb),
        last.threads
    );
    println!(
        "  idle RSS (max over window) {:.1} MB vs bound {RSS_BOUND_MB} MB: {}",
        rss,
        pass(rss < RSS_BOUND_MB)
    );
    println!(
        "  idle CPU {:.3} s over {:.1} s = {:.3}% of a core (clock {} Hz) vs bound \
         {CPU_BOUND_PCT}%: {}",
        cpu_s,
        window,
        cpu_pct,
        tck,
        pass(cpu_pct < CPU_BOUND_PCT)
    );

    // after the window: the ready query through the socket, and what it costs in memory
    println!("  -- after the window: requests against the 100k-task daemon --");
    let status = match daemon.request(&Request::Status)? {
        Response::Status(s) => s,
        other => bail!("unexpected response to Status: {other:?}"),
    };
    println!(
        "  status: {} ticks run, last tick {} us, tick interval {} ms",
        status.ticks,
        status.last_tick_us.unwrap_or_default(),
        status.tick_interval_ms
    );
    let mut client = daemon.client()?;
    for limit in [Some(10), Some(100)] {
        let s = sample(5, 100, || {
            match client
                .request(&Request::ReadyTasks { limit })
                .expect("ready")
            {
                Response::Ready(r) => r.len(),
                other => panic!("unexpected {other:?}"),
            }
        });
        report(
            &format!(
                "ReadyTasks limit {} (socket round trip)",
                limit.unwrap_or(0)
            ),
            &s,
            Some(crate::ready::BOUND),
        );
    }
    let s = sample(2, 20, || client.request(&Request::Status).expect("status"));
    report("Status (socket round trip)", &s, None);
    let after = ProcSample::read(daemon.pid)?;
    println!(
        "  after these requests: RSS {:.1} MB, peak {:.1} MB",
        mb(after.rss_kb),
        mb(after.hwm_kb)
    );
    daemon.stop()?;
    Ok(())
}
