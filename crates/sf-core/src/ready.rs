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

use rustc_hash::{FxHashMap, FxHashSet};

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
    /// Effective priority, kept up to date on every change (see [`LiveIndex::settle`]).
    eff: u8,
    /// How many of its `blocks` waits name a live blocker (kept up to date, so the ready
    /// scan needs no lookup for the common case).
    live_blockers: u32,
    /// Whether it has waits other than `blocks` (parents, timers, gates), checked one by one.
    other_waits: bool,
}

impl Node {
    fn recount_other(&mut self) {
        self.other_waits = self.waits.iter().any(|(_, w)| !matches!(w, Wait::Task(_)));
    }

    fn task_waits_on(&self, blocker: Key) -> u32 {
        let n = self
            .waits
            .iter()
            .filter(|(_, w)| *w == Wait::Task(blocker))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The live tasks and their blocking dependencies.
///
/// Effective priorities are maintained incrementally: a change re-derives the priority of
/// the tasks it touches and walks up through their blockers only while something changes,
/// so a write costs what its neighbourhood costs. The ready query is one pass over the live
/// tasks with cheap (Fx) hash lookups and a partial sort for the limit.
#[derive(Debug, Default)]
pub struct LiveIndex {
    nodes: FxHashMap<Key, Node>,
    /// blocker -> live tasks waiting on it through `blocks` or `parent-child`.
    dependents: FxHashMap<Key, Vec<Key>>,
    inactive_plans: FxHashSet<Key>,
}

/// Parent chains longer than this are treated as waiting (cycles are refused on insert,
/// this only bounds the walk).
const MAX_PARENT_DEPTH: usize = 64;

fn blocker_of(w: Wait) -> Option<Key> {
    match w {
        Wait::Task(b) | Wait::Parent(b) => Some(b),
        Wait::Timer(_) | Wait::Gate => None,
    }
}

impl LiveIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `n` more live tasks.
    pub fn reserve(&mut self, n: usize) {
        self.nodes.reserve(n);
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

    /// Re-derives the effective priority of `start`, and of its blockers while it changes:
    /// `eff(t) = min(priority(t), eff(d) for every live d waiting on t)`.
    fn settle(&mut self, start: impl IntoIterator<Item = Key>) {
        let mut stack: Vec<Key> = start.into_iter().collect();
        while let Some(k) = stack.pop() {
            let Some(node) = self.nodes.get(&k) else {
                continue;
            };
            let mut eff = node.task.priority.clamp(1, 5);
            for d in self.dependents.get(&k).map_or(&[][..], Vec::as_slice) {
                if let Some(dn) = self.nodes.get(d) {
                    eff = eff.min(dn.eff);
                }
            }
            let node = self.nodes.get_mut(&k).expect("checked above");
            if node.eff != eff {
                node.eff = eff;
                stack.extend(node.waits.iter().filter_map(|&(_, w)| blocker_of(w)));
            }
        }
    }

    /// Inserts or replaces a live task with all its waits.
    pub fn insert(&mut self, key: Key, task: LiveTask, waits: Vec<(i64, Wait)>) {
        self.remove(key);
        for (_, w) in &waits {
            if let Some(b) = blocker_of(*w) {
                self.dependents.entry(b).or_default().push(key);
            }
        }
        let blockers: Vec<Key> = waits.iter().filter_map(|&(_, w)| blocker_of(w)).collect();
        let live_blockers = waits
            .iter()
            .filter(|(_, w)| matches!(w, Wait::Task(b) if self.nodes.contains_key(b)))
            .count();
        // eff 0 is never a real value, so settle always writes it and walks up
        let mut node = Node {
            task,
            waits,
            eff: 0,
            live_blockers: u32::try_from(live_blockers).unwrap_or(u32::MAX),
            other_waits: false,
        };
        node.recount_other();
        self.nodes.insert(key, node);
        self.adjust_dependents(key, true);
        self.settle(std::iter::once(key));
        self.settle(blockers);
    }

    /// Updates the fields of a live task, keeping its waits. Returns false if not live.
    pub fn update(&mut self, key: Key, task: LiveTask) -> bool {
        let Some(node) = self.nodes.get_mut(&key) else {
            return false;
        };
        let reprioritized = node.task.priority != task.priority;
        node.task = task;
        if reprioritized {
            self.settle(std::iter::once(key));
        }
        true
    }

    /// A task became live (`up`) or left the live set: its dependents' counts of live
    /// blockers change by the number of `blocks` waits they have on it.
    fn adjust_dependents(&mut self, key: Key, up: bool) {
        let mut deps: Vec<Key> = self.dependents_of(key).to_vec();
        deps.sort_unstable();
        deps.dedup();
        for d in deps {
            if let Some(n) = self.nodes.get_mut(&d) {
                let k = n.task_waits_on(key);
                n.live_blockers = if up {
                    n.live_blockers + k
                } else {
                    n.live_blockers.saturating_sub(k)
                };
            }
        }
    }

    /// Removes a task that closed or was deleted.
    pub fn remove(&mut self, key: Key) {
        if let Some(node) = self.nodes.remove(&key) {
            self.adjust_dependents(key, false);
            let blockers: Vec<Key> = node
                .waits
                .iter()
                .filter_map(|&(_, w)| blocker_of(w))
                .collect();
            for &b in &blockers {
                self.unlink(b, key);
            }
            self.settle(blockers);
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
        node.recount_other();
        if let Wait::Task(b) = wait
            && self.nodes.contains_key(&b)
        {
            self.nodes
                .get_mut(&key)
                .expect("checked above")
                .live_blockers += 1;
        }
        if let Some(b) = blocker_of(wait) {
            self.dependents.entry(b).or_default().push(key);
            self.settle(std::iter::once(b));
        }
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
        node.recount_other();
        if let Wait::Task(b) = wait
            && self.nodes.contains_key(&b)
        {
            let n = self.nodes.get_mut(&key).expect("checked above");
            n.live_blockers = n.live_blockers.saturating_sub(1);
        }
        if let Some(b) = blocker_of(wait) {
            self.unlink(b, key);
            self.settle(std::iter::once(b));
        }
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

    fn node_ready(&self, node: &Node, now: i64) -> bool {
        let t = &node.task;
        t.status == TaskStatus::Open
            && !t.assigned
            && t.scheduled_for.is_none_or(|s| s <= now)
            && self.plan_ok(t)
            && node.live_blockers == 0
            && (!node.other_waits
                || node
                    .waits
                    .iter()
                    .all(|&(_, w)| matches!(w, Wait::Task(_)) || self.wait_satisfied(w, now, 0)))
    }

    /// Whether a live task is ready at `now` (unix ms).
    pub fn is_ready(&self, key: Key, now: i64) -> bool {
        self.nodes
            .get(&key)
            .is_some_and(|n| self.node_ready(n, now))
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

    /// The effective priority of a live task.
    pub fn effective_priority(&self, key: Key) -> Option<u8> {
        self.nodes.get(&key).map(|n| n.eff)
    }

    /// Ready tasks in dispatch order, at most `limit`, with their effective priorities.
    pub fn ready(&self, now: i64, limit: Option<usize>) -> Vec<(Key, u8)> {
        type Row = (u8, u8, i64, Key);
        let mut rows: Vec<Row> = self
            .nodes
            .iter()
            .filter(|(_, n)| self.node_ready(n, now))
            .map(|(&k, n)| (n.eff, n.task.priority, n.task.created, k))
            .collect();
        if let Some(limit) = limit.filter(|&l| l < rows.len()) {
            if limit == 0 {
                return Vec::new();
            }
            rows.select_nth_unstable(limit - 1);
            rows.truncate(limit);
        }
        rows.sort_unstable();
        rows.into_iter().map(|(e, _, _, k)| (k, e)).collect()
    }

    /// Live tasks that are not ready, with their reasons: most urgent first (priority 1
    /// before 5), then oldest first.
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
        out.sort_unstable_by_key(|(k, _)| {
            let t = &self.nodes[k].task;
            (t.priority, t.created, *k)
        });
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

    /// The definition, computed from scratch: the most urgent priority of the task and of
    /// every live task that transitively waits on it.
    fn effective_from_scratch(ix: &LiveIndex, key: Key) -> u8 {
        let mut best = ix.nodes[&key].task.priority;
        let mut stack = vec![key];
        let mut seen = FxHashSet::default();
        while let Some(k) = stack.pop() {
            for &d in ix.dependents_of(k) {
                if seen.insert(d) && ix.is_live(d) {
                    best = best.min(ix.nodes[&d].task.priority);
                    stack.push(d);
                }
            }
        }
        best
    }

    #[test]
    fn incremental_effective_priorities_match_the_definition() {
        // a small deterministic generator (no dependency needed)
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut ix = LiveIndex::new();
        let mut dep = 0;
        for step in 0..3000 {
            let k = Key::try_from(rnd(60)).unwrap();
            match rnd(6) {
                0 | 1 => {
                    // waits only on older keys: no cycles
                    let waits: Vec<(i64, Wait)> = (0..rnd(3))
                        .filter_map(|_| {
                            let b = Key::try_from(rnd(60)).unwrap();
                            dep += 1;
                            (b < k).then_some((
                                dep,
                                if rnd(4) == 0 {
                                    Wait::Parent(b)
                                } else {
                                    Wait::Task(b)
                                },
                            ))
                        })
                        .collect();
                    ix.insert(k, task(u8::try_from(rnd(5) + 1).unwrap(), step), waits);
                }
                2 => ix.remove(k),
                3 => {
                    if let Some(mut t) = ix.get(k).copied() {
                        t.priority = u8::try_from(rnd(5) + 1).unwrap();
                        ix.update(k, t);
                    }
                }
                4 => {
                    let b = Key::try_from(rnd(60)).unwrap();
                    dep += 1;
                    if b < k {
                        ix.add_wait(k, dep, Wait::Task(b));
                    }
                }
                _ => {
                    if let Some(d) = ix.nodes.get(&k).and_then(|n| n.waits.first().map(|w| w.0)) {
                        ix.remove_wait(k, d);
                    }
                }
            }
            for (&key, node) in &ix.nodes {
                assert_eq!(
                    ix.effective_priority(key),
                    Some(effective_from_scratch(&ix, key)),
                    "step {step}, key {key}"
                );
                let slow = node.waits.iter().all(|&(_, w)| ix.wait_satisfied(w, 0, 0));
                let fast = node.live_blockers == 0
                    && (!node.other_waits
                        || node.waits.iter().all(|&(_, w)| {
                            matches!(w, Wait::Task(_)) || ix.wait_satisfied(w, 0, 0)
                        }));
                assert_eq!(
                    fast, slow,
                    "step {step}, key {key}: counted blockers disagree"
                );
            }
        }
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
