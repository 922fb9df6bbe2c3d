//! `sf-bench`: the benchmarks behind BENCHMARKS.md.
//!
//! ```text
//! cargo build --release -p sfd -p sfctl
//! cargo run --release -p sf-bench -- all        # or: ready | list | idle | clients |
//!                                                #     dispatch | throughput | idle-workers | merge | guard
//! ```
//!
//! Each scenario prints its dataset, its figures (median and p95 of wall-clock samples taken
//! with `Instant`) and PASS/FAIL against the bar it measures. Speed goals live here, never in
//! timed tests.

mod clients;
mod dispatch;
mod guard;
mod harness;
mod idle;
mod idle_workers;
mod list;
mod logflood;
mod merge;
mod ready;
mod seed;
mod spawn;
mod stats;
mod throughput;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::seed::{Mix, Spec};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of sf (sfd + sfctl); build sfd and sfctl in release mode first")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The ready query over a large store, in process
    Ready {
        #[command(flatten)]
        data: DataArgs,
        /// Timed iterations per figure
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Untimed iterations first
        #[arg(long, default_value_t = 20)]
        warmup: usize,
    },
    /// `sfctl task list --json` processes against a real sfd
    List(ListArgs),
    /// An idle sfd over a large store: resident memory and CPU
    Idle(IdleArgs),
    /// Many clients creating tasks at once
    Clients(ClientsArgs),
    /// From `sfctl task create` returning to the worker process running
    Dispatch {
        /// Timed samples
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Untimed samples first
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Worktrees to make beforehand (as tasks waiting for review leave them)
        #[arg(long, default_value_t = 0)]
        worktrees: usize,
        /// The worker runs unsandboxed (`[sandbox] mode = "off"`); default: the sandbox
        /// users get, `"full"`
        #[arg(long)]
        no_sandbox: bool,
    },
    /// Many tasks through a pool of scripted workers: total time and daemon CPU
    Throughput {
        /// Tasks
        #[arg(long, default_value_t = 200)]
        tasks: usize,
        /// Workers (and max_workers)
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Also merge every task (merge steward, test command `true`)
        #[arg(long)]
        merge: bool,
    },
    /// An idle sfd with idle workers registered: CPU
    IdleWorkers {
        /// Registered workers
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Length of the measured window
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Wait this long after registering before measuring
        #[arg(long, default_value_t = 5)]
        settle: u64,
    },
    /// The merge queue: merges per minute against the git CLI, and complete -> merged
    Merge {
        /// Queued merge requests
        #[arg(long, default_value_t = 100)]
        requests: usize,
        /// Timed complete -> merged samples
        #[arg(long, default_value_t = 30)]
        samples: usize,
        /// Untimed samples first
        #[arg(long, default_value_t = 2)]
        warmup: usize,
    },
    /// What the guard costs per request: in process, and over the socket as a human and an agent
    Guard {
        /// Timed requests of each kind
        #[arg(long, default_value_t = 2000)]
        iters: usize,
        /// Untimed ones first
        #[arg(long, default_value_t = 100)]
        warmup: usize,
    },
    /// What the sandbox adds to a spawn: /bin/true launched and waited for, with and without
    Spawn {
        /// Timed spawns of each kind
        #[arg(long, default_value_t = 300)]
        iters: usize,
        /// Untimed ones first
        #[arg(long, default_value_t = 20)]
        warmup: usize,
    },
    /// A worker flooding its output through the capped log copier
    LogFlood {
        /// Bytes the worker writes
        #[arg(long, default_value_t = 4 << 30)]
        bytes: u64,
        /// run_log_max
        #[arg(long, default_value_t = 16 << 20)]
        cap: u64,
    },
    /// Every scenario with its defaults
    All {
        /// Length of the idle window, in seconds
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Tasks in the store
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Dependencies between them
    #[arg(long, default_value_t = 50_000)]
    deps: usize,
    /// Status mix
    #[arg(long, value_enum, default_value_t = Mix::Realistic)]
    mix: Mix,
    /// Random seed
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl DataArgs {
    fn spec(&self) -> Spec {
        Spec {
            tasks: self.tasks,
            deps: self.deps,
            mix: self.mix,
            seed: self.seed,
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Tasks in the store
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Timed runs
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Untimed runs first
    #[arg(long, default_value_t = 10)]
    warmup: usize,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Length of the measured window
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Wait this long after the daemon answers before measuring
    #[arg(long, default_value_t = 5)]
    settle: u64,
}

#[derive(Debug, Args)]
struct ClientsArgs {
    /// Clients per round
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Rounds
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed the store with this many tasks (and half as many dependencies) first
    #[arg(long, default_value_t = 0)]
    tasks: usize,
}

fn default_spec() -> Spec {
    Spec {
        tasks: 100_000,
        deps: 50_000,
        mix: Mix::Realistic,
        seed: 42,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    println!(
        "machine: {} cores; sf-bench {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        env!("CARGO_PKG_VERSION")
    );
    match cli.scenario {
        Scenario::Ready {
            data,
            iters,
            warmup,
        } => ready::run(ready::Opts {
            spec: data.spec(),
            iters,
            warmup,
        }),
        Scenario::LogFlood { bytes, cap } => logflood::run(logflood::Opts { bytes, cap }),
        Scenario::Spawn { iters, warmup } => spawn::run(spawn::Opts { iters, warmup }),
        Scenario::Guard { iters, warmup } => {
            guard::run(&harness::Bins::locate()?, guard::Opts { iters, warmup })
        }
        Scenario::List(a) => list::run(
            &harness::Bins::locate()?,
            list::Opts {
                tasks: a.tasks,
                runs: a.runs,
                warmup: a.warmup,
            },
        ),
        Scenario::Idle(a) => idle::run(
            &harness::Bins::locate()?,
            idle::Opts {
                spec: a.data.spec(),
                seconds: a.seconds,
                settle: a.settle,
            },
        ),
        Scenario::Clients(a) => clients::run(
            &harness::Bins::locate()?,
            clients::Opts {
                clients: a.clients,
                rounds: a.rounds,
                seed: (a.tasks > 0).then(|| Spec {
                    tasks: a.tasks,
                    deps: a.tasks / 2,
                    ..default_spec()
                }),
            },
        ),
        Scenario::Dispatch {
            samples,
            warmup,
            worktrees,
            no_sandbox,
        } => dispatch::run(
            &harness::Bins::locate()?,
            dispatch::Opts {
                samples,
                warmup,
                worktrees,
                sandbox: !no_sandbox,
            },
        ),
        Scenario::Throughput {
            tasks,
            workers,
            merge,
        } => throughput::run(
            &harness::Bins::locate()?,
            throughput::Opts {
                tasks,
                workers,
                merge,
            },
        ),
        Scenario::IdleWorkers {
            workers,
            seconds,
            settle,
        } => idle_workers::run(
            &harness::Bins::locate()?,
            idle_workers::Opts {
                workers,
                seconds,
                settle,
            },
        ),
        Scenario::Merge {
            requests,
            samples,
            warmup,
        } => merge::run(
            &harness::Bins::locate()?,
            merge::Opts {
                requests,
                samples,
                warmup,
            },
        ),
        Scenario::All { seconds } => {
            let bins = harness::Bins::locate()?;
            ready::run(ready::Opts {
                spec: default_spec(),
                iters: 200,
                warmup: 20,
            })?;
            list::run(
                &bins,
                list::Opts {
                    tasks: 1000,
                    runs: 200,
                    warmup: 10,
                },
            )?;
            idle::run(
                &bins,
                idle::Opts {
                    spec: default_spec(),
                    seconds,
                    settle: 5,
                },
            )?;
            clients::run(
                &bins,
                clients::Opts {
                    clients: 200,
                    rounds: 3,
                    seed: None,
                },
            )?;
            dispatch::run(
                &bins,
                dispatch::Opts {
                    samples: 50,
                    warmup: 3,
                    worktrees: 0,
                    sandbox: true,
                },
            )?;
            throughput::run(
                &bins,
                throughput::Opts {
                    tasks: 200,
                    workers: 8,
                    merge: false,
                },
            )?;
            idle_workers::run(
                &bins,
                idle_workers::Opts {
                    workers: 8,
                    seconds,
                    settle: 5,
                },
            )?;
            merge::run(
                &bins,
                merge::Opts {
                    requests: 100,
                    samples: 30,
                    warmup: 2,
                },
            )
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sf-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
