//! Dependencies between tasks, and gates.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;
use sf_core::cycle::cycle_if_added;
use sf_core::ready::Key;
use sf_proto::{
    DepId, DepInfo, DepKind, DepList, DepTreeNode, ErrorKind, Gate, NewGate, TaskId, TaskStatus,
};

use crate::events::Audit;
use crate::tasks::wait_of;
use crate::util::{now_ms, ts};
use crate::{Store, StoreError};
use sf_proto::Action;

const DEP_COLS: &str = "d.id, d.kind, a.id, a.title, b.id, b.title, b.status, d.gate, d.satisfied_at, \
     d.created_at, d.blocked, d.blocker, d.gate_until";
const DEP_FROM: &str =
    "deps d JOIN tasks a ON a.key = d.blocked LEFT JOIN tasks b ON b.key = d.blocker";

/// Deepest `dep tree` shown.
const MAX_TREE_DEPTH: usize = 20;

#[derive(Debug, Clone)]
struct DepRow {
    info: DepInfo,
    blocked: Key,
    blocker: Option<Key>,
    gate_until: Option<i64>,
    satisfied_at: Option<i64>,
}

fn row_to_dep(r: &Row<'_>) -> rusqlite::Result<DepRow> {
    let kind: DepKind = r.get::<_, String>(1)?.parse().unwrap_or(DepKind::RelatesTo);
    let blocker_status: Option<TaskStatus> =
        r.get::<_, Option<String>>(6)?.and_then(|s| s.parse().ok());
    let gate: Option<Gate> = r
        .get::<_, Option<String>>(7)?
        .and_then(|g| serde_json::from_str(&g).ok());
    let satisfied_at: Option<i64> = r.get(8)?;
    let gate_until: Option<i64> = r.get(12)?;
    let satisfied = match kind {
        DepKind::Blocks | DepKind::ParentChild => {
            blocker_status.is_some_and(|s| matches!(s, TaskStatus::Closed | TaskStatus::Tombstone))
        }
        DepKind::Awaits => {
            satisfied_at.is_some() || gate_until.is_some_and(|t| t <= crate::util::now_ms())
        }
        DepKind::RelatesTo | DepKind::References => true,
    };
    Ok(DepRow {
        info: DepInfo {
            id: DepId(r.get(0)?),
            kind,
            blocked: TaskId::new(r.get::<_, String>(2)?).expect("stored ids are valid"),
            blocked_title: r.get(3)?,
            blocker: r
                .get::<_, Option<String>>(4)?
                .map(|s| TaskId::new(s).expect("stored ids are valid")),
            blocker_title: r.get(5)?,
            blocker_status,
            gate,
            satisfied,
            created_at: ts(r.get(9)?),
        },
        blocked: r.get(10)?,
        blocker: r.get(11)?,
        gate_until,
        satisfied_at,
    })
}

fn load_dep(conn: &Connection, id: DepId) -> Result<DepRow, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {DEP_COLS} FROM {DEP_FROM} WHERE d.id = ?1"
    ))?
    .query_row([id.0], row_to_dep)
    .optional()?
    .ok_or_else(|| {
        StoreError::not_found(format!("no dependency #{id}"))
            .hint("list a task's dependencies with `sfctl dep list TASK`")
    })
}

impl Store {
    fn deps_where(&self, column: &str, key: Key) -> Result<Vec<DepRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {DEP_COLS} FROM {DEP_FROM} WHERE d.{column} = ?1 ORDER BY d.id"
        ))?;
        let rows = stmt.query_map([key], row_to_dep)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (what `key` depends on, what depends on `key`).
    pub(crate) fn deps_of(&self, key: Key) -> Result<(Vec<DepInfo>, Vec<DepInfo>), StoreError> {
        Ok((
            self.deps_where("blocked", key)?
                .into_iter()
                .map(|d| d.info)
                .collect(),
            self.deps_where("blocker", key)?
                .into_iter()
                .map(|d| d.info)
                .collect(),
        ))
    }

    /// Both directions of a task's dependencies.
    pub fn list_deps(&self, prefix: &str) -> Result<DepList, StoreError> {
        let (key, id) = self.resolve_task(prefix)?;
        let (depends_on, dependents) = self.deps_of(key)?;
        Ok(DepList {
            id,
            depends_on,
            dependents,
        })
    }

    fn blocking_blockers(&self, key: Key) -> Result<Vec<Key>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT blocker FROM deps WHERE blocked = ?1 AND blocker IS NOT NULL AND kind IN ('blocks', 'parent-child')",
        )?;
        let rows = stmt.query_map([key], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds a dependency: `blocked` waits on `blocker`, or on a gate for `awaits`.
    pub fn add_dep(
        &mut self,
        actor: &str,
        blocked: &str,
        blocker: Option<&str>,
        kind: DepKind,
        gate: Option<NewGate>,
    ) -> Result<DepInfo, StoreError> {
        let (bk, bid) = self.resolve_task(blocked)?;
        let brow = self.task_row(bk)?;
        if brow.summary.status == TaskStatus::Tombstone {
            return Err(StoreError::state(format!("task {bid} is deleted")));
        }
        let (blocker, gate) = match (kind, blocker, gate) {
            (DepKind::Awaits, None, Some(g)) => (None, Some(new_gate(g)?)),
            (DepKind::Awaits, Some(_), _) | (DepKind::Awaits, None, None) => {
                return Err(StoreError::invalid("an `awaits` dependency waits on a gate, not on a task")
                    .hint("give exactly one of `--until TIME`, `--approvers a,b` or `--external`, and no blocker"));
            }
            (_, Some(p), None) => {
                let (k, id) = self.resolve_task(p)?;
                if k == bk {
                    return Err(StoreError::invalid(format!(
                        "task {bid} cannot depend on itself"
                    )));
                }
                if self.task_row(k)?.summary.status == TaskStatus::Tombstone {
                    return Err(StoreError::state(format!("task {id} is deleted")));
                }
                (Some((k, id)), None)
            }
            (_, None, _) => {
                return Err(StoreError::invalid(format!(
                    "a `{kind}` dependency needs a blocker task"
                ))
                .hint("sfctl dep add BLOCKED BLOCKER"));
            }
            (_, Some(_), Some(_)) => {
                return Err(
                    StoreError::invalid(format!("a `{kind}` dependency takes no gate")).hint(
                        "gates (`--until`, `--approvers`, `--external`) go with `--type awaits`",
                    ),
                );
            }
        };
        if let Some((k, id)) = &blocker {
            let exists = self
                .conn
                .prepare_cached(
                    "SELECT id FROM deps WHERE blocked = ?1 AND blocker = ?2 AND kind = ?3",
                )?
                .query_row(params![bk, k, kind.as_str()], |r| r.get::<_, i64>(0))
                .optional()?;
            if let Some(d) = exists {
                return Err(StoreError::refused(
                    ErrorKind::Conflict,
                    format!("{bid} already has a `{kind}` dependency on {id} (#{d})"),
                ));
            }
            if matches!(kind, DepKind::Blocks | DepKind::ParentChild)
                && let Some(cycle) = cycle_if_added(bk, *k, |n| self.blocking_blockers(n))?
            {
                let ids: Vec<String> = cycle
                    .iter()
                    .map(|&c| self.task_row(c).map(|r| r.summary.id.to_string()))
                    .collect::<Result<_, _>>()?;
                return Err(StoreError::invalid(format!(
                    "adding this dependency would close a cycle: {}",
                    ids.join(" -> ")
                ))
                .hint("each arrow reads \"waits on\"; remove one of those dependencies first"));
            }
        }
        let gate_until = match &gate {
            Some(Gate::Timer { until }) => Some(until.timestamp_millis()),
            _ => None,
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO deps (blocked, blocker, kind, gate, gate_until, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            bk,
            blocker.as_ref().map(|b| b.0),
            kind.as_str(),
            gate.as_ref().map(serde_json::to_string).transpose()?,
            gate_until,
            now
        ])?;
        let dep = DepId(tx.last_insert_rowid());
        let row = load_dep(&tx, dep)?;
        let ev = Audit::new(actor, Action::DepAdded, format!("dep:{dep}"))
            .task(bk, &bid)
            .after(serde_json::to_value(&row.info)?)
            .append(&tx, now)?;
        let mut events = vec![ev];
        // an approval gate is an approval for its approvers
        if let Some(Gate::Approval {
            approvers, count, ..
        }) = &gate
        {
            let payload = json!({"dep": dep, "task": bid, "approvers": approvers, "count": count});
            let (_, ev) = crate::approvals::open(
                &tx,
                sf_proto::ApprovalKind::Gate,
                &format!("gate:{dep}"),
                actor,
                &payload,
                now,
            )?;
            events.push(ev);
        }
        tx.commit()?;
        self.new_events.extend(events);
        if matches!(
            kind,
            DepKind::Blocks | DepKind::ParentChild | DepKind::Awaits
        ) {
            self.index.add_wait(
                bk,
                dep.0,
                wait_of(kind.as_str(), row.blocker, row.gate_until),
            );
        }
        Ok(row.info)
    }

    /// Removes a dependency named by its two tasks or by its id.
    pub fn remove_dep(
        &mut self,
        actor: &str,
        blocked: Option<&str>,
        blocker: Option<&str>,
        dep: Option<DepId>,
    ) -> Result<DepInfo, StoreError> {
        let id = match (dep, blocked, blocker) {
            (Some(d), None, None) => d,
            (None, Some(a), Some(b)) => {
                let (ak, aid) = self.resolve_task(a)?;
                let (bk, bid) = self.resolve_task(b)?;
                let ids: Vec<i64> = self
                    .conn
                    .prepare_cached(
                        "SELECT id FROM deps WHERE blocked = ?1 AND blocker = ?2 ORDER BY id",
                    )?
                    .query_map([ak, bk], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                match ids.as_slice() {
                    [] => {
                        return Err(StoreError::not_found(format!(
                            "{aid} has no dependency on {bid}"
                        ))
                        .hint(format!("see its dependencies with `sfctl dep list {aid}`")));
                    }
                    [one] => DepId(*one),
                    _ => {
                        return Err(StoreError::refused(
                            ErrorKind::Ambiguous,
                            format!("{aid} has several dependencies on {bid}"),
                        )
                        .hint("remove one by id: `sfctl dep remove --id N`"));
                    }
                }
            }
            _ => {
                return Err(
                    StoreError::invalid("name a dependency by its two tasks or by its id")
                        .hint("sfctl dep remove BLOCKED BLOCKER, or sfctl dep remove --id N"),
                );
            }
        };
        let row = load_dep(&self.conn, id)?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached("DELETE FROM deps WHERE id = ?1")?
            .execute([id.0])?;
        let ev = Audit::new(actor, Action::DepRemoved, format!("dep:{id}"))
            .task(row.blocked, &row.info.blocked)
            .before(serde_json::to_value(&row.info)?)
            .append(&tx, now)?;
        let closed = crate::approvals::close_subject(
            &tx,
            actor,
            &format!("gate:{id}"),
            sf_core::approval::Move::Cancel,
            Some("the dependency was removed"),
            now,
        )?;
        tx.commit()?;
        self.new_events.push(ev);
        self.new_events.extend(closed);
        self.index.remove_wait(row.blocked, id.0);
        Ok(row.info)
    }

    /// What a task waits on, recursively.
    pub fn dep_tree(&self, prefix: &str) -> Result<DepTreeNode, StoreError> {
        let (key, _) = self.resolve_task(prefix)?;
        let mut seen = HashSet::new();
        self.tree_node(key, None, None, 0, &mut seen)
    }

    fn tree_node(
        &self,
        key: Key,
        kind: Option<DepKind>,
        satisfied: Option<bool>,
        depth: usize,
        seen: &mut HashSet<Key>,
    ) -> Result<DepTreeNode, StoreError> {
        let row = self.task_row(key)?;
        let mut node = DepTreeNode {
            id: row.summary.id,
            title: row.summary.title,
            status: row.summary.status,
            kind,
            satisfied,
            gates: Vec::new(),
            children: Vec::new(),
            truncated: false,
        };
        if !seen.insert(key) || depth >= MAX_TREE_DEPTH {
            node.truncated = !self.deps_where("blocked", key)?.is_empty();
            return Ok(node);
        }
        for d in self.deps_where("blocked", key)? {
            match (d.info.kind, d.blocker) {
                (DepKind::Awaits, _) => node.gates.push(d.info),
                (DepKind::Blocks | DepKind::ParentChild, Some(b)) => {
                    let child = self.tree_node(
                        b,
                        Some(d.info.kind),
                        Some(d.info.satisfied),
                        depth + 1,
                        seen,
                    )?;
                    node.children.push(child);
                }
                _ => {}
            }
        }
        Ok(node)
    }

    fn gate_dep(&self, id: DepId) -> Result<DepRow, StoreError> {
        let row = load_dep(&self.conn, id)?;
        if row.info.kind != DepKind::Awaits {
            return Err(StoreError::invalid(format!(
                "dependency #{id} is a `{}` dependency, not a gate",
                row.info.kind
            )));
        }
        if row.satisfied_at.is_some() {
            return Err(StoreError::state(format!(
                "gate #{id} is already satisfied"
            )));
        }
        Ok(row)
    }

    fn update_gate(
        &mut self,
        actor: &str,
        row: &DepRow,
        gate: &Gate,
        satisfied: bool,
        action: Action,
    ) -> Result<DepInfo, StoreError> {
        let now = now_ms();
        let id = row.info.id;
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE deps SET gate = ?1, satisfied_at = ?2 WHERE id = ?3")?
            .execute(params![
                serde_json::to_string(gate)?,
                satisfied.then_some(now),
                id.0
            ])?;
        let after = load_dep(&tx, id)?;
        let ev = Audit::new(actor, action, format!("dep:{id}"))
            .task(row.blocked, &row.info.blocked)
            .before(json!({"gate": row.info.gate, "satisfied": false}))
            .after(json!({"gate": gate, "satisfied": satisfied}))
            .append(&tx, now)?;
        let closed = if satisfied {
            crate::approvals::close_subject(
                &tx,
                actor,
                &format!("gate:{id}"),
                sf_core::approval::Move::Approve,
                None,
                now,
            )?
        } else {
            None
        };
        tx.commit()?;
        self.new_events.push(ev);
        self.new_events.extend(closed);
        if satisfied {
            self.index.remove_wait(row.blocked, id.0);
        }
        Ok(after.info)
    }

    /// Records an approval; the gate is satisfied once enough approvers approved.
    pub fn approve_gate(
        &mut self,
        actor: &str,
        id: DepId,
        approver: &str,
    ) -> Result<DepInfo, StoreError> {
        let row = self.gate_dep(id)?;
        let Some(Gate::Approval {
            approvers,
            count,
            mut approved_by,
        }) = row.info.gate.clone()
        else {
            return Err(StoreError::invalid(format!("gate #{id} is not an approval gate"))
                .hint("external gates are satisfied with `sfctl dep satisfy`; timers pass by themselves"));
        };
        let who = approver.trim().to_lowercase();
        if !approvers.iter().any(|a| a.to_lowercase() == who) {
            return Err(StoreError::refused(
                ErrorKind::PermissionDenied,
                format!("`{approver}` is not an approver of gate #{id}"),
            )
            .hint(format!("its approvers are: {}", approvers.join(", "))));
        }
        if approved_by.iter().any(|a| a.to_lowercase() == who) {
            return Err(StoreError::refused(
                ErrorKind::Conflict,
                format!("`{approver}` already approved gate #{id}"),
            ));
        }
        approved_by.push(who);
        let satisfied = approved_by.len() >= count as usize;
        let gate = Gate::Approval {
            approvers,
            count,
            approved_by,
        };
        self.update_gate(actor, &row, &gate, satisfied, Action::GateApproved)
    }

    /// Satisfies an external gate.
    pub fn satisfy_gate(&mut self, actor: &str, id: DepId) -> Result<DepInfo, StoreError> {
        let row = self.gate_dep(id)?;
        let Some(gate @ Gate::External { .. }) = row.info.gate.clone() else {
            return Err(StoreError::invalid(format!("gate #{id} is not an external gate"))
                .hint("approval gates are satisfied with `sfctl dep approve`; timers pass by themselves"));
        };
        self.update_gate(actor, &row, &gate, true, Action::GateSatisfied)
    }

    /// Marks timer gates whose time has passed as satisfied. Returns how many.
    pub fn satisfy_due_timers(&mut self, now: i64) -> Result<usize, StoreError> {
        let due: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM deps WHERE gate_until IS NOT NULL AND satisfied_at IS NULL AND gate_until <= ?1")?
            .query_map([now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for &id in &due {
            let row = load_dep(&self.conn, DepId(id))?;
            let gate = row
                .info
                .gate
                .clone()
                .unwrap_or(Gate::External { name: None });
            self.update_gate("daemon", &row, &gate, true, Action::GateSatisfied)?;
        }
        Ok(due.len())
    }
}

fn new_gate(g: NewGate) -> Result<Gate, StoreError> {
    Ok(match g {
        NewGate::Timer { until } => Gate::Timer { until },
        NewGate::Approval { approvers, count } => {
            let mut list: Vec<String> = approvers
                .iter()
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect();
            list.sort();
            list.dedup();
            if list.is_empty() {
                return Err(
                    StoreError::invalid("an approval gate needs at least one approver")
                        .hint("--approvers alice,bob"),
                );
            }
            if count == 0 || count as usize > list.len() {
                return Err(StoreError::invalid(format!(
                    "an approval count of {count} cannot be met by {} approver(s)",
                    list.len()
                ))
                .hint("use --count between 1 and the number of approvers"));
            }
            Gate::Approval {
                approvers: list,
                count,
                approved_by: Vec::new(),
            }
        }
        NewGate::External { name } => Gate::External { name },
    })
}
