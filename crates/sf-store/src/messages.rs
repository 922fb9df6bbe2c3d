//! Messages between agents and humans: an inbox per recipient (an agent, `human`, or
//! `task:<id>` for whoever works on a task). A message to `director` is routed to the
//! director the sender reports to, or the only one; with no director registered it becomes a
//! backlog task, so a question that needs a human decision is never dropped.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;
use sf_core::naming::MAX_TITLE;
use sf_core::ready::Key;
use sf_proto::{ErrorKind, MessageInfo, NewMessage, Role, TaskId};

use crate::events::Audit;
use crate::util::{fresh_id, now_ms, opt_ts, ts};
use crate::{Store, StoreError, validate_text_len};
use sf_proto::Action;

/// The recipient of messages for humans.
pub const HUMAN: &str = "human";
/// The role address routed to a director.
pub const DIRECTOR: &str = "director";

const COLS: &str = "m.id, m.at, m.sender, m.recipient, m.addressed, t.id, m.subject, m.body, \
                    m.reply_to, m.read_at, b.id, m.kind";
const FROM: &str = "messages m LEFT JOIN tasks t ON t.key = m.task \
                    LEFT JOIN tasks b ON b.key = m.became_task";

fn row_to_message(r: &Row<'_>) -> rusqlite::Result<MessageInfo> {
    let task = |s: Option<String>| s.and_then(|s| TaskId::new(s).ok());
    Ok(MessageInfo {
        id: sf_proto::MessageId(r.get(0)?),
        at: ts(r.get(1)?),
        from: r.get(2)?,
        to: r.get(3)?,
        addressed: r.get(4)?,
        task: task(r.get(5)?),
        subject: r.get(6)?,
        body: r.get(7)?,
        reply_to: r.get::<_, Option<i64>>(8)?.map(sf_proto::MessageId),
        read_at: opt_ts(r.get(9)?),
        became_task: task(r.get(10)?),
        kind: r
            .get::<_, String>(11)?
            .parse()
            .unwrap_or(sf_proto::MessageType::Generic),
    })
}

/// Who is sending: a name for the `from` column, and the task of the sender's run, if any.
struct Sender {
    name: String,
    task: Option<(Key, TaskId)>,
}

/// Where a message goes.
enum Route {
    /// To this inbox.
    Inbox(String),
    /// Nobody can receive it: it becomes a backlog task.
    Task,
}

/// The default subject: the body's first line, cut to a title's length.
fn subject_of(body: &str) -> String {
    let first = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    // a subject is shown in tables and may become a task title: no control characters
    let first: String = first
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let first = first.trim();
    if first.chars().count() <= 80 {
        first.to_owned()
    } else {
        let cut: String = first.chars().take(79).collect();
        format!("{cut}…")
    }
}

impl Store {
    /// Sends a message. A message to `director` goes to the director the sender reports to,
    /// or the first enabled director by name; with none registered it becomes a backlog task
    /// (not dispatched to workers) in the same transaction.
    pub fn send_message(
        &mut self,
        actor: &str,
        new: NewMessage,
    ) -> Result<MessageInfo, StoreError> {
        if new.body.trim().is_empty() {
            return Err(StoreError::invalid("the message is empty")
                .hint("give the text as an argument, or `-` to read it from stdin"));
        }
        validate_text_len("message", &new.body)?;
        let sender = self.sender(actor, new.token.as_deref())?;
        let reply_to = match new.reply_to {
            Some(id) => Some(self.show_message(id)?),
            None => None,
        };
        let mut task = match &new.task {
            Some(p) => Some(self.resolve_task(p)?),
            None => None,
        };
        // an explicit address wins; else the task's worker, the replied-to sender, or refuse
        let address = match (&new.to, &task, &reply_to) {
            (Some(to), _, _) => to.trim().to_owned(),
            (None, Some((_, id)), _) => format!("task:{id}"),
            (None, None, Some(orig)) => {
                if orig.from.starts_with("human:") {
                    HUMAN.to_owned()
                } else {
                    orig.from.clone()
                }
            }
            (None, None, None) => {
                return Err(StoreError::invalid("the message has no recipient").hint(
                    "name one: `--to AGENT`, `--to director`, `--to human`, or `--task ID` for whoever works on a task",
                ));
            }
        };
        if task.is_none() {
            task = reply_to
                .as_ref()
                .and_then(|m| m.task.clone())
                .map(|id| self.resolve_task(id.as_str()))
                .transpose()?
                .or_else(|| sender.task.clone());
        }
        let route = self.route(&address, &sender.name)?;
        let (recipient, task) = match (&route, address.strip_prefix("task:")) {
            (Route::Inbox(_), Some(p)) => {
                let t = self.resolve_task(p)?;
                (format!("task:{}", t.1), Some(t))
            }
            (Route::Inbox(r), None) => (r.clone(), task),
            (Route::Task, _) => (DIRECTOR.to_owned(), task),
        };
        let subject = match &new.subject {
            Some(s) => {
                let s = s.trim();
                if s.is_empty() || s.chars().count() > MAX_TITLE || s.chars().any(char::is_control)
                {
                    return Err(StoreError::invalid(format!(
                        "invalid subject: use one line of 1 to {MAX_TITLE} characters"
                    ))
                    .hint("put the details in the message's text"));
                }
                s.to_owned()
            }
            None => subject_of(&new.body),
        };
        let addressed = (address != recipient).then_some(address);
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut events = Vec::new();
        let mut became = None;
        if matches!(route, Route::Task) {
            let title: String = format!("Decision needed: {subject}")
                .chars()
                .take(MAX_TITLE)
                .collect();
            let about = task
                .as_ref()
                .map(|(_, id)| format!(" about task {id}"))
                .unwrap_or_default();
            let description = format!(
                "{}\n\n---\nA message from {}{about} to the director. No enabled director is registered, so it became \
                 this task; it stays in the backlog and no worker takes it. Decide, then close it \
                 (`sfctl task close ID --reason ...`) or turn it into work (`sfctl task activate ID`). \
                 Register a director to receive such messages: \
                 `sfctl agent register NAME --role director --mode persistent`.",
                new.body.trim_end(),
                sender.name
            );
            let id = TaskId::new(fresh_id(&tx, "tasks")?).expect("generated ids are valid");
            tx.prepare_cached(
                "INSERT INTO tasks (id, title, description, status, priority, task_type, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'backlog', 2, 'task', ?4, ?4)",
            )?
            .execute(params![id.as_str(), title, description, now])?;
            let key = tx.last_insert_rowid();
            let row = crate::tasks::load_task(&tx, key)?;
            events.push(
                Audit::new(actor, Action::TaskCreated, format!("task:{id}"))
                    .task(key, &id)
                    .after(row.snapshot())
                    .reason(Some(
                        "a message to the director, and no director is registered",
                    ))
                    .append(&tx, now)?,
            );
            became = Some((key, id, row));
        }
        tx.prepare_cached(
            "INSERT INTO messages (at, sender, recipient, addressed, task, subject, body, reply_to, became_task, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            now,
            sender.name,
            recipient,
            addressed,
            task.as_ref().map(|(k, _)| *k),
            subject,
            new.body,
            new.reply_to.map(|r| r.0),
            became.as_ref().map(|(k, _, _)| *k),
            new.kind.as_str(),
        ])?;
        let id = tx.last_insert_rowid();
        let info = MessageInfo {
            id: sf_proto::MessageId(id),
            at: ts(now),
            from: sender.name.clone(),
            to: recipient,
            addressed,
            task: task.as_ref().map(|(_, id)| id.clone()),
            subject,
            body: new.body,
            reply_to: new.reply_to,
            read_at: None,
            became_task: became.as_ref().map(|(_, id, _)| id.clone()),
            kind: new.kind,
        };
        // the event carries the envelope, not the body (bodies can be 64 KiB)
        let mut ev = Audit::new(actor, Action::MessageSent, format!("message:{id}")).after(json!({
            "id": id,
            "from": info.from,
            "to": info.to,
            "addressed": info.addressed,
            "task": info.task,
            "subject": info.subject,
            "kind": info.kind,
            "reply_to": info.reply_to,
            "became_task": info.became_task,
        }));
        if let Some((key, tid)) = &task {
            ev = ev.task(*key, tid);
        }
        events.push(ev.append(&tx, now)?);
        tx.commit()?;
        self.new_events.extend(events);
        if let Some((key, _, row)) = became {
            self.index.insert(key, row.live(), Vec::new());
        }
        Ok(info)
    }

    /// The sender: the run named by a lease token (checked like a completion's, so a stale
    /// incarnation is refused), else the caller (`agent:NAME` is shown as `NAME`).
    fn sender(&self, actor: &str, token: Option<&str>) -> Result<Sender, StoreError> {
        let Some(token) = token else {
            if let Some(agent) = actor.strip_prefix("agent:") {
                let known: bool = self
                    .conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM agents WHERE name = ?1)")?
                    .query_row([agent], |r| r.get(0))?;
                if !known {
                    return Err(StoreError::refused(
                        ErrorKind::NotFound,
                        format!("no agent named `{agent}` to send as (SF_AGENT={agent})"),
                    )
                    .hint(
                        "register it with `sfctl agent register`, or unset SF_AGENT to send as \
                         yourself",
                    ));
                }
            }
            let name = actor.strip_prefix("agent:").unwrap_or(actor).to_owned();
            return Ok(Sender { name, task: None });
        };
        let row: Option<(String, Option<Key>, Option<i64>)> = self
            .conn
            .prepare_cached("SELECT agent, task, ended_at FROM runs WHERE token = ?1")?
            .query_row([token], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match row {
            None => Err(StoreError::refused(ErrorKind::PermissionDenied, "unknown lease token")
                .hint("send from inside a run (SF_RUN is set there), or unset SF_RUN to send as yourself")),
            Some((_, Some(_), _)) => {
                let lease = self.check_lease(token)?;
                Ok(Sender {
                    name: lease.agent,
                    task: Some((lease.task_key, lease.task_id)),
                })
            }
            Some((agent, None, None)) => Ok(Sender {
                name: agent,
                task: None,
            }),
            Some((agent, None, Some(_))) => Err(StoreError::refused(
                ErrorKind::PermissionDenied,
                format!("the run of `{agent}` this token belongs to has ended"),
            )
            .hint("only a live run can send with its token")),
        }
    }

    /// Resolves an address to an inbox, or to "becomes a task" for `director` with none.
    fn route(&self, address: &str, sender: &str) -> Result<Route, StoreError> {
        // `human:NAME`: one person's inbox (a seat's steward)
        if let Some(who) = address.strip_prefix("human:")
            && (who.is_empty()
                || who.len() > 64
                || !who
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_.@".contains(c)))
        {
            return Err(
                StoreError::invalid(format!("`{address}` is not a person's inbox"))
                    .hint("human:NAME, NAME a user name (letters, digits, `-_.@`)"),
            );
        }
        if address == HUMAN || address.starts_with("task:") || address.starts_with("human:") {
            return Ok(Route::Inbox(address.to_owned()));
        }
        if address == DIRECTOR {
            let directors = self.directors()?;
            let Some(first) = directors.first() else {
                return Ok(Route::Task);
            };
            // the director the sender reports to, if it is one
            let pick = self
                .agent_reports_to(sender)?
                .filter(|b| directors.contains(b))
                .unwrap_or_else(|| first.clone());
            return Ok(Route::Inbox(pick));
        }
        let exists: bool = self
            .conn
            .prepare_cached("SELECT 1 FROM agents WHERE name = ?1")?
            .query_row([address], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            Ok(Route::Inbox(address.to_owned()))
        } else {
            Err(StoreError::not_found(format!("no agent named `{address}` to send to"))
                .hint("send to an agent from `sfctl agent list`, or to `director`, `human` or `task:ID`"))
        }
    }

    /// Enabled directors, by name.
    fn directors(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached("SELECT name, spec FROM agents WHERE enabled = 1 ORDER BY name")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for (name, spec) in rows {
            let spec: sf_proto::AgentSpec = serde_json::from_str(&spec)?;
            if spec.role == Role::Director {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn agent_reports_to(&self, name: &str) -> Result<Option<String>, StoreError> {
        let spec: Option<String> = self
            .conn
            .prepare_cached("SELECT spec FROM agents WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        Ok(match spec {
            Some(s) => serde_json::from_str::<sf_proto::AgentSpec>(&s)?.reports_to,
            None => None,
        })
    }

    /// One message.
    pub fn show_message(&self, id: sf_proto::MessageId) -> Result<MessageInfo, StoreError> {
        let id = id.0;
        self.conn
            .prepare_cached(&format!("SELECT {COLS} FROM {FROM} WHERE m.id = ?1"))?
            .query_row([id], row_to_message)
            .optional()?
            .ok_or_else(|| {
                StoreError::not_found(format!("no message {id}"))
                    .hint("list messages with `sfctl inbox --all`")
            })
    }

    /// Messages newest first: to one of `recipients` (all when empty), optionally unread only.
    pub fn list_messages(
        &self,
        recipients: &[String],
        unread: bool,
        limit: Option<u32>,
    ) -> Result<Vec<MessageInfo>, StoreError> {
        let mut sql = format!("SELECT {COLS} FROM {FROM} WHERE 1");
        if !recipients.is_empty() {
            let marks = vec!["?"; recipients.len()].join(", ");
            sql.push_str(&format!(" AND m.recipient IN ({marks})"));
        }
        if unread {
            sql.push_str(" AND m.read_at IS NULL");
        }
        sql.push_str(" ORDER BY m.id DESC");
        if let Some(l) = limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(recipients), row_to_message)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Messages about a task, oldest first.
    pub(crate) fn task_messages(&self, key: Key) -> Result<Vec<MessageInfo>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM {FROM} WHERE m.task = ?1 ORDER BY m.id"
        ))?;
        let rows = stmt
            .query_map([key], row_to_message)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Marks messages read when `actor` is their recipient (others are only shown; those
    /// already read are left as they were). Unknown ids are refused before anything changes.
    pub fn read_messages(
        &mut self,
        actor: &str,
        ids: &[sf_proto::MessageId],
    ) -> Result<Vec<MessageInfo>, StoreError> {
        let messages = ids
            .iter()
            .map(|&id| self.show_message(id))
            .collect::<Result<Vec<_>, _>>()?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut events = Vec::new();
        // only the recipient's reading marks a message read: anyone may look at any message
        // without taking it out of its recipient's inbox
        let mine = |m: &MessageInfo| match actor.split_once(':') {
            Some(("agent", name)) => m.to == name,
            Some(("human", _)) => m.to == HUMAN,
            _ => false,
        };
        for m in messages.iter().filter(|m| m.read_at.is_none() && mine(m)) {
            tx.prepare_cached(
                "UPDATE messages SET read_at = ?1 WHERE id = ?2 AND read_at IS NULL",
            )?
            .execute(params![now, m.id.0])?;
            events.push(
                Audit::new(actor, Action::MessageRead, format!("message:{}", m.id))
                    .after(json!({"to": m.to}))
                    .append(&tx, now)?,
            );
        }
        tx.commit()?;
        self.new_events.extend(events);
        ids.iter().map(|&id| self.show_message(id)).collect()
    }

    /// Whether `sender` sent a message about the task to the director (it may have become
    /// a task) at or after `since` (unix ms): how a recovery steward defers a stuck task.
    pub fn told_director(&self, sender: &str, task: &str, since: i64) -> Result<bool, StoreError> {
        let (key, _) = self.resolve_task(task)?;
        let sent: Vec<(String, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT recipient, addressed FROM messages WHERE task = ?1 AND sender = ?2 AND at >= ?3",
            )?
            .query_map(params![key, sender, since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if sent
            .iter()
            .any(|(to, addressed)| to == DIRECTOR || addressed.as_deref() == Some(DIRECTOR))
        {
            return Ok(true);
        }
        // sent to a director by name
        let directors = self.directors()?;
        Ok(sent.iter().any(|(to, _)| directors.contains(to)))
    }
}

impl Store {
    /// The messages waiting for `agent`'s triage run, when they are due: at least `batch`
    /// of them, or the oldest older than `after_ms` (at most 20, oldest first). Unread,
    /// addressed to the agent itself, not yet given to a triage run.
    pub fn triage_due(
        &self,
        agent: &str,
        batch: u32,
        after_ms: i64,
        now: i64,
    ) -> Result<Option<Vec<MessageInfo>>, StoreError> {
        let (count, oldest): (u32, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT count(*), min(at) FROM messages INDEXED BY messages_unread
                 WHERE recipient = ?1 AND read_at IS NULL AND triage_task IS NULL
                   AND sender != ?1",
            )?
            .query_row([agent], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let due = count > 0 && (count >= batch || oldest.is_some_and(|o| o <= now - after_ms));
        if !due {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {COLS} FROM {FROM} WHERE m.recipient = ?1 AND m.read_at IS NULL
             AND m.triage_task IS NULL AND m.sender != ?1 ORDER BY m.id LIMIT 20"
        );
        let list = self
            .conn
            .prepare_cached(&sql)?
            .query_map([agent], row_to_message)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(list))
    }

    /// Creates `agent`'s triage task for `batch`, the messages given to it (and read) in
    /// the same transaction: each message goes to one triage task, whatever a kill
    /// interrupts.
    pub fn create_triage(
        &mut self,
        agent: &str,
        batch: &[MessageInfo],
    ) -> Result<sf_proto::TaskDetail, StoreError> {
        let ids: Vec<i64> = batch.iter().map(|m| m.id.0).collect();
        let now = now_ms();
        self.create_task_with("daemon", triage_task(agent, batch), |tx, key| {
            for id in &ids {
                tx.prepare_cached(
                    "UPDATE messages SET triage_task = ?1, read_at = coalesce(read_at, ?2) WHERE id = ?3",
                )?
                .execute(params![key, now, id])?;
            }
            Ok(())
        })
    }
}

/// A message as a prompt shows it: who sent it and its type, from the daemon, then its
/// subject and body quoted line by line, so no text of the sender's reads as another
/// message or as the daemon's.
pub fn quoted_message(m: &MessageInfo) -> String {
    let who = if m.from.starts_with("human") || m.from == "daemon" {
        m.from.clone()
    } else {
        format!("agent {} (an agent: weigh it as such)", m.from)
    };
    let mut out = format!("\n### Message {} from {who}, type {}\n\n", m.id.0, m.kind);
    for line in std::iter::once(m.subject.as_str())
        .chain([""])
        .chain(m.body.trim().lines())
    {
        out.push_str("> ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The task of a triage run: the batch in its description, and a skill only its agent
/// offers (so a failed triage run goes back to the same worker).
pub fn triage_task(agent: &str, batch: &[MessageInfo]) -> sf_proto::NewTask {
    let mut text = format!(
        "{} message(s) for you gathered while you were idle. Read each, act on it or answer \
         it (`sfctl message reply ID TEXT`), create tasks for work that needs doing \
         (`sfctl task create`), and finish with `sfctl task complete` (`--no-changes` when you \
         changed no file).\n",
        batch.len()
    );
    for m in batch {
        text.push_str(&quoted_message(m));
    }
    // a description has a size limit: the batch is cut, never refused
    if text.len() > sf_core::naming::MAX_TEXT {
        let mut cut = sf_core::naming::MAX_TEXT - 64;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[cut: read the rest with `sfctl inbox --all`]\n");
    }
    sf_proto::NewTask {
        title: format!("Triage {} message(s) for {agent}", batch.len()),
        description: text,
        task_type: sf_proto::TaskType::Chore,
        skills: vec![sf_core::jobs::triage_skill(agent)],
        ..sf_proto::NewTask::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_default_to_the_first_non_empty_line_cut_short() {
        assert_eq!(subject_of("\n\n  hello there \nmore"), "hello there");
        assert_eq!(subject_of("evil \u{1b}]0;pwned\u{7}"), "evil  ]0;pwned");
        let long = "x".repeat(200);
        let s = subject_of(&long);
        assert_eq!(s.chars().count(), 80);
        assert!(s.ends_with('…'));
    }
}
