//! A synthetic task graph, and a fast way to write it into an sf store file.
//!
//! The store is created (and migrated) through `Store::open`, then filled with direct SQL
//! inserts in one transaction: creating 100,000 tasks one request at a time would take
//! minutes and measure nothing we care about here. The rows are the ones `create_task`
//! would write (task, `task_created` event, `blocks`/`parent-child` dependency rows), so the
//! store's own `load_index` reads them back like any other database.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use rusqlite::params;
use sf_core::ready::{Key, LiveIndex, LiveTask, Wait};
use sf_proto::{DepKind, ID_ALPHABET, ID_LEN, TaskStatus, TaskType};

/// Which statuses the tasks get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// A repository with history: 40% closed, 40% open, 5% in progress, 2% review,
    /// 3% blocked, 5% deferred, 5% backlog.
    Realistic,
    /// Every task open (the worst case for the ready query: every task is live).
    AllOpen,
}

/// The shape of a generated dataset.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub tasks: usize,
    pub deps: usize,
    pub mix: Mix,
    pub seed: u64,
}

/// One generated task.
#[derive(Debug, Clone)]
pub struct GenTask {
    pub key: Key,
    pub id: String,
    pub status: TaskStatus,
    pub priority: u8,
    pub created: i64,
    pub assignee: Option<String>,
}

/// One generated dependency: `blocked` (newer) waits on `blocker` (older).
#[derive(Debug, Clone, Copy)]
pub struct GenDep {
    pub id: i64,
    pub blocked: Key,
    pub blocker: Key,
    pub kind: DepKind,
}

/// A generated dataset.
#[derive(Debug)]
pub struct Dataset {
    pub tasks: Vec<GenTask>,
    pub deps: Vec<GenDep>,
}

/// The id of task `key`: an odd multiplier is a bijection modulo 2^30, and 6 base-32
/// digits hold 30 bits, so distinct keys get distinct, random-looking ids.
fn id_of(key: Key) -> String {
    let mut v = (key as u64).wrapping_mul(0x9E37_79B1) & ((1 << 30) - 1);
    let mut out = vec![b'0'; ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ID_ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(out).expect("ascii")
}

fn pick_status(rng: &mut fastrand::Rng, mix: Mix) -> TaskStatus {
    if mix == Mix::AllOpen {
        return TaskStatus::Open;
    }
    match rng.u32(0..100) {
        0..40 => TaskStatus::Closed,
        40..80 => TaskStatus::Open,
        80..85 => TaskStatus::InProgress,
        85..87 => TaskStatus::Review,
        87..90 => TaskStatus::Blocked,
        90..95 => TaskStatus::Deferred,
        _ => TaskStatus::Backlog,
    }
}

impl Dataset {
    /// Generates tasks 1..=n (created one second apart, ending an hour ago) and `deps`
    /// distinct dependencies between random pairs, always from a newer task to an older
    /// one, so the graph has no cycle. 90% are `blocks`, 10% `parent-child`.
    pub fn generate(spec: Spec, now_ms: i64) -> Self {
        let mut rng = fastrand::Rng::with_seed(spec.seed);
        let n = spec.tasks as i64;
        let first = now_ms - 3_600_000 - n * 1000;
        let tasks: Vec<GenTask> = (1..=n)
            .map(|key| {
                let status = pick_status(&mut rng, spec.mix);
                let assignee = matches!(status, TaskStatus::InProgress | TaskStatus::Review)
                    .then(|| format!("worker-{}", rng.u32(1..=8)));
                GenTask {
                    key,
                    id: id_of(key),
                    status,
                    priority: rng.u8(1..=5),
                    created: first + key * 1000,
                    assignee,
                }
            })
            .collect();
        let mut seen = HashSet::with_capacity(spec.deps);
        let mut deps = Vec::with_capacity(spec.deps);
        assert!(
            spec.deps as i64 <= n * (n - 1) / 2,
            "more dependencies than pairs"
        );
        while deps.len() < spec.deps {
            let blocked = rng.i64(2..=n);
            let blocker = rng.i64(1..blocked);
            if !seen.insert((blocked, blocker)) {
                continue;
            }
            let kind = if rng.u32(0..10) == 0 {
                DepKind::ParentChild
            } else {
                DepKind::Blocks
            };
            deps.push(GenDep {
                id: deps.len() as i64 + 1,
                blocked,
                blocker,
                kind,
            });
        }
        Self { tasks, deps }
    }

    /// Tasks that are neither closed nor deleted.
    pub fn live(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| !matches!(t.status, TaskStatus::Closed | TaskStatus::Tombstone))
            .count()
    }

    /// Counts per status, for the report.
    pub fn status_counts(&self) -> Vec<(TaskStatus, usize)> {
        TaskStatus::ALL
            .iter()
            .map(|&s| (s, self.tasks.iter().filter(|t| t.status == s).count()))
            .filter(|&(_, c)| c > 0)
            .collect()
    }

    /// The in-memory index the store would build from this dataset (same rules as
    /// `Store::load_index`: live tasks, with every unsatisfied blocking dependency).
    pub fn live_index(&self) -> LiveIndex {
        let mut waits: HashMap<Key, Vec<(i64, Wait)>> = HashMap::new();
        for d in &self.deps {
            let w = match d.kind {
                DepKind::ParentChild => Wait::Parent(d.blocker),
                _ => Wait::Task(d.blocker),
            };
            waits.entry(d.blocked).or_default().push((d.id, w));
        }
        let mut ix = LiveIndex::new();
        for t in &self.tasks {
            if matches!(t.status, TaskStatus::Closed | TaskStatus::Tombstone) {
                continue;
            }
            let live = LiveTask {
                priority: t.priority,
                status: t.status,
                assigned: t.assignee.is_some(),
                plan: None,
                scheduled_for: None,
                created: t.created,
            };
            ix.insert(t.key, live, waits.remove(&t.key).unwrap_or_default());
        }
        ix
    }

    /// Creates the store at `path` (which must not exist yet) and writes the dataset into it.
    pub fn write_store(&self, path: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(!path.exists(), "{} already exists", path.display());
        // create and migrate through the store itself, so the schema is the real one
        drop(sf_store::Store::open(path).context("failed to create the store")?);
        let start = Instant::now();
        let mut conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        let tx = conn.transaction()?;
        {
            let mut task = tx.prepare(
                "INSERT INTO tasks (key, id, title, description, status, priority, task_type,
                                    assignee, close_reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut event = tx.prepare(
                "INSERT INTO events (at, actor, action, subject, task, after)
                 VALUES (?1, 'human:bench', 'task_created', ?2, ?3, ?4)",
            )?;
            let types = [
                TaskType::Task,
                TaskType::Bug,
                TaskType::Feature,
                TaskType::Chore,
            ];
            for t in &self.tasks {
                let title = format!("Benchmark task {} of the synthetic backlog", t.key);
                let closed = t.status == TaskStatus::Closed;
                let task_type = types[(t.key % 4) as usize].as_str();
                task.execute(params![
                    t.key,
                    t.id,
                    title,
                    "Generated by sf-bench.",
                    t.status.as_str(),
                    t.priority,
                    task_type,
                    t.assignee,
                    closed.then_some("done"),
                    t.created,
                    t.created + if closed { 600_000 } else { 0 },
                ])?;
                let after = serde_json::json!({
                    "title": title, "status": "open", "priority": t.priority,
                    "type": task_type, "assignee": null, "plan": null, "skills": [],
                    "scheduled_for": null, "defer_until": null, "blocked_by": [],
                });
                event.execute(params![
                    t.created,
                    format!("task:{}", t.id),
                    t.key,
                    after.to_string()
                ])?;
            }
            let mut dep = tx.prepare(
                "INSERT INTO deps (id, blocked, blocker, kind, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for d in &self.deps {
                let created = self.tasks[(d.blocked - 1) as usize].created;
                dep.execute(params![
                    d.id,
                    d.blocked,
                    d.blocker,
                    d.kind.as_str(),
                    created
                ])?;
            }
        }
        tx.commit()?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
        drop(conn);
        eprintln!(
            "  seeded {} tasks and {} dependencies into {} in {:.1} s",
            self.tasks.len(),
            self.deps.len(),
            path.display(),
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_valid() {
        let ids: HashSet<String> = (1..=200_000).map(id_of).collect();
        assert_eq!(ids.len(), 200_000);
        assert!(
            ids.iter()
                .all(|id| sf_proto::TaskId::new(id.clone()).is_ok())
        );
    }

    #[test]
    fn the_store_loads_what_was_seeded() {
        let spec = Spec {
            tasks: 2000,
            deps: 1000,
            mix: Mix::Realistic,
            seed: 7,
        };
        let now = sf_store::now_ms();
        let data = Dataset::generate(spec, now);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sf.db");
        data.write_store(&path).unwrap();
        let mut store = sf_store::Store::open(&path).unwrap();
        assert_eq!(store.live_tasks(), data.live());
        let from_store: Vec<String> = store
            .ready(now, None)
            .unwrap()
            .into_iter()
            .map(|r| r.task.id.to_string())
            .collect();
        let ix = data.live_index();
        let by_key: HashMap<Key, &str> =
            data.tasks.iter().map(|t| (t.key, t.id.as_str())).collect();
        let from_index: Vec<String> = ix
            .ready(now, None)
            .into_iter()
            .map(|(k, _)| by_key[&k].to_owned())
            .collect();
        assert!(!from_store.is_empty());
        assert_eq!(from_store, from_index);
    }
}
