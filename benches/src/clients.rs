//! Many clients creating tasks at the same instant.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::{bail, ensure};
use sf_proto::{NewTask, Request, Response};

use crate::harness::{Bins, Daemon, Workspace};
use crate::stats::{Summary, ms, report};

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub clients: usize,
    pub rounds: usize,
    /// Seed the store with this dataset first (`None`: an empty store).
    pub seed: Option<crate::seed::Spec>,
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!(
        "== clients: {} clients create a task at once, {} rounds ==",
        o.clients, o.rounds
    );
    let ws = Workspace::new(bins)?;
    let preexisting = match o.seed {
        Some(spec) => {
            let data = crate::seed::Dataset::generate(spec, sf_store::now_ms());
            println!(
                "  store seeded first: {} tasks ({} live), {} dependencies",
                spec.tasks,
                data.live(),
                spec.deps
            );
            data.write_store(&ws.paths.db())?;
            data.tasks
                .iter()
                .filter(|t| t.status != sf_proto::TaskStatus::Tombstone)
                .count()
        }
        None => 0,
    };
    let daemon = Daemon::start(bins, &ws)?;
    let mut ok_total = 0;
    let mut all_latencies = Vec::new();
    for round in 1..=o.rounds {
        let barrier = Arc::new(Barrier::new(o.clients + 1));
        let handles: Vec<_> = (0..o.clients)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                let socket = daemon.socket.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    let result = sf_client::Client::connect(&socket, "sf-bench", None)
                        .and_then(|mut c| {
                            c.request(&Request::CreateTask {
                                task: NewTask {
                                    title: format!("round {round} client {i}"),
                                    ..NewTask::default()
                                },
                            })
                        })
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|r| match r {
                            Response::Task(_) => Ok(()),
                            other => Err(format!("unexpected {other:?}")),
                        });
                    (result, t.elapsed())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for h in handles {
            let (result, took) = h.join().expect("client thread");
            latencies.push(took);
            if let Err(e) = result {
                errors.push(e);
            }
        }
        let wall = start.elapsed();
        let ok = o.clients - errors.len();
        ok_total += ok;
        println!(
            "  round {round}: {ok}/{} succeeded, all done {} after the start signal",
            o.clients,
            ms(wall)
        );
        report("per-client latency", &Summary::of(&latencies), None);
        for e in errors.iter().take(5) {
            println!("    error: {e}");
        }
        if !errors.is_empty() {
            println!("    sfd log: {}", daemon.log.display());
        }
        all_latencies.extend(latencies);
    }
    // counted through Status: a listing of 100k tasks would exceed the frame cap
    let listed = match daemon.request(&Request::Status)? {
        Response::Status(s) => s.tasks.values().sum::<u64>() as usize - preexisting,
        other => bail!("unexpected response to Status: {other:?}"),
    };
    let expected = o.clients * o.rounds;
    report(
        "per-client latency, all rounds",
        &Summary::of(&all_latencies),
        None,
    );
    println!(
        "  {ok_total}/{expected} creations succeeded, {listed} new tasks in the store: {}",
        if ok_total == expected && listed == expected {
            "PASS"
        } else {
            "FAIL"
        }
    );
    ensure!(
        listed == ok_total,
        "the store holds {listed} tasks but {ok_total} creations were acknowledged"
    );
    daemon.stop()?;
    Ok(())
}
