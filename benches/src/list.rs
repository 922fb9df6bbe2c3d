//! `sfctl task list --json` over 1,000 tasks: whole processes against a real `sfd`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use sf_proto::{NewTask, Request, Response, TaskFilter, TaskType};

use crate::harness::{Bins, Daemon, Workspace};
use crate::stats::{ms, report, sample};

/// The bar: median at most 10 ms.
pub const BOUND: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub tasks: usize,
    pub runs: usize,
    pub warmup: usize,
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!(
        "== list: `sfctl task list --json` over {} tasks, {} runs ==",
        o.tasks, o.runs
    );
    let ws = Workspace::new(bins)?;
    let daemon = Daemon::start(bins, &ws)?;
    let mut client = daemon.client()?;
    let mut rng = fastrand::Rng::with_seed(1);
    let types = [
        TaskType::Task,
        TaskType::Bug,
        TaskType::Feature,
        TaskType::Chore,
    ];
    let t = Instant::now();
    for i in 0..o.tasks {
        let task = NewTask {
            title: format!("Task {i}: make the widget frobnicate the gizmo"),
            description: "Created by sf-bench.".into(),
            priority: rng.u8(1..=5),
            task_type: types[i % 4],
            skills: if i % 3 == 0 {
                vec!["rust".into()]
            } else {
                Vec::new()
            },
            ..NewTask::default()
        };
        match client.request(&Request::CreateTask { task })? {
            Response::Task(_) => {}
            other => bail!("unexpected response to CreateTask: {other:?}"),
        }
    }
    eprintln!(
        "  created {} tasks through the socket in {}",
        o.tasks,
        ms(t.elapsed())
    );

    let rss_before = crate::harness::ProcSample::read(daemon.pid)?.rss_kb;
    // one checked run first: the output really holds every task
    let t = Instant::now();
    let out = ws.sfctl(bins).args(["task", "list", "--json"]).output()?;
    let first = t.elapsed();
    ensure!(
        out.status.success(),
        "sfctl task list --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("sfctl printed invalid JSON")?;
    let n = listed.as_array().map_or(0, Vec::len);
    ensure!(n == o.tasks, "sfctl listed {n} tasks, expected {}", o.tasks);
    println!(
        "  output: {} tasks, {:.1} kB of JSON, first run {}",
        n,
        out.stdout.len() as f64 / 1e3,
        ms(first)
    );
    println!(
        "  sfd resident memory: {:.1} MB before it, {:.1} MB after it",
        crate::harness::mb(rss_before),
        crate::harness::mb(crate::harness::ProcSample::read(daemon.pid)?.rss_kb)
    );

    let whole = sample(o.warmup, o.runs, || {
        let out = ws
            .sfctl(bins)
            .args(["task", "list", "--json"])
            .stdin(Stdio::null())
            .output()
            .expect("sfctl runs");
        assert!(out.status.success(), "sfctl task list --json failed");
        out.stdout.len()
    });
    report(
        "sfctl task list --json (whole process)",
        &whole,
        Some(BOUND),
    );
    println!(
        "  sfd resident memory after {} more lists: {:.1} MB",
        o.warmup + o.runs,
        crate::harness::mb(crate::harness::ProcSample::read(daemon.pid)?.rss_kb)
    );

    // where the time goes
    println!("  -- breakdown --");
    let devnull = sample(o.warmup, o.runs, || {
        let status = ws
            .sfctl(bins)
            .args(["task", "list", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("sfctl runs");
        assert!(status.success(), "sfctl task list --json failed");
    });
    report("same, stdout to /dev/null", &devnull, Some(BOUND));
    let version = sample(o.warmup, o.runs, || {
        let out = ws
            .sfctl(bins)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .expect("sfctl runs");
        assert!(out.status.success());
    });
    report("sfctl --version (exec + startup only)", &version, None);
    let filter = TaskFilter::default();
    let connect = sample(o.warmup, o.runs, || daemon.client().expect("connect"));
    report("connect + handshake (in process)", &connect, None);
    let list = sample(o.warmup, o.runs, || {
        match client
            .request(&Request::ListTasks {
                filter: filter.clone(),
            })
            .expect("list")
        {
            Response::Tasks(t) => t.len(),
            other => panic!("unexpected {other:?}"),
        }
    });
    report("ListTasks round trip (in process)", &list, None);
    let fresh = sample(o.warmup, o.runs, || {
        let mut c = daemon.client().expect("connect");
        match c
            .request(&Request::ListTasks {
                filter: filter.clone(),
            })
            .expect("list")
        {
            Response::Tasks(t) => t.len(),
            other => panic!("unexpected {other:?}"),
        }
    });
    report("connect + ListTasks, fresh connection", &fresh, None);
    let raw = serde_json::to_vec(&Response::Tasks(
        serde_json::from_value(listed.clone()).context("sfctl's JSON is not TaskSummary")?,
    ))?;
    let codec = sample(o.warmup, o.runs, || {
        let resp: Response = serde_json::from_slice(&raw).expect("decode");
        let Response::Tasks(tasks) = resp else {
            panic!("not tasks")
        };
        serde_json::to_vec(&tasks).expect("encode").len()
    });
    report(
        &format!("client decode + JSON encode of {} kB", raw.len() / 1000),
        &codec,
        None,
    );
    daemon.stop()?;
    // the daemon's share: the store query alone, on the same file, daemon stopped
    let mut store = sf_store::Store::open(&ws.paths.db())?;
    let store_list = sample(o.warmup, o.runs, || {
        store
            .list_tasks(&TaskFilter::default())
            .expect("list")
            .len()
    });
    report("Store::list_tasks (in process)", &store_list, None);
    let encode = sample(o.warmup, o.runs, || {
        serde_json::to_vec(&Response::Tasks(
            store.list_tasks(&TaskFilter::default()).expect("list"),
        ))
        .expect("encode")
        .len()
    });
    report("Store::list_tasks + encode the response", &encode, None);
    let rest = whole
        .median
        .saturating_sub(version.median + connect.median + list.median + codec.median);
    println!(
        "  => of the {} median: exec/startup {}, connect {}, ListTasks round trip {} (store \
         query {}), client decode+print {}, unaccounted {}",
        ms(whole.median),
        ms(version.median),
        ms(connect.median),
        ms(list.median),
        ms(store_list.median),
        ms(codec.median),
        ms(rest)
    );
    Ok(())
}
