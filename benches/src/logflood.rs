//! A worker flooding its output through the capped log copier (issue 9, item 10): how fast
//! the copier drains it, what it costs in CPU, and that the daemon's memory does not grow.
//! The same producer into `/dev/null` is the baseline: the copier should not be what
//! limits a flooding worker.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use sf_worker::launcher::{Kind, Limits, RunSpec, launch};
use sf_worker::log::LogCap;

pub struct Opts {
    /// Bytes the worker writes.
    pub bytes: u64,
    /// The cap (`run_log_max`).
    pub cap: u64,
}

/// CPU time of this process (user + system) from `/proc/self/stat`, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn spec(dir: &Path, script: &str, cap: Option<LogCap>) -> RunSpec {
    spec_watched(dir, script, cap, false)
}

/// With `watched`, the copier also looks for progress in each line, as it does for every
/// agent's run (`stall_timeout`), reading the output as Codex's stream.
fn spec_watched(dir: &Path, script: &str, cap: Option<LogCap>, watched: bool) -> RunSpec {
    let limits = Limits {
        wall: std::time::Duration::from_secs(3600),
        grace: std::time::Duration::from_secs(1),
        stall: watched.then_some(sf_worker::launcher::Stall {
            after: std::time::Duration::from_secs(3600),
            stream: sf_proto::Adapter::Codex,
        }),
    };
    RunSpec {
        log_cap: cap,
        ..RunSpec::shell(Kind::Shell, script, dir, &dir.join("run.log"), limits)
    }
}

pub fn run(o: Opts) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let line = format!("flood {}", "x".repeat(57));
    let producer = format!("yes '{line}' | head -c {}", o.bytes);
    let gib = o.bytes as f64 / f64::from(1u32 << 30);
    println!(
        "log flood: a worker writes {gib:.1} GiB of 64-byte lines (`{}`), run_log_max {} MiB",
        producer.replace(&line, "flood x…"),
        o.cap >> 20
    );
    let tick = 100.0; // USER_HZ
    rt.block_on(async {
        let t = Instant::now();
        let w = launch(spec(dir.path(), &format!("{producer} > /dev/null"), None))?;
        w.wait(std::future::pending()).await;
        let base = t.elapsed();
        println!(
            "  baseline, producer into /dev/null: {:.2} s, {:.2} GiB/s",
            base.as_secs_f64(),
            gib / base.as_secs_f64()
        );
        let (rss0, cpu0) = (status_kb("VmRSS:"), cpu_ticks());
        let t = Instant::now();
        let w = launch(spec(dir.path(), &producer, Some(LogCap::new(o.cap))))?;
        let report = w
            .wait(std::future::pending())
            .await
            .log
            .context("the copier failed")?;
        let took = t.elapsed();
        let cpu = (cpu_ticks() - cpu0) as f64 / tick;
        let size = std::fs::metadata(dir.path().join("run.log"))?.len();
        println!(
            "  through the copier: {:.2} s, {:.2} GiB/s ({:.0}% of the baseline); copier CPU {cpu:.2} s = {:.2} s per GiB",
            took.as_secs_f64(),
            gib / took.as_secs_f64(),
            100.0 * base.as_secs_f64() / took.as_secs_f64(),
            cpu / gib
        );
        println!(
            "  log {} bytes (cap {}), {} bytes dropped, {} lost; RSS {} kB before, {} kB after, peak {} kB",
            size,
            o.cap,
            report.dropped,
            report.lost,
            rss0,
            status_kb("VmRSS:"),
            status_kb("VmHWM:")
        );
        anyhow::ensure!(report.read == o.bytes, "read {} of {} bytes", report.read, o.bytes);
        anyhow::ensure!(size <= o.cap + 1024, "the log is over its cap");
        // the stall watch: ordinary lines (the first of each chunk is progress), then the
        // worst case, a CLI flooding retry notices, each of which is read as JSON
        let notice = r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}"#;
        for (what, text) in [("ordinary lines", line.as_str()), ("retry notices", notice)] {
            let producer = format!("yes '{text}' | head -c {}", o.bytes);
            let cpu0 = cpu_ticks();
            let t = Instant::now();
            let w = launch(spec_watched(dir.path(), &producer, Some(LogCap::new(o.cap)), true))?;
            let report = w.wait(std::future::pending()).await.log.context("the copier failed")?;
            let took = t.elapsed();
            let cpu = (cpu_ticks() - cpu0) as f64 / tick;
            println!(
                "  watched for progress, {what}: {:.2} s, {:.2} GiB/s; copier CPU {cpu:.2} s = {:.2} s per GiB",
                took.as_secs_f64(),
                gib / took.as_secs_f64(),
                cpu / gib
            );
            anyhow::ensure!(report.read == o.bytes, "read {} of {} bytes", report.read, o.bytes);
        }
        Ok(())
    })
}
