//! Sessions of directors and persistent workers: a session is a task of its own, on
//! branch `agent/NAME/session-TIMESTAMP`, whose runs are its turns. Between turns nothing
//! runs; a turn starts when the session starts and whenever a message waits for the agent,
//! and it resumes the CLI's own session, so the model keeps its context.

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sf_proto::{Action, ErrorKind, MessageInfo, Mode, Role, SessionInfo, SessionStatus, TaskId};

use crate::events::Audit;
use crate::util::{now_ms, opt_ts, ts};
use crate::{Store, StoreError};

/// A session due a turn: what the dispatch phase needs to claim and launch it.
#[derive(Debug, Clone)]
pub struct TurnDue {
    /// The session.
    pub session: i64,
    /// Its agent.
    pub agent: String,
    /// Its task.
    pub task: TaskId,
    /// The CLI session to resume (`None`: the first turn of a new session).
    pub resume: Option<String>,
    /// The messages waiting for the agent, oldest first (its input).
    pub input: Vec<MessageInfo>,
}

const COLS: &str = "s.id, s.agent, t.id, s.branch, s.provider_session, s.resumed_from, \
                    s.status, s.note, s.turns, s.started_at, s.last_turn_at, s.ended_at, \
                    EXISTS (SELECT 1 FROM runs r WHERE r.task = s.task AND r.ended_at IS NULL)";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    let status: String = r.get(6)?;
    Ok(SessionInfo {
        id: r.get(0)?,
        agent: r.get(1)?,
        task: TaskId::new(r.get::<_, String>(2)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        branch: r.get(3)?,
        provider_session: r.get(4)?,
        resumed_from: r.get(5)?,
        status: status.parse().unwrap_or(SessionStatus::Ended),
        note: r.get(7)?,
        turns: r.get(8)?,
        started_at: ts(r.get(9)?),
        last_turn_at: opt_ts(r.get(10)?),
        ended_at: opt_ts(r.get(11)?),
        running: r.get(12)?,
    })
}

impl Store {
    /// `sfctl agent start` for a director or persistent worker: a new session (its task,
    /// its branch), continuing the CLI session `resume` if given. Its first turn is the
    /// dispatch phase's.
    pub fn start_session(
        &mut self,
        actor: &str,
        agent: &str,
        resume: Option<&str>,
    ) -> Result<SessionInfo, StoreError> {
        let spec = self.agent_spec(agent)?.ok_or_else(|| {
            StoreError::not_found(format!("no agent named `{agent}`"))
                .hint("list agents with `sfctl agent list`")
        })?;
        if !(spec.role == Role::Director || spec.mode == Mode::Persistent) {
            return Err(StoreError::state(format!(
                "agent `{agent}` is a {} {}; sessions are for directors and persistent workers",
                spec.mode, spec.role
            )));
        }
        if let Some(s) = self.active_session(agent)? {
            return Err(StoreError::refused(
                ErrorKind::Conflict,
                format!("agent `{agent}` already has session #{} (on {})", s.id, s.branch),
            )
            .hint(format!(
                "talk to it with `sfctl agent attach {agent}`, or end it with `sfctl agent stop {agent}`"
            )));
        }
        if let Some(r) = resume
            && !session_id_ok(r)
        {
            return Err(StoreError::invalid(format!("`{r}` is not a session id"))
                .hint(format!("see `sfctl agent sessions {agent}`")));
        }
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
        let branch = format!("agent/{agent}/session-{stamp}");
        let what = if spec.role == Role::Director {
            "You are in a live session with the humans of this workspace: plan, answer and \
             staff. Each message sent to you arrives as your next turn; when you have done \
             what a turn asks, stop and wait for the next."
        } else {
            "You are in a live session: you work on this branch in your own worktree for as \
             long as the session lasts. Each message sent to you arrives as your next turn. \
             When a piece of work is ready, commit it and land it with `sfctl merge`; then stop \
             and wait for the next turn."
        };
        let task = self.create_task(
            "daemon",
            sf_proto::NewTask {
                title: format!("Session of {agent}"),
                description: what.to_owned(),
                task_type: sf_proto::TaskType::Chore,
                // nobody takes it from dispatch: its turns are claimed for its agent
                skills: vec![format!("session.{agent}")],
                ..sf_proto::NewTask::default()
            },
        )?;
        let id = task.task.id.clone();
        let (key, _) = self.resolve_task(id.as_str())?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE tasks SET branch = ?1, worktree = ?2 WHERE key = ?3")?
            .execute(params![branch, format!("{id}-session"), key])?;
        tx.prepare_cached(
            "INSERT INTO sessions (agent, task, branch, resumed_from, status, started_at)
             VALUES (?1, ?2, ?3, ?4, 'active', ?5)",
        )?
        .execute(params![agent, key, branch, resume, now])?;
        let sid = tx.last_insert_rowid();
        let ev = Audit::new(actor, Action::SessionStarted, format!("agent:{agent}"))
            .after(json!({"session": sid, "task": id, "branch": branch, "resume": resume}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.session(sid)
    }

    /// How many sessions are active (their tasks wait between turns among the ready ones).
    pub fn active_sessions(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM sessions INDEXED BY sessions_active WHERE status = 'active'",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// One session.
    pub fn session(&self, id: i64) -> Result<SessionInfo, StoreError> {
        let sql =
            format!("SELECT {COLS} FROM sessions s JOIN tasks t ON t.key = s.task WHERE s.id = ?1");
        self.conn
            .prepare_cached(&sql)?
            .query_row([id], row)
            .optional()?
            .ok_or_else(|| StoreError::not_found(format!("no session #{id}")))
    }

    /// An agent's active session, if any.
    pub fn active_session(&self, agent: &str) -> Result<Option<SessionInfo>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM sessions s JOIN tasks t ON t.key = s.task
             WHERE s.agent = ?1 AND s.status = 'active'"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([agent], row)
            .optional()?)
    }

    /// An agent's sessions, newest first.
    pub fn list_sessions(&self, agent: &str) -> Result<Vec<SessionInfo>, StoreError> {
        self.agent_spec(agent)?.ok_or_else(|| {
            StoreError::not_found(format!("no agent named `{agent}`"))
                .hint("list agents with `sfctl agent list`")
        })?;
        let sql = format!(
            "SELECT {COLS} FROM sessions s JOIN tasks t ON t.key = s.task
             WHERE s.agent = ?1 ORDER BY s.id DESC"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_map([agent], row)?
            .collect::<Result<_, _>>()?)
    }

    /// The session a run is a turn of.
    pub fn session_of_run(&self, run: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT s.id FROM sessions s JOIN runs r ON r.task = s.task WHERE r.id = ?1",
            )?
            .query_row([run], |r| r.get(0))
            .optional()?)
    }

    /// The active sessions due a turn: no turn running, their agent enabled, and either no
    /// turn taken yet or a message waiting for the agent (not one it sent itself). A session
    /// whose task was closed by hand is ended here. Reads only active sessions.
    pub fn turns_due(&mut self) -> Result<Vec<TurnDue>, StoreError> {
        let sql = format!(
            "SELECT {COLS}, t.status, a.enabled FROM sessions s JOIN tasks t ON t.key = s.task
             JOIN agents a ON a.name = s.agent WHERE s.status = 'active'"
        );
        let active: Vec<(SessionInfo, String, bool)> = self
            .conn
            .prepare_cached(&sql)?
            .query_map([], |r| Ok((row(r)?, r.get(13)?, r.get(14)?)))?
            .collect::<Result<_, _>>()?;
        let mut due = Vec::new();
        for (s, status, enabled) in active {
            if matches!(status.as_str(), "closed" | "tombstone") {
                self.end_session("daemon", &s.agent, "its task was closed")?;
                continue;
            }
            if s.running || !enabled || status != "open" {
                continue;
            }
            let input: Vec<MessageInfo> = self
                .list_messages(std::slice::from_ref(&s.agent), true, None)?
                .into_iter()
                .rev()
                .filter(|m| m.from != s.agent)
                .take(20)
                .collect();
            if s.turns > 0 && input.is_empty() {
                continue;
            }
            due.push(TurnDue {
                session: s.id,
                agent: s.agent,
                task: s.task,
                resume: s.provider_session.or(s.resumed_from),
                input,
            });
        }
        Ok(due)
    }

    /// Sends a `health-check` message to each active session that has taken no turn for
    /// `interval_ms` and has none waiting: it is its next turn. Returns how many were sent.
    pub fn send_health_checks(&mut self, interval_ms: i64, now: i64) -> Result<usize, StoreError> {
        let quiet: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT s.agent FROM sessions s WHERE s.status = 'active'
                   AND coalesce(s.last_turn_at, s.started_at) <= ?1
                   AND NOT EXISTS (SELECT 1 FROM messages m INDEXED BY messages_unread
                                   WHERE m.recipient = s.agent AND m.read_at IS NULL)
                   AND coalesce((SELECT m.kind FROM messages m INDEXED BY messages_by_recipient
                                 WHERE m.recipient = s.agent ORDER BY m.id DESC LIMIT 1), '')
                       != 'health-check'",
            )?
            .query_map([now - interval_ms], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for agent in &quiet {
            self.send_message(
                "daemon",
                sf_proto::NewMessage {
                    to: Some(agent.clone()),
                    subject: Some("health check".into()),
                    body: "Health check: say in one line what you are doing and whether you \
                           are blocked (`sfctl message send --to human --type status-update \
                           ...`), then wait for the next turn."
                        .into(),
                    kind: sf_proto::MessageType::HealthCheck,
                    ..sf_proto::NewMessage::default()
                },
            )?;
        }
        Ok(quiet.len())
    }

    /// A turn of `session` began as `run`, given messages `ids` (read by it).
    pub fn turn_started(&mut self, session: i64, run: i64, ids: &[i64]) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE sessions SET turns = turns + 1, last_turn_at = ?1 WHERE id = ?2",
        )?
        .execute(params![now, session])?;
        // read by this turn; given back if the turn never starts (`run_ended`)
        for id in ids {
            tx.prepare_cached(
                "UPDATE messages SET read_at = coalesce(read_at, ?1), triaged_by = ?2 WHERE id = ?3",
            )?
            .execute(params![now, run, id])?;
        }
        let agent: String = tx
            .prepare_cached("SELECT agent FROM sessions WHERE id = ?1")?
            .query_row([session], |r| r.get(0))?;
        let ev = Audit::new("daemon", Action::SessionTurn, format!("agent:{agent}"))
            .after(json!({"session": session, "run": run, "messages": ids}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// A turn ended: the CLI session it reported is the one the next turn resumes.
    pub fn turn_ended(&mut self, session: i64, provider: Option<&str>) -> Result<(), StoreError> {
        // what a CLI's stream said its session is: kept only if it can be passed back
        let provider = provider.filter(|p| session_id_ok(p));
        self.conn
            .prepare_cached(
                "UPDATE sessions SET provider_session = coalesce(?1, provider_session) WHERE id = ?2",
            )?
            .execute(params![provider, session])?;
        Ok(())
    }

    /// Notes something a human should know about a session (a stalled turn).
    pub fn flag_session(&mut self, session: i64, note: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let before: Option<(String, Option<String>)> = tx
            .prepare_cached("SELECT agent, note FROM sessions WHERE id = ?1")?
            .query_row([session], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((agent, old)) = before else {
            return Ok(());
        };
        // the same flag at every pass is one event
        if old.as_deref() == Some(note) {
            return Ok(());
        }
        tx.prepare_cached("UPDATE sessions SET note = ?1 WHERE id = ?2")?
            .execute(params![note, session])?;
        let ev = Audit::new("daemon", Action::SessionFlagged, format!("agent:{agent}"))
            .after(json!({"session": session}))
            .reason(Some(note))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Ends an agent's active session (`sfctl agent stop`): its task is closed, its branch
    /// archived with it; what it did not land stays in the archive. `None`: it had none.
    pub fn end_session(
        &mut self,
        actor: &str,
        agent: &str,
        why: &str,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let Some(s) = self.active_session(agent)? else {
            return Ok(None);
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE sessions SET status = 'ended', ended_at = ?1, note = coalesce(note, ?2) WHERE id = ?3",
        )?
        .execute(params![now, why, s.id])?;
        let ev = Audit::new(actor, Action::SessionEnded, format!("agent:{agent}"))
            .after(json!({"session": s.id, "turns": s.turns, "branch": s.branch}))
            .reason(Some(why))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        let task = self.show_task(s.task.as_str())?.task.status;
        if !matches!(
            task,
            sf_proto::TaskStatus::Closed | sf_proto::TaskStatus::Tombstone
        ) {
            self.change_status(
                actor,
                s.task.as_str(),
                sf_proto::StatusChange::Close,
                Some(why),
                None,
            )?;
        }
        self.session(s.id).map(Some)
    }
}

/// A CLI session id sf passes back to the CLI (`--resume`): letters, digits and `-_.:`,
/// not starting with `-`, at most 200.
fn session_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}
