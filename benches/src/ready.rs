//! The ready query over a large store, in process (what the daemon's store thread runs).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sf_core::ready::{Key, LiveTask};
use sf_proto::{NewTask, TaskStatus};
use sf_store::Store;

use crate::seed::{Dataset, Spec};
use crate::stats::{Summary, ms, report, sample};

/// The bar: the ready query at most 5 ms inside the daemon.
pub const BOUND: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub spec: Spec,
    pub iters: usize,
    pub warmup: usize,
}

pub fn run(o: Opts) -> anyhow::Result<()> {
    println!(
        "== ready: {} tasks, {} dependencies, mix {:?}, seed {} ==",
        o.spec.tasks, o.spec.deps, o.spec.mix, o.spec.seed
    );
    let now = sf_store::now_ms();
    let t = Instant::now();
    let data = Dataset::generate(o.spec, now);
    eprintln!("  generated in {}", ms(t.elapsed()));
    let counts: Vec<String> = data
        .status_counts()
        .iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect();
    println!(
        "  dataset: {} live of {} ({})",
        data.live(),
        data.tasks.len(),
        counts.join(", ")
    );
    let dir = tempfile::Builder::new().prefix("sf-bench-").tempdir()?;
    let path = dir.path().join("sf.db");
    data.write_store(&path)?;
    println!(
        "  database file: {:.1} MB",
        std::fs::metadata(&path)?.len() as f64 / 1e6
    );

    // opening loads the live index from the file: the daemon's startup cost
    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        drop(Store::open(&path)?);
        opens.push(t.elapsed());
    }
    report("Store::open (loads the index)", &Summary::of(&opens), None);

    let mut store = Store::open(&path)?;
    let now = sf_store::now_ms();
    let ready_all = store.ready(now, None)?.len();
    let waiting = store.waiting(now, None)?.len();
    println!("  ready tasks: {ready_all}; open or blocked but waiting: {waiting}");

    println!("  -- Store::ready (index + one row fetch per returned task), cache warm --");
    let mut medians = Vec::new();
    for limit in [Some(10), Some(100), None] {
        let s = sample(o.warmup, o.iters, || {
            store.ready(now, limit).expect("ready")
        });
        let label = format!("Store::ready limit {}", limit_label(limit));
        report(&label, &s, Some(BOUND));
        medians.push((limit, s.median));
    }

    println!("  -- LiveIndex::ready alone (no SQLite), cache warm --");
    let mut ix = data.live_index();
    let mut index_medians = HashMap::new();
    for limit in [Some(10), Some(100), None] {
        let s = sample(o.warmup, o.iters, || ix.ready(now, limit));
        report(
            &format!("LiveIndex::ready limit {}", limit_label(limit)),
            &s,
            None,
        );
        index_medians.insert(limit, s.median);
    }
    if let (Some((_, all)), Some(ix_all)) = (medians.last(), index_medians.get(&None)) {
        let rows = all.saturating_sub(*ix_all);
        println!(
            "  => unlimited Store::ready spends {} in the index and {} fetching {} rows \
             ({:.2} us per row)",
            ms(*ix_all),
            ms(rows),
            ready_all,
            rows.as_secs_f64() * 1e6 / ready_all.max(1) as f64
        );
    }

    breakdown(&data, &mut ix, now, o);

    println!("  -- after a change (the effective-priority cache is invalidated) --");
    let mut creates = Vec::new();
    let mut after = Vec::new();
    let mut rng = fastrand::Rng::with_seed(o.spec.seed ^ 0x5eed);
    for i in 0..o.iters {
        let new = NewTask {
            title: format!("bench change {i}"),
            priority: rng.u8(1..=5),
            ..NewTask::default()
        };
        let t = Instant::now();
        store.create_task("human:bench", new)?;
        creates.push(t.elapsed());
        let now = sf_store::now_ms();
        let t = Instant::now();
        std::hint::black_box(store.ready(now, Some(10))?);
        after.push(t.elapsed());
    }
    report("Store::create_task", &Summary::of(&creates), None);
    report(
        "Store::ready limit 10 right after create",
        &Summary::of(&after),
        Some(BOUND),
    );

    // the same in the index alone: insert a task, then ask
    let first_new = data.tasks.len() as Key + 1_000_000;
    let mut after_ix = Vec::new();
    for next in first_new..first_new + o.iters as Key {
        ix.insert(
            next,
            LiveTask {
                priority: rng.u8(1..=5),
                status: TaskStatus::Open,
                assigned: false,
                plan: None,
                scheduled_for: None,
                created: now,
            },
            Vec::new(),
        );
        let t = Instant::now();
        std::hint::black_box(ix.ready(now, Some(10)));
        after_ix.push(t.elapsed());
    }
    report(
        "LiveIndex::ready limit 10 right after insert",
        &Summary::of(&after_ix),
        None,
    );
    // closing a task: the other common change
    let open: Vec<String> = store
        .ready(sf_store::now_ms(), Some(o.iters))?
        .into_iter()
        .map(|r| r.task.id.to_string())
        .collect();
    let mut closes = Vec::new();
    let mut after_close = Vec::new();
    for id in &open {
        let t = Instant::now();
        store.change_status(
            "human:bench",
            id,
            sf_proto::StatusChange::Close,
            Some("bench"),
            None,
        )?;
        closes.push(t.elapsed());
        let now = sf_store::now_ms();
        let t = Instant::now();
        std::hint::black_box(store.ready(now, Some(10))?);
        after_close.push(t.elapsed());
    }
    if !open.is_empty() {
        report("Store::change_status close", &Summary::of(&closes), None);
        report(
            "Store::ready limit 10 right after close",
            &Summary::of(&after_close),
            Some(BOUND),
        );
    }
    Ok(())
}

/// Splits `LiveIndex::ready` into its parts, through the index's public API.
fn breakdown(data: &Dataset, ix: &mut sf_core::ready::LiveIndex, now: i64, o: Opts) {
    println!("  -- LiveIndex::ready, part by part --");
    let candidates: Vec<Key> = data
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Open && t.assignee.is_none())
        .map(|t| t.key)
        .collect();
    let s = sample(o.warmup, o.iters, || {
        candidates.iter().filter(|&&k| ix.is_ready(k, now)).count()
    });
    report(
        &format!("is_ready over the {} open candidates", candidates.len()),
        &s,
        None,
    );
    let live: Vec<Key> = data
        .tasks
        .iter()
        .filter(|t| ix.is_live(t.key))
        .map(|t| t.key)
        .collect();
    let s = sample(o.warmup, o.iters, || {
        live.iter()
            .filter_map(|&k| ix.get(k))
            .filter(|t| t.status == TaskStatus::Open)
            .count()
    });
    report(
        &format!("one HashMap get per live task ({})", live.len()),
        &s,
        None,
    );
    // invalidate the cache with an insert + remove of a spare key, then recompute it
    let spare: Key = Key::MAX - 1;
    let probe = candidates[0];
    let mut effective = Vec::new();
    for _ in 0..o.iters.min(100) {
        ix.insert(
            spare,
            LiveTask {
                priority: 3,
                status: TaskStatus::Open,
                assigned: false,
                plan: None,
                scheduled_for: None,
                created: now,
            },
            Vec::new(),
        );
        ix.remove(spare);
        let t = Instant::now();
        std::hint::black_box(ix.effective_priority(probe));
        effective.push(t.elapsed());
    }
    report(
        "compute_effective (cache rebuild after a change)",
        &Summary::of(&effective),
        None,
    );
}

fn limit_label(limit: Option<usize>) -> String {
    limit.map_or_else(|| "none".to_owned(), |l| l.to_string())
}
