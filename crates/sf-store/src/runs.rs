//! Runs: claiming a task for a worker (the lease), completing, handing off, and what
//! happens when a worker exits without doing either.

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sf_core::naming::{slug, validate_text};
use sf_core::ready::Key;
use sf_core::status::check_transition;
use sf_proto::{ErrorKind, RunUsage, TaskId, TaskStatus};

use crate::events::Audit;
use crate::tasks::{TaskRow, add_note, load_task};
use crate::util::now_ms;
use crate::{Store, StoreError};
use sf_proto::Action;

/// A claimed task: everything a launcher needs to start the worker.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Run id.
    pub run_id: i64,
    /// Lease epoch (1 for the first run of the task, then 2, ...).
    pub epoch: i64,
    /// The lease token given to the worker as `SF_RUN`.
    pub token: String,
    /// The agent.
    pub agent: String,
    /// The task's key.
    pub task_key: Key,
    /// The task's id.
    pub task_id: TaskId,
    /// Its branch (kept across handoffs).
    pub branch: String,
    /// Its worktree directory name under `.sf/worktrees/` (kept across handoffs).
    pub worktree: String,
    /// Whether an earlier run already worked on it.
    pub resumed: bool,
}

/// A run the store considers live (not ended).
#[derive(Debug, Clone)]
pub struct LiveRun {
    /// Run id.
    pub run_id: i64,
    /// Agent.
    pub agent: String,
    /// Task key and id.
    pub task: Option<(Key, TaskId)>,
    /// Lease epoch.
    pub epoch: i64,
    /// Process, once spawned.
    pub pid: Option<u32>,
    /// Its start time.
    pub proc_start: Option<u64>,
    /// Whether the lease was already released by a completion or handoff.
    pub released: bool,
    /// Its worktree directory name.
    pub worktree: Option<String>,
    /// Log file.
    pub log_path: Option<String>,
    /// The lease token (in the worker's environment as `SF_RUN`).
    pub token: String,
    /// A steward run's trigger data (a recovery steward's stuck task is in it).
    pub data: Option<serde_json::Value>,
    /// Whether its task is still in progress and assigned to its agent (false for a task
    /// taken away by hand while the daemon was down, and for steward runs).
    pub holds_task: bool,
}

/// A checked lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Run id.
    pub run_id: i64,
    /// Agent.
    pub agent: String,
    /// Task key.
    pub task_key: Key,
    /// Task id.
    pub task_id: TaskId,
    /// Epoch.
    pub epoch: i64,
    /// Branch.
    pub branch: String,
    /// Worktree directory name.
    pub worktree: String,
}

/// How a run that did not complete or hand off ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Exited on its own.
    Exited,
    /// Hit its wall-time limit.
    TimedOut,
    /// Stopped by a human (`sfctl agent stop`): not counted as a failed attempt.
    Stopped,
    /// The daemon restarted and the process was gone.
    Lost,
    /// The agent CLI reported a usage limit: not counted as a failed attempt.
    UsageLimited,
    /// The agent CLI could not authenticate: not counted; the agent is disabled instead.
    AuthFailed,
    /// Its output showed no progress for `stall_timeout`; it was stopped.
    Stalled,
    /// Could not be started (worktree, setup, exec).
    SpawnFailed,
    /// The agent's own command could not run (not found, not executable, cannot be split):
    /// not counted against the task; the agent is disabled instead.
    AgentBroken,
    /// The daemon stopped between the claim and the spawn: not counted.
    Interrupted,
    /// The daemon itself ran out of a resource while starting it (descriptors, processes,
    /// memory, disk): not the task's fault, not counted.
    DaemonResources,
    /// Its CLI made a tool call the guard was never asked about (its hooks off or
    /// bypassed): stopped, counted.
    GuardBypassed,
    /// A budget it is charged to ran out: stopped, not counted (the task is blocked until
    /// a human raises the budget).
    BudgetExhausted,
    /// A session's turn ended: its task waits for the next turn, nothing is counted.
    TurnEnded,
}

impl Failure {
    fn outcome(self) -> &'static str {
        match self {
            Self::Exited => "failed",
            Self::TimedOut => "timed_out",
            Self::Stopped => "stopped",
            Self::Lost => "crashed",
            Self::UsageLimited => "usage_limited",
            Self::AuthFailed => "auth_failed",
            Self::Stalled => "stalled",
            Self::SpawnFailed | Self::AgentBroken | Self::DaemonResources => "spawn_failed",
            Self::Interrupted => "interrupted",
            Self::GuardBypassed => "guard_bypassed",
            Self::BudgetExhausted => "budget_exhausted",
            Self::TurnEnded => "turn_ended",
        }
    }

    fn counts(self) -> bool {
        !matches!(
            self,
            Self::Stopped
                | Self::UsageLimited
                | Self::AuthFailed
                | Self::Interrupted
                | Self::AgentBroken
                | Self::DaemonResources
                | Self::BudgetExhausted
                | Self::TurnEnded
        )
    }
}

/// What became of the task after a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back in the pool (after the backoff).
    Requeued,
    /// Blocked after too many failed runs.
    Stuck,
    /// The lease was already released; nothing to do for the task.
    Released,
}

fn release(
    conn: &rusqlite::Connection,
    run_id: i64,
    outcome: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE runs SET released_at = ?1, outcome = ?2 WHERE id = ?3")?
        .execute(params![now, outcome, run_id])?;
    Ok(())
}

fn token() -> String {
    (0..24).map(|_| fastrand::alphanumeric()).collect()
}

/// Handoffs in a row after which a task is blocked as stuck.
pub const MAX_HANDOFFS: u32 = 10;

/// The wait before a task handed off `streak` times in a row is dispatched again: none after
/// one handoff (the usual case: the next worker continues at once), then 1 s doubling to at
/// most 5 minutes.
pub fn handoff_backoff_ms(streak: u32) -> Option<i64> {
    match streak {
        0 | 1 => None,
        n => Some((1_000_i64 << (n - 2).min(9)).min(300_000)),
    }
}

/// Backoff before a failed task is dispatched again: 5 s, 20 s, 80 s, ... capped at 10 min.
pub fn backoff_ms(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(6);
    (5_000_i64 * 4_i64.pow(exp)).min(600_000)
}

impl Store {
    /// Claims a task for an agent: `open -> in_progress`, the assignee and a run with a new
    /// lease epoch, in one transaction. Refused unless the task is ready.
    pub fn claim(&mut self, actor: &str, agent: &str, task_key: Key) -> Result<Claim, StoreError> {
        let now = now_ms();
        let row = self.task_row(task_key)?;
        let id = row.summary.id.clone();
        if !self.index.is_ready(task_key, now) {
            let reasons = self.index.reasons(task_key, now);
            let why = if reasons.is_empty() {
                format!("it is {}", row.summary.status)
            } else {
                self.render_reasons(task_key, &reasons)?.join("; ")
            };
            return Err(StoreError::state(format!("task {id} is not ready: {why}")));
        }
        check_transition(row.summary.status, TaskStatus::InProgress)
            .map_err(|e| StoreError::state(e.to_string()))?;
        let branch = row
            .branch
            .clone()
            .unwrap_or_else(|| format!("agent/{agent}/{id}-{}", slug(&row.summary.title)));
        let worktree = row
            .worktree
            .clone()
            .unwrap_or_else(|| format!("{id}-{}", slug(&row.summary.title)));
        let resumed = row.branch.is_some();
        let tx = self.conn.transaction()?;
        // a worker taken off this task (closed and reopened, handed off), or off a fix task
        // sharing its worktree, may still be exiting there: the next one waits for that run
        // to end (a scan of the live runs only, through their partial index)
        let live: bool = tx
            .prepare_cached(
                "SELECT count(*) > 0 FROM runs r INDEXED BY runs_live JOIN tasks t ON t.key = r.task
                 WHERE r.ended_at IS NULL AND (r.task = ?1 OR t.worktree = ?2)",
            )?
            .query_row(params![task_key, worktree], |r| r.get(0))?;
        if live {
            return Err(StoreError::refused(
                ErrorKind::Conflict,
                format!(
                    "task {id} still has a worker that is exiting; it is dispatched once that run ends"
                ),
            ));
        }
        let epoch: i64 = tx
            .prepare_cached("SELECT coalesce(max(epoch), 0) + 1 FROM runs WHERE task = ?1")?
            .query_row([task_key], |r| r.get(0))?;
        tx.prepare_cached(
            "UPDATE tasks SET status = 'in_progress', assignee = ?1, branch = ?2, worktree = ?3,
                              updated_at = ?4
             WHERE key = ?5 AND status = 'open' AND assignee IS NULL",
        )?
        .execute(params![agent, branch, worktree, now, task_key])?;
        let token = token();
        tx.prepare_cached(
            "INSERT INTO runs (task, agent, epoch, started_at, token) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![task_key, agent, epoch, now, token])?;
        let run_id = tx.last_insert_rowid();
        let after = load_task(&tx, task_key)?;
        let ev = Audit::new(actor, Action::TaskDispatched, format!("task:{id}"))
            .task(task_key, &id)
            .before(json!({"status": row.summary.status, "assignee": null}))
            .after(json!({"status": "in_progress", "assignee": agent, "run": run_id, "epoch": epoch, "branch": branch}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.index.update(task_key, after.live());
        Ok(Claim {
            run_id,
            epoch,
            token,
            agent: agent.to_owned(),
            task_key,
            task_id: id,
            branch,
            worktree,
            resumed,
        })
    }

    /// Records the process of a started run.
    pub fn record_spawn(
        &mut self,
        run_id: i64,
        pid: u32,
        proc_start: Option<u64>,
        log_path: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE runs SET pid = ?1, pgid = ?1, proc_start = ?2, log_path = ?3 WHERE id = ?4",
            )?
            .execute(params![
                pid,
                proc_start.map(|s| s.cast_signed()),
                log_path,
                run_id
            ])?;
        Ok(())
    }

    /// Checks a worker's lease token: the run must be live, not yet released, and the newest
    /// run of a task that is still in progress with that agent.
    pub fn check_lease(&self, token: &str) -> Result<Lease, StoreError> {
        let refused = |m: String| {
            StoreError::refused(ErrorKind::PermissionDenied, m)
                .hint("only the worker that holds the task's current lease (SF_RUN) can do this")
        };
        type RunRow = (i64, String, Option<Key>, i64, Option<i64>, Option<i64>);
        let row: Option<RunRow> = self
            .conn
            .prepare_cached(
                "SELECT id, agent, task, epoch, ended_at, released_at FROM runs WHERE token = ?1",
            )?
            .query_row([token], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        let Some((run_id, agent, Some(task_key), epoch, ended, released)) = row else {
            return Err(refused("unknown lease token".into()));
        };
        let t = self.task_row(task_key)?;
        let id = t.summary.id.clone();
        let newest: i64 = self
            .conn
            .prepare_cached("SELECT max(epoch) FROM runs WHERE task = ?1")?
            .query_row([task_key], |r| r.get(0))?;
        if epoch < newest {
            return Err(refused(format!(
                "stale lease: run epoch {epoch} of task {id}, but epoch {newest} holds it now"
            )));
        }
        if released.is_some() || ended.is_some() {
            return Err(refused(format!(
                "the lease of run {run_id} on task {id} has already ended"
            )));
        }
        if t.summary.status != TaskStatus::InProgress
            || t.summary.assignee.as_deref() != Some(agent.as_str())
        {
            return Err(refused(format!(
                "task {id} is {} and no longer held by `{agent}`",
                t.summary.status
            )));
        }
        Ok(Lease {
            run_id,
            agent,
            task_key,
            task_id: id,
            epoch,
            branch: t.branch.unwrap_or_default(),
            worktree: t.worktree.unwrap_or_default(),
        })
    }

    /// Checks the lease of a run by its id (the owner re-checks after slow git work).
    pub fn check_lease_by_run(&self, run_id: i64) -> Result<Lease, StoreError> {
        let token: String = self
            .conn
            .prepare_cached("SELECT token FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| r.get(0))?;
        self.check_lease(&token)
    }

    /// Completes a leased task: to `review` with a queued merge request, or to `closed` when
    /// there is nothing to merge.
    pub fn complete(
        &mut self,
        lease: &Lease,
        summary: Option<&str>,
        target: &str,
        nothing_to_merge: bool,
    ) -> Result<(), StoreError> {
        if let Some(s) = summary {
            validate_text("summary", s)?;
        }
        let now = now_ms();
        let actor = format!("agent:{}", lease.agent);
        let before = self.task_row(lease.task_key)?;
        let fix_of = self.fix_of(lease.task_key)?;
        let to = if nothing_to_merge {
            TaskStatus::Closed
        } else {
            TaskStatus::Review
        };
        let to = if fix_of.is_some() {
            TaskStatus::Closed
        } else {
            to
        };
        let tx = self.conn.transaction()?;
        release(&tx, lease.run_id, "completed", now)?;
        tx.prepare_cached(
            "UPDATE tasks SET status = ?1, updated_at = ?2, close_reason = ?3,
                 assignee = CASE WHEN ?1 = 'closed' THEN NULL ELSE assignee END
             WHERE key = ?4",
        )?
        .execute(params![
            to.as_str(),
            now,
            nothing_to_merge.then_some("nothing to merge"),
            lease.task_key
        ])?;
        if let Some(s) = summary.filter(|s| !s.trim().is_empty()) {
            add_note(&tx, lease.task_key, now, &actor, "summary", s)?;
        }
        let mut mr = None;
        if !nothing_to_merge && fix_of.is_none() {
            tx.prepare_cached(
                "INSERT INTO merge_requests (task, branch, target, state, summary, agent, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?6)",
            )?
            .execute(params![lease.task_key, lease.branch, target, summary, lease.agent, now])?;
            mr = Some(tx.last_insert_rowid());
        }
        let after = load_task(&tx, lease.task_key)?;
        let mut events = vec![Audit::new(&actor, if nothing_to_merge { Action::TaskClosed } else { Action::TaskCompleted }, format!("task:{}", lease.task_id))
            .task(lease.task_key, &lease.task_id)
            .before(json!({"status": before.summary.status}))
            .after(json!({"status": to, "run": lease.run_id, "merge_request": mr, "branch": lease.branch}))
            .reason(summary)
            .append(&tx, now)?];
        let mut plan_change = None;
        if let Some(plan) = after.plan_key {
            plan_change = crate::plans::settle_plan(&tx, plan, &actor, now, &mut events)?;
        }
        tx.commit()?;
        self.new_events.extend(events);
        self.after_status_change(lease.task_key, &after, plan_change);
        if let Some(original) = fix_of {
            self.fix_completed(lease.task_key, original, &actor)?;
        }
        Ok(())
    }

    /// Hands a leased task back to the pool with a note.
    pub fn handoff(&mut self, lease: &Lease, note: &str) -> Result<(), StoreError> {
        validate_text("note", note)?;
        if note.trim().is_empty() {
            return Err(
                StoreError::invalid("a handoff needs a note for the next worker")
                    .hint("--note TEXT"),
            );
        }
        let now = now_ms();
        let actor = format!("agent:{}", lease.agent);
        let tx = self.conn.transaction()?;
        release(&tx, lease.run_id, "handed_off", now)?;
        // handoffs in a row (this one included): each waits longer, and too many block the
        // task, so an agent that only ever hands off cannot spin the daemon
        // a status change by someone else (a human unblocking the task, say) starts a new count
        let since: i64 = tx
            .prepare_cached(
                "SELECT coalesce(max(at), 0) FROM events WHERE task = ?1 AND action = 'task_status_changed'",
            )?
            .query_row([lease.task_key], |r| r.get(0))?;
        let outcomes: Vec<Option<String>> = tx
            .prepare_cached(
                "SELECT outcome FROM runs WHERE task = ?1 AND started_at >= ?2 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(params![lease.task_key, since, MAX_HANDOFFS], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let streak = u32::try_from(
            outcomes
                .iter()
                .take_while(|o| o.as_deref() == Some("handed_off"))
                .count(),
        )
        .unwrap_or(u32::MAX);
        let stuck = streak >= MAX_HANDOFFS;
        let (status, retry_at) = if stuck {
            (TaskStatus::Blocked, None)
        } else {
            (
                TaskStatus::Open,
                handoff_backoff_ms(streak).map(|b| now + b),
            )
        };
        tx.prepare_cached(
            "UPDATE tasks SET status = ?1, assignee = NULL, retry_at = ?2, updated_at = ?3 WHERE key = ?4",
        )?
        .execute(params![status.as_str(), retry_at, now, lease.task_key])?;
        add_note(&tx, lease.task_key, now, &actor, "handoff", note)?;
        let after = load_task(&tx, lease.task_key)?;
        let mut events = vec![Audit::new(&actor, Action::TaskHandedOff, format!("task:{}", lease.task_id))
            .task(lease.task_key, &lease.task_id)
            .before(json!({"status": "in_progress", "assignee": lease.agent}))
            .after(json!({"status": status, "assignee": null, "run": lease.run_id, "handoffs_in_a_row": streak, "retry_at": retry_at}))
            .reason(Some(note))
            .append(&tx, now)?];
        if stuck {
            let why = format!(
                "handed off {streak} times in a row without finishing; blocked for a human or the recovery steward"
            );
            add_note(&tx, lease.task_key, now, "daemon", "block", &why)?;
            events.push(
                Audit::new(
                    "daemon",
                    Action::TaskStuck,
                    format!("task:{}", lease.task_id),
                )
                .task(lease.task_key, &lease.task_id)
                .after(
                    json!({"status": "blocked", "handoffs_in_a_row": streak, "agent": lease.agent}),
                )
                .reason(Some(&why))
                .append(&tx, now)?,
            );
        }
        tx.commit()?;
        self.new_events.extend(events);
        self.index.update(lease.task_key, after.live());
        Ok(())
    }

    /// Records that a run's process ended. For a run that neither completed nor handed off,
    /// the task goes back to the pool with a handoff note and a backoff, or to `blocked`
    /// (with a `task_stuck` event) after `max_attempts` counted failures.
    pub fn run_ended(
        &mut self,
        run_id: i64,
        code: Option<i32>,
        failure: Failure,
        note: &str,
        usage: Option<&RunUsage>,
        max_attempts: u32,
    ) -> Result<AfterFailure, StoreError> {
        let now = now_ms();
        let (agent, task_key, released): (String, Option<Key>, Option<i64>) = self
            .conn
            .prepare_cached("SELECT agent, task, released_at FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let usage_json = usage.map(serde_json::to_string).transpose()?;
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE runs SET ended_at = ?1, exit_code = ?2, usage = coalesce(?3, usage),
                 outcome = CASE WHEN released_at IS NULL THEN ?4 ELSE outcome END,
                 result = CASE WHEN released_at IS NULL THEN ?6 ELSE result END
             WHERE id = ?5 AND ended_at IS NULL",
        )?
        .execute(params![
            now,
            code,
            usage_json,
            failure.outcome(),
            run_id,
            note
        ])?;
        let Some(task_key) = task_key.filter(|_| released.is_none()) else {
            tx.commit()?;
            return Ok(AfterFailure::Released);
        };
        let before = load_task(&tx, task_key)?;
        let id = before.summary.id.clone();
        if before.summary.status != TaskStatus::InProgress
            || before.summary.assignee.as_deref() != Some(agent.as_str())
        {
            // someone else moved the task meanwhile (closed it by hand, say); leave it
            tx.commit()?;
            return Ok(AfterFailure::Released);
        }
        // any end of an active session's run is a turn's end: nothing counted, the task
        // waits for the next turn; a turn that never ran gives its input back
        let session: Option<i64> = tx
            .prepare_cached("SELECT id FROM sessions WHERE task = ?1 AND status = 'active'")?
            .query_row([task_key], |r| r.get(0))
            .optional()?;
        if session.is_some()
            && matches!(
                failure,
                Failure::Interrupted | Failure::SpawnFailed | Failure::DaemonResources
            )
        {
            tx.prepare_cached(
                "UPDATE messages SET read_at = NULL, triaged_by = NULL WHERE triaged_by = ?1",
            )?
            .execute([run_id])?;
        }
        if failure == Failure::TurnEnded || session.is_some() {
            // a session between turns: its task waits for the next, nothing counted
            tx.prepare_cached(
                "UPDATE tasks SET status = 'open', assignee = NULL, updated_at = ?1 WHERE key = ?2",
            )?
            .execute(params![now, task_key])?;
            let after = load_task(&tx, task_key)?;
            let ev = Audit::new("daemon", Action::SessionTurnEnded, format!("task:{id}"))
                .task(task_key, &id)
                .before(json!({"status": "in_progress", "assignee": agent}))
                .after(json!({"status": "open", "run": run_id, "outcome": failure.outcome(), "exit_code": code, "session": session}))
                .reason((!note.is_empty()).then_some(note))
                .append(&tx, now)?;
            tx.commit()?;
            self.new_events.push(ev);
            self.index.update(task_key, after.live());
            return Ok(AfterFailure::Requeued);
        }
        let attempts = before.attempts + u32::from(failure.counts());
        let stuck = failure.counts() && attempts >= max_attempts;
        let (status, retry_at) = if stuck {
            (TaskStatus::Blocked, None)
        } else if failure.counts() {
            (TaskStatus::Open, Some(now + backoff_ms(attempts)))
        } else {
            (TaskStatus::Open, None)
        };
        tx.prepare_cached(
            "UPDATE tasks SET status = ?1, assignee = NULL, attempts = ?2, retry_at = ?3, updated_at = ?4 WHERE key = ?5",
        )?
        .execute(params![status.as_str(), attempts, retry_at, now, task_key])?;
        add_note(
            &tx,
            task_key,
            now,
            "daemon",
            if stuck { "block" } else { "handoff" },
            note,
        )?;
        let actor = "daemon";
        let after = load_task(&tx, task_key)?;
        let mut events = vec![Audit::new(actor, Action::RunFailed, format!("task:{id}"))
            .task(task_key, &id)
            .before(json!({"status": "in_progress", "assignee": agent}))
            .after(json!({"status": status, "run": run_id, "outcome": failure.outcome(), "exit_code": code, "attempts": attempts, "retry_at": retry_at}))
            .reason(Some(note))
            .append(&tx, now)?];
        if stuck {
            events.push(
                Audit::new(actor, Action::TaskStuck, format!("task:{id}"))
                    .task(task_key, &id)
                    .after(json!({"status": "blocked", "attempts": attempts, "agent": agent}))
                    .reason(Some(note))
                    .append(&tx, now)?,
            );
        }
        tx.commit()?;
        self.new_events.extend(events);
        self.index.update(task_key, after.live());
        Ok(if stuck {
            AfterFailure::Stuck
        } else {
            AfterFailure::Requeued
        })
    }

    /// Records that a run's output passed the log cap and `dropped` bytes were cut from
    /// its log (an audit event on the run's task, or on the run for a steward's).
    pub fn run_log_truncated(
        &mut self,
        run_id: i64,
        dropped: u64,
        cap: u64,
        log: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let (agent, task): (String, Option<(Key, String)>) = self
            .conn
            .prepare_cached(
                "SELECT r.agent, r.task, t.id FROM runs r LEFT JOIN tasks t ON t.key = r.task WHERE r.id = ?1",
            )?
            .query_row([run_id], |r| {
                let task = match (r.get::<_, Option<Key>>(1)?, r.get::<_, Option<String>>(2)?) {
                    (Some(k), Some(id)) => Some((k, id)),
                    _ => None,
                };
                Ok((r.get(0)?, task))
            })?;
        let task = task.and_then(|(k, id)| TaskId::new(id).ok().map(|id| (k, id)));
        let reason = format!(
            "the run wrote more than run_log_max ({cap} bytes); {dropped} bytes were dropped from the middle of its log"
        );
        let tx = self.conn.transaction()?;
        let mut audit = Audit::new(
            "daemon",
            Action::RunLogTruncated,
            task.as_ref()
                .map_or_else(|| format!("run:{run_id}"), |(_, id)| format!("task:{id}")),
        );
        if let Some((k, id)) = &task {
            audit = audit.task(*k, id);
        }
        let ev = audit
            .after(json!({"run": run_id, "agent": agent, "dropped_bytes": dropped, "cap_bytes": cap, "log": log}))
            .reason(Some(&reason))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Whether a run's lease was released by a completion or a handoff.
    pub fn run_released(&self, run_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT released_at IS NOT NULL FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| r.get(0))?)
    }

    /// Runs not yet ended, for recovery after a restart.
    pub fn live_runs(&self) -> Result<Vec<LiveRun>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.agent, r.task, t.id, r.epoch, r.pid, r.proc_start, r.released_at, t.worktree, r.log_path,
                    r.token, r.data, coalesce(t.status = 'in_progress' AND t.assignee = r.agent, 0)
             FROM runs r LEFT JOIN tasks t ON t.key = r.task WHERE r.ended_at IS NULL ORDER BY r.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let task = match (r.get::<_, Option<Key>>(2)?, r.get::<_, Option<String>>(3)?) {
                (Some(k), Some(id)) => TaskId::new(id).ok().map(|id| (k, id)),
                _ => None,
            };
            Ok(LiveRun {
                run_id: r.get(0)?,
                agent: r.get(1)?,
                task,
                epoch: r.get(4)?,
                pid: r.get(5)?,
                proc_start: r.get::<_, Option<i64>>(6)?.map(i64::cast_unsigned),
                released: r.get::<_, Option<i64>>(7)?.is_some(),
                worktree: r.get(8)?,
                log_path: r.get(9)?,
                token: r.get(10)?,
                data: r
                    .get::<_, Option<String>>(11)?
                    .and_then(|d| serde_json::from_str(&d).ok()),
                holds_task: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Running runs per agent.
    pub fn running_by_agent(&self) -> Result<std::collections::HashMap<String, u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT agent, count(*) FROM runs WHERE ended_at IS NULL GROUP BY agent",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn after_status_change(
        &mut self,
        key: Key,
        after: &TaskRow,
        plan_change: Option<(Key, sf_proto::PlanStatus)>,
    ) {
        if let Some((plan, status)) = plan_change {
            self.index
                .set_plan_active(plan, sf_core::status::plan_dispatchable(status));
        }
        if sf_core::status::is_done(after.summary.status) {
            self.index.remove(key);
        } else {
            self.index.update(key, after.live());
        }
    }
}
