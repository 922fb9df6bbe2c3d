//! Readiness and dispatch order over the live tasks (every task not closed or deleted).
//!
//! The store keeps one [`LiveIndex`] in memory beside its SQLite file and updates it after
//! each committed change, so the ready query costs what the work in flight costs, not what
//! the history costs. The rules:
//!
//! * **Ready** = status `open`, unassigned, its plan (if any) active, `scheduled_for` passed,
//!   and every blocking dependency satisfied: a `blocks` blocker is closed or deleted; a
//!   `parent-child` parent is not itself waiting; a timer gate's time has passed; an
//!   approval or external gate has been satisfied.
//! * **Order** = effective priority (the most urgent priority of the task and of every live
//!   task it transitively blocks), then its own priority, then oldest first.

use std::collections::{HashMap, HashSet};

use sf_proto::TaskStatus;

/// A task's key: the store's integer row id.
pub type Key = i64;

/// The fields of a live task that readiness depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveTask {
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Current status (never closed or tombstone here).
    pub status: TaskStatus,
    /// Whether an agent holds it.
    pub assigned: bool,
    /// Its plan's key.
    pub plan: Option<Key>,
    /// Not ready before this instant (unix milliseconds).
    pub scheduled_for: Option<i64>,
    /// Creation instant (unix milliseconds), for "oldest first".
    pub created: i64,
}

/// One thing a task waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `blocks`: satisfied once the blocker is no longer live.
    Task(Key),
    /// `parent-child`: satisfied while the parent is not itself waiting.
    Parent(Key),
    /// A timer gate: satisfied once the instant (unix ms) has passed.
    Timer(i64),
    /// An approval or external gate not yet satisfied.
    Gate,
}

/// Why a live task is not ready. The store renders keys as task ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Its status is not `open`.
    Status(TaskStatus),
    /// An agent holds it.
    Assigned,
    /// Its plan is not active.
    PlanInactive(Key),
    /// Scheduled for later (unix ms).
    Scheduled(i64),
    /// A blocker is still live.
    BlockedBy(Key),
    /// Its parent is waiting.
    ParentWaiting(Key),
    /// A timer gate (dependency id, until in unix ms).
    Timer(i64, i64),
    /// An approval or external gate (dependency id).
    Gate(i64),
}

#[derive(Debug, Clone)]
struct Node {
    task: LiveTask,
    /// (dependency id, what it waits on)
    waits: Vec<(i64, Wait)>,
}

/// The live tasks and their blocking dependencies.
#[derive(Debug, Default)]
pub struct LiveIndex {
    nodes: HashMap<Key, Node>,
    /// blocker -> live tasks waiting on it through `blocks` or `parent-child`.
    dependents: HashMap<Key, Vec<Key>>,
    inactive_plans: HashSet<Key>,
    effective: Option<HashMap<Key, u8>>,
}

/// Parent chains longer than this are treated as waiting (cycles are refused on insert,
/// this only bounds the walk).
const MAX_PARENT_DEPTH: usize = 64;

impl LiveIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live tasks.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no live tasks.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `key` is live.
    pub fn is_live(&self, key: Key) -> bool {
        self.nodes.contains_key(&key)
    }

    /// The live fields of a task.
    pub fn get(&self, key: Key) -> Option<&LiveTask> {
        self.nodes.get(&key).map(|n| &n.task)
    }

    /// Inserts or replaces a live task with all its waits.
    pub fn insert(&mut self, key: Key, task: LiveTask, waits: Vec<(i64, Wait)>) {
        self.remove(key);
        for (_, w) in &waits {
            if let Wait::Task(b) | Wait::Parent(b) = *w {
                self.dependents.entry(b).or_default().push(key);
            }
        }
        self.nodes.insert(key, Node { task, waits });
        self.effective = None;
    }

    /// Updates the fields of a live task, keeping its waits. Returns false if not live.
    pub fn update(&mut self, key: Key, task: LiveTask) -> bool {
        let Some(node) = self.nodes.get_mut(&key) else {
            return false;
        };
        if node.task.priority != task.priority {
            self.effective = None;
        }
        node.task = task;
        true
    }

    /// Removes a task that closed or was deleted.
    pub fn remove(&mut self, key: Key) {
        if let Some(node) = self.nodes.remove(&key) {
            for (_, w) in node.waits {
                if let Wait::Task(b) | Wait::Parent(b) = w {
                    self.unlink(b, key);
                }
            }
            self.effective = None;
        }
    }

    fn unlink(&mut self, blocker: Key, dependent: Key) {
        if let Some(v) = self.dependents.get_mut(&blocker) {
            if let Some(pos) = v.iter().position(|&d| d == dependent) {
                v.swap_remove(pos);
            }
            if v.is_empty() {
                self.dependents.remove(&blocker);
            }
        }
    }

    /// Adds one wait to a live task (ignored if the task is not live).
    pub fn add_wait(&mut self, key: Key, dep: i64, wait: Wait) {
        let Some(node) = self.nodes.get_mut(&key) else {
            return;
        };
        node.waits.push((dep, wait));
        if let Wait::Task(b) | Wait::Parent(b) = wait {
            self.dependents.entry(b).or_default().push(key);
        }
        self.effective = None;
    }

    /// Removes one wait by dependency id (a removed dependency or a satisfied gate).
    pub fn remove_wait(&mut self, key: Key, dep: i64) {
        let Some(node) = self.nodes.get_mut(&key) else {
            return;
        };
        let Some(pos) = node.waits.iter().position(|(d, _)| *d == dep) else {
            return;
        };
        let (_, wait) = node.waits.swap_remove(pos);
        if let Wait::Task(b) | Wait::Parent(b) = wait {
            self.unlink(b, key);
        }
        self.effective = None;
    }

    /// Records whether a plan is active.
    pub fn set_plan_active(&mut self, plan: Key, active: bool) {
        if active {
            self.inactive_plans.remove(&plan);
        } else {
            self.inactive_plans.insert(plan);
        }
    }

    /// Live tasks that wait on `blocker` through `blocks` or `parent-child`.
    pub fn dependents_of(&self, blocker: Key) -> &[Key] {
        self.dependents.get(&blocker).map_or(&[], Vec::as_slice)
    }

    fn wait_satisfied(&self, wait: Wait, now: i64, depth: usize) -> bool {
        match wait {
            Wait::Task(b) => !self.nodes.contains_key(&b),
            Wait::Parent(p) => !self.parent_waits(p, now, depth + 1),
            Wait::Timer(until) => until <= now,
            Wait::Gate => false,
        }
    }

    /// Whether a parent holds its children back: it is live and waiting itself.
    fn parent_waits(&self, parent: Key, now: i64, depth: usize) -> bool {
        if depth > MAX_PARENT_DEPTH {
            return true;
        }
        let Some(node) = self.nodes.get(&parent) else {
            return false;
        };
        if matches!(
            node.task.status,
            TaskStatus::Blocked | TaskStatus::Deferred | TaskStatus::Backlog
        ) {
            return true;
        }
        !self.plan_ok(&node.task)
            || node.task.scheduled_for.is_some_and(|t| t > now)
            || node
                .waits
                .iter()
                .any(|&(_, w)| !self.wait_satisfied(w, now, depth))
    }

    fn plan_ok(&self, task: &LiveTask) -> bool {
        task.plan.is_none_or(|p| !self.inactive_plans.contains(&p))
    }

    /// Whether a live task is ready at `now` (unix ms).
    pub fn is_ready(&self, key: Key, now: i64) -> bool {
        let Some(node) = self.nodes.get(&key) else {
            return false;
        };
        let t = &node.task;
        t.status == TaskStatus::Open
            && !t.assigned
            && self.plan_ok(t)
            && t.scheduled_for.is_none_or(|s| s <= now)
            && node
                .waits
                .iter()
                .all(|&(_, w)| self.wait_satisfied(w, now, 0))
    }

    /// Every reason a live task is not ready (empty if ready or not live).
    pub fn reasons(&self, key: Key, now: i64) -> Vec<WaitReason> {
        let Some(node) = self.nodes.get(&key) else {
            return Vec::new();
        };
        let t = &node.task;
        let mut out = Vec::new();
        if t.status != TaskStatus::Open {
            out.push(WaitReason::Status(t.status));
        }
        if t.assigned {
            out.push(WaitReason::Assigned);
        }
        if let Some(p) = t.plan.filter(|p| self.inactive_plans.contains(p)) {
            out.push(WaitReason::PlanInactive(p));
        }
        if let Some(s) = t.scheduled_for.filter(|&s| s > now) {
            out.push(WaitReason::Scheduled(s));
        }
        for &(dep, w) in &node.waits {
            if self.wait_satisfied(w, now, 0) {
                continue;
            }
            out.push(match w {
                Wait::Task(b) => WaitReason::BlockedBy(b),
                Wait::Parent(p) => WaitReason::ParentWaiting(p),
                Wait::Timer(until) => WaitReason::Timer(dep, until),
                Wait::Gate => WaitReason::Gate(dep),
            });
        }
        out
    }

    /// Effective priorities of every live task, computed once per change and cached.
    fn effective_map(&mut self) -> &HashMap<Key, u8> {
        if self.effective.is_none() {
            self.effective = Some(self.compute_effective());
        }
        self.effective.as_ref().expect("just computed")
    }

    /// Level by level from the most urgent: every task reached from a priority-`p` task by
    /// following what it waits on gets `p`, unless an earlier level reached it. Each task is
    /// assigned once, so this is linear in tasks plus dependencies.
    fn compute_effective(&self) -> HashMap<Key, u8> {
        let mut eff: HashMap<Key, u8> = HashMap::with_capacity(self.nodes.len());
        let mut by_level: [Vec<Key>; 5] = Default::default();
        for (&k, n) in &self.nodes {
            let p = n.task.priority.clamp(1, 5);
            by_level[usize::from(p - 1)].push(k);
        }
        let mut stack = Vec::new();
        for (i, level) in by_level.iter().enumerate() {
            let p = u8::try_from(i + 1).expect("five levels");
            for &start in level {
                if eff.contains_key(&start) {
                    continue;
                }
                eff.insert(start, p);
                stack.push(start);
                while let Some(k) = stack.pop() {
                    for &(_, w) in &self.nodes[&k].waits {
                        if let Wait::Task(b) | Wait::Parent(b) = w
                            && self.nodes.contains_key(&b)
                            && !eff.contains_key(&b)
                        {
                            eff.insert(b, p);
                            stack.push(b);
                        }
                    }
                }
            }
        }
        eff
    }

    /// The effective priority of a live task.
    pub fn effective_priority(&mut self, key: Key) -> Option<u8> {
        self.effective_map().get(&key).copied()
    }

    /// Ready tasks in dispatch order, at most `limit`, with their effective priorities.
    pub fn ready(&mut self, now: i64, limit: Option<usize>) -> Vec<(Key, u8)> {
        let ready: Vec<Key> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.task.status == TaskStatus::Open && !n.task.assigned)
            .map(|(&k, _)| k)
            .filter(|&k| self.is_ready(k, now))
            .collect();
        if self.effective.is_none() {
            self.effective = Some(self.compute_effective());
        }
        let eff = self.effective.as_ref().expect("just computed");
        let mut rows: Vec<(Key, u8, u8, i64)> = ready
            .into_iter()
            .map(|k| {
                let t = &self.nodes[&k].task;
                (
                    k,
                    eff.get(&k).copied().unwrap_or(t.priority),
                    t.priority,
                    t.created,
                )
            })
            .collect();
        let order = |a: &(Key, u8, u8, i64), b: &(Key, u8, u8, i64)| {
            (a.1, a.2, a.3, a.0).cmp(&(b.1, b.2, b.3, b.0))
        };
        if let Some(limit) = limit.filter(|&l| l < rows.len()) {
            if limit == 0 {
                return Vec::new();
            }
            rows.select_nth_unstable_by(limit - 1, order);
            rows.truncate(limit);
        }
        rows.sort_unstable_by(order);
        rows.into_iter().map(|(k, e, _, _)| (k, e)).collect()
    }

    /// Live tasks that are not ready, with their reasons, oldest first.
    pub fn waiting(&self, now: i64) -> Vec<(Key, Vec<WaitReason>)> {
        let mut out: Vec<(Key, Vec<WaitReason>)> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n.task.status, TaskStatus::Open | TaskStatus::Blocked))
            .filter_map(|(&k, _)| {
                let r = self.reasons(k, now);
                (!r.is_empty()).then_some((k, r))
            })
            .collect();
        out.sort_unstable_by_key(|(k, _)| (self.nodes[k].task.created, *k));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(priority: u8, created: i64) -> LiveTask {
        LiveTask {
            priority,
            status: TaskStatus::Open,
            assigned: false,
            plan: None,
            scheduled_for: None,
            created,
        }
    }

    fn keys(v: Vec<(Key, u8)>) -> Vec<Key> {
        v.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn order_is_priority_then_oldest() {
        let mut ix = LiveIndex::new();
        ix.insert(1, task(3, 10), vec![]);
        ix.insert(2, task(1, 20), vec![]);
        ix.insert(3, task(3, 5), vec![]);
        assert_eq!(keys(ix.ready(0, None)), vec![2, 3, 1]);
        assert_eq!(keys(ix.ready(0, Some(2))), vec![2, 3]);
        assert!(ix.ready(0, Some(0)).is_empty());
    }

    #[test]
    fn a_blocker_inherits_the_urgency_of_what_it_blocks() {
        let mut ix = LiveIndex::new();
        ix.insert(1, task(5, 1), vec![]); // blocks 3, transitively 4
        ix.insert(2, task(2, 2), vec![]);
        ix.insert(3, task(4, 3), vec![(10, Wait::Task(1))]);
        ix.insert(4, task(1, 4), vec![(11, Wait::Task(3))]);
        assert_eq!(ix.effective_priority(1), Some(1));
        assert_eq!(ix.effective_priority(3), Some(1));
        assert_eq!(ix.ready(0, None), vec![(1, 1), (2, 2)]);
        // once the urgent dependent closes, the blocker falls back to its own priority
        ix.remove(4);
        assert_eq!(ix.effective_priority(1), Some(4));
        assert_eq!(keys(ix.ready(0, None)), vec![2, 1]);
    }

    #[test]
    fn blocks_is_satisfied_when_the_blocker_leaves_the_live_set() {
        let mut ix = LiveIndex::new();
        ix.insert(1, task(3, 1), vec![]);
        ix.insert(2, task(3, 2), vec![(7, Wait::Task(1))]);
        assert!(!ix.is_ready(2, 0));
        assert_eq!(ix.reasons(2, 0), vec![WaitReason::BlockedBy(1)]);
        ix.remove(1);
        assert!(ix.is_ready(2, 0));
        // reopened: blocks again
        ix.insert(1, task(3, 1), vec![]);
        assert!(!ix.is_ready(2, 0));
        ix.remove_wait(2, 7);
        assert!(ix.is_ready(2, 0));
        assert!(ix.dependents_of(1).is_empty());
    }

    #[test]
    fn a_child_waits_while_its_parent_waits() {
        let mut ix = LiveIndex::new();
        ix.insert(1, task(3, 1), vec![]); // parent's blocker
        ix.insert(2, task(3, 2), vec![(1, Wait::Task(1))]); // parent
        ix.insert(3, task(3, 3), vec![(2, Wait::Parent(2))]); // child
        assert!(!ix.is_ready(3, 0));
        assert_eq!(ix.reasons(3, 0), vec![WaitReason::ParentWaiting(2)]);
        ix.remove(1);
        assert!(ix.is_ready(3, 0), "parent no longer waits");
        let mut parent = *ix.get(2).unwrap();
        parent.status = TaskStatus::Deferred;
        ix.update(2, parent);
        assert!(!ix.is_ready(3, 0));
    }

    #[test]
    fn gates_timers_schedules_plans_and_assignment() {
        let mut ix = LiveIndex::new();
        ix.insert(1, task(3, 1), vec![(5, Wait::Timer(1_000))]);
        assert!(!ix.is_ready(1, 999));
        assert_eq!(ix.reasons(1, 999), vec![WaitReason::Timer(5, 1_000)]);
        assert!(ix.is_ready(1, 1_000));

        ix.insert(2, task(3, 2), vec![(6, Wait::Gate)]);
        assert_eq!(ix.reasons(2, 0), vec![WaitReason::Gate(6)]);
        ix.remove_wait(2, 6);
        assert!(ix.is_ready(2, 0));

        let mut t = task(3, 3);
        t.scheduled_for = Some(500);
        t.plan = Some(9);
        ix.insert(3, t, vec![]);
        ix.set_plan_active(9, false);
        assert_eq!(
            ix.reasons(3, 0),
            vec![WaitReason::PlanInactive(9), WaitReason::Scheduled(500)]
        );
        ix.set_plan_active(9, true);
        assert!(ix.is_ready(3, 500));

        t.assigned = true;
        t.status = TaskStatus::InProgress;
        ix.update(3, t);
        assert!(!ix.is_ready(3, 500));
        assert!(
            ix.waiting(500).iter().all(|(k, _)| *k != 3),
            "in progress is not waiting"
        );
    }
}
