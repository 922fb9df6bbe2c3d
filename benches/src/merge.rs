//! The merge queue: merges per minute for queued requests (against the same sequence done
//! with the git command line), and the time from `sfctl task complete` to merged.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail, ensure};
use sf_proto::{Request, Response};

use crate::harness::{
    Agent, Bins, Daemon, EventLog, ProcSample, Workspace, clock_ticks, create_task, git_in, load,
    register, register_workers, run_checked, wait_no_workers,
};
use crate::stats::{Summary, ms, report};

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Queued merge requests for the throughput figure.
    pub requests: usize,
    /// Samples of complete -> merged.
    pub samples: usize,
    pub warmup: usize,
}

/// `n` branches `bench/<i>` off `main`, each with one commit adding its own file
/// `merge-<i>.txt`, made in a scratch worktree so the main checkout stays on a clean `main`.
fn make_branches(ws: &Workspace, n: usize) -> anyhow::Result<Vec<String>> {
    let scratch = tempfile::Builder::new()
        .prefix("sf-bench-branches-")
        .tempdir()?;
    let wt = scratch.path().join("wt");
    let wt_s = wt.to_str().context("non-UTF-8 temp path")?;
    ws.git(&["worktree", "add", "-q", "--detach", wt_s, "main"])?;
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("bench/{i:03}");
        run_checked(
            git_in(&wt).args(["checkout", "-q", "--detach", "main"]),
            "git checkout",
        )?;
        std::fs::write(wt.join(format!("merge-{i:03}.txt")), format!("{i}\n"))?;
        run_checked(git_in(&wt).args(["add", "-A"]), "git add")?;
        run_checked(
            git_in(&wt).args(["commit", "-q", "-m", &format!("change {i}")]),
            "git commit",
        )?;
        run_checked(git_in(&wt).args(["branch", &name, "HEAD"]), "git branch")?;
        names.push(name);
    }
    ws.git(&["worktree", "remove", "--force", wt_s])?;
    Ok(names)
}

fn git_out(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = git_in(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The reference: one branch merged with the git command line, the same steps as the
/// merge queue.
fn reference_merge(root: &Path, scratch: &Path, branch: &str, i: usize) -> anyhow::Result<()> {
    let wt = scratch.join(format!("m{i}"));
    let wt_s = wt.to_str().context("non-UTF-8 temp path")?;
    // 1. the user's checkout of main is clean (tracked files)
    run_checked(
        git_in(root).args(["diff-index", "--quiet", "HEAD", "--"]),
        "git diff-index",
    )?;
    // 2. the tip to compare-and-swap against
    let old = git_out(root, &["rev-parse", "refs/heads/main"])?;
    // 3. a temporary detached worktree at that tip
    run_checked(
        git_in(root).args(["worktree", "add", "-q", "--detach", wt_s, &old]),
        "git worktree add",
    )?;
    // 4. the squash merge, staged there
    run_checked(
        git_in(&wt).args(["merge", "-q", "--squash", branch]),
        "git merge --squash",
    )?;
    // 5. the test command on the merge result
    run_checked(
        Command::new("/bin/sh")
            .args(["-c", "true"])
            .current_dir(&wt),
        "sh -c true",
    )?;
    // 6. one commit
    run_checked(
        git_in(&wt).args(["commit", "-q", "-m", &format!("Merge branch '{branch}'")]),
        "git commit",
    )?;
    let new = git_out(&wt, &["rev-parse", "HEAD"])?;
    // 7. move main with a compare-and-swap
    run_checked(
        git_in(root).args(["update-ref", "refs/heads/main", &new, &old]),
        "git update-ref",
    )?;
    // 8. bring the user's checkout of main along (two-tree merge: only changed paths)
    run_checked(
        git_in(root).args(["read-tree", "-m", "-u", &old, &new]),
        "git read-tree",
    )?;
    // 9. remove the temporary worktree
    run_checked(
        git_in(root).args(["worktree", "remove", "--force", wt_s]),
        "git worktree remove",
    )?;
    Ok(())
}

fn check_landed(ws: &Workspace, n: usize) -> anyhow::Result<()> {
    let count: usize = git_out(&ws.root, &["rev-list", "--count", "main"])?.parse()?;
    ensure!(
        count == n + 1,
        "main holds {count} commits, expected {}",
        n + 1
    );
    let files = git_out(&ws.root, &["ls-tree", "--name-only", "main"])?;
    let merged = files.lines().filter(|l| l.starts_with("merge-")).count();
    ensure!(
        merged == n,
        "main's tree holds {merged} merged files, expected {n}"
    );
    let status = git_out(&ws.root, &["status", "--porcelain", "--untracked-files=no"])?;
    ensure!(
        status.is_empty(),
        "the checkout of main is not clean: {status}"
    );
    Ok(())
}

fn per_minute(n: usize, d: Duration) -> f64 {
    n as f64 * 60.0 / d.as_secs_f64()
}

/// (d): `requests` branches queued through one socket connection with the request
/// `sfctl merge --branch B --no-wait` sends, the merge steward already registered; the clock
/// runs from the first request to the last `branch_merged` event.
fn queued(bins: &Bins, n: usize) -> anyhow::Result<()> {
    println!("  -- {n} queued merge requests, test command `true` --");
    println!("  {}", load());
    let ws = Workspace::new(bins)?;
    ws.configure(bins, 8, Some("true"))?;
    let t = Instant::now();
    let branches = make_branches(&ws, n)?;
    println!(
        "  {n} branches of one commit each made in {}",
        ms(t.elapsed())
    );
    let daemon = Daemon::start(bins, &ws)?;
    register(
        bins,
        &ws,
        "merger",
        &["--role", "steward", "--focus", "merge"],
    )?;
    let mut events = EventLog::follow(&daemon)?;
    std::thread::sleep(Duration::from_millis(500));
    let tck = clock_ticks() as f64;
    let p0 = ProcSample::read(daemon.pid)?;
    let t0 = SystemTime::now();
    let i0 = Instant::now();
    // what `sfctl merge --branch B --no-wait` sends, over one connection
    let mut client = daemon.client()?;
    for b in &branches {
        match client.request(&Request::Merge {
            branch: b.clone(),
            into: None,
            message: None,
        })? {
            Response::MergeRequest(_) => {}
            other => bail!("unexpected response to Merge: {other:?}"),
        }
    }
    let queued_in = i0.elapsed();
    events.wait_until(Duration::from_secs(1800), |seen| {
        seen.iter()
            .filter(|(e, _)| e.action == "branch_merged" || e.action == "merge_failed")
            .count()
            >= n
    })?;
    let wall = i0.elapsed();
    let p1 = ProcSample::read(daemon.pid)?;
    let mut landed: Vec<SystemTime> = events
        .seen
        .iter()
        .filter(|(e, _)| e.action == "branch_merged")
        .map(|(_, at)| *at)
        .collect();
    landed.sort();
    let first = landed[0].duration_since(t0).unwrap_or_default();
    let gaps: Vec<Duration> = landed
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .collect();
    let failed = events.count("merge_failed");
    ensure!(failed == 0, "{failed} merges failed");
    check_landed(&ws, n)?;
    let cpu = (p1.cpu_ticks - p0.cpu_ticks) as f64 / tck;
    let child = (p1.child_ticks - p0.child_ticks) as f64 / tck;
    println!(
        "  sf: {n} queued in {}; all merged {:.2} s after the first request = {:.0} merges/min (first landed after {})",
        ms(queued_in),
        wall.as_secs_f64(),
        per_minute(n, wall),
        ms(first)
    );
    report(
        "sf: between consecutive landings",
        &Summary::of(&gaps),
        None,
    );
    println!(
        "  sf: sfd CPU {cpu:.2} s ({:.1} ms per merge, {:.0}% of one core); reaped children {child:.2} s",
        cpu * 1e3 / n as f64,
        cpu * 100.0 / wall.as_secs_f64()
    );
    daemon.stop()?;

    // the reference, on an identical repository
    let rws = Workspace::new(bins)?;
    let rbranches = make_branches(&rws, n)?;
    let scratch = tempfile::Builder::new().prefix("sf-bench-ref-").tempdir()?;
    let mut each = Vec::with_capacity(n);
    let r0 = Instant::now();
    for (i, b) in rbranches.iter().enumerate() {
        let t = Instant::now();
        reference_merge(&rws.root, scratch.path(), b, i)?;
        each.push(t.elapsed());
    }
    let rwall = r0.elapsed();
    check_landed(&rws, n)?;
    println!(
        "  git CLI reference: {n} merged in {:.2} s = {:.0} merges/min",
        rwall.as_secs_f64(),
        per_minute(n, rwall)
    );
    report("git CLI reference: one merge", &Summary::of(&each), None);
    println!(
        "  sf / reference: {:.2}x the reference's rate",
        per_minute(n, wall) / per_minute(n, rwall)
    );
    Ok(())
}

/// (e): one worker and a merge steward; each task created alone, its worker commits and
/// runs `sfctl task complete`; from the worker's stamp just before that call to the
/// `task_merged` event reaching the bench.
fn complete_to_merged(bins: &Bins, samples: usize, warmup: usize) -> anyhow::Result<()> {
    println!(
        "  -- `sfctl task complete` -> merged, test command `true`, {samples} samples ({warmup} warm-up) --"
    );
    println!("  {}", load());
    let agent = Agent::new()?;
    let ws = Workspace::new(bins)?;
    ws.configure(bins, 8, Some("true"))?;
    let daemon = Daemon::start(bins, &ws)?;
    register_workers(bins, &ws, &agent, 1)?;
    register(
        bins,
        &ws,
        "merger",
        &["--role", "steward", "--focus", "merge"],
    )?;
    let mut events = EventLog::follow(&daemon)?;
    std::thread::sleep(Duration::from_millis(500));
    let (mut total, mut call, mut returned_to_merged, mut by_event) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..warmup + samples {
        let (id, _, _) = create_task(bins, &ws, &format!("merge sample {i}"))?;
        let is = |e: &sf_proto::AuditEvent, action: &str| {
            e.action == action && e.task.as_ref().is_some_and(|t| t.as_str() == id)
        };
        events.wait_until(Duration::from_secs(60), |seen| {
            seen.iter()
                .any(|(e, _)| is(e, "task_merged") || is(e, "merge_failed"))
        })?;
        wait_no_workers(&daemon, Duration::from_secs(30))?;
        let (ev, merged) = events
            .seen
            .iter()
            .find(|(e, _)| is(e, "task_merged"))
            .cloned()
            .with_context(|| format!("task {id} was not merged"))?;
        if i < warmup {
            continue;
        }
        let done = agent.wait_stamp(&id, "done", Duration::from_secs(5))?;
        let end = agent.wait_stamp(&id, "end", Duration::from_secs(5))?;
        total.push(merged.duration_since(done).unwrap_or_default());
        call.push(end.duration_since(done).unwrap_or_default());
        returned_to_merged.push(merged.duration_since(end).unwrap_or_default());
        let at: SystemTime = ev.at.into();
        by_event.push(at.duration_since(done).unwrap_or_default());
    }
    report(
        "`sfctl task complete` call, start to exit",
        &Summary::of(&call),
        None,
    );
    report(
        "complete returned -> `task_merged` seen",
        &Summary::of(&returned_to_merged),
        None,
    );
    report(
        "complete called -> `task_merged` (event `at`)",
        &Summary::of(&by_event),
        None,
    );
    report(
        "complete called -> `task_merged` seen",
        &Summary::of(&total),
        None,
    );
    daemon.stop()?;
    Ok(())
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!("== merge: the merge queue with test command `true` ==");
    queued(bins, o.requests)?;
    complete_to_merged(bins, o.samples, o.warmup)?;
    Ok(())
}
