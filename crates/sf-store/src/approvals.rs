//! Approvals: one record for each decision that waits for a human (a hire, a held merge
//! request, an approval gate), with its comments and history. The legal moves live in
//! `sf_core::approval`; the effect of a decision on its subject is applied in the same
//! transaction as the decision (a hired agent becomes active or terminated), or by the
//! subject's own operation, which closes the approval in its transaction (`mr approve`,
//! `dep approve`).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};
use sf_core::approval::Move;
use sf_proto::{
    Action, AgentDetail, AgentPatch, AgentSpec, AgentStatus, ApprovalComment, ApprovalDetail,
    ApprovalInfo, ApprovalKind, ApprovalStatus, AuditEvent, ErrorKind, NewMessage,
};

use crate::events::Audit;
use crate::spec::validate_spec;
use crate::util::{now_ms, opt_ts, ts};
use crate::{Store, StoreError};

const COLS: &str = "id, kind, subject, status, requested_by, payload, decided_by, decided_at, \
                    decision_note, created_at, updated_at";

fn row_to_approval(r: &Row<'_>) -> rusqlite::Result<ApprovalInfo> {
    let kind: String = r.get(1)?;
    let status: String = r.get(3)?;
    let payload: String = r.get(5)?;
    Ok(ApprovalInfo {
        id: r.get(0)?,
        kind: kind.parse().unwrap_or(ApprovalKind::HireAgent),
        subject: r.get(2)?,
        status: status.parse().unwrap_or(ApprovalStatus::Cancelled),
        requested_by: r.get(4)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        decided_by: r.get(6)?,
        decided_at: opt_ts(r.get(7)?),
        decision_note: r.get(8)?,
        created_at: ts(r.get(9)?),
        updated_at: ts(r.get(10)?),
    })
}

/// The event of a move.
fn move_action(m: Move) -> Action {
    match m {
        Move::Approve => Action::ApprovalApproved,
        Move::Reject => Action::ApprovalRejected,
        Move::RequestRevision => Action::ApprovalRevisionRequested,
        Move::Resubmit => Action::ApprovalResubmitted,
        Move::Cancel => Action::ApprovalCancelled,
    }
}

fn move_word(m: Move) -> &'static str {
    match m {
        Move::Approve => "approved",
        Move::Reject => "rejected",
        Move::RequestRevision => "revision_requested",
        Move::Resubmit => "resubmitted",
        Move::Cancel => "cancelled",
    }
}

fn load(conn: &Connection, id: i64) -> Result<ApprovalInfo, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM approvals WHERE id = ?1"))?
        .query_row([id], row_to_approval)
        .optional()?
        .ok_or_else(|| {
            StoreError::not_found(format!("no approval #{id}"))
                .hint("list them with `sfctl approval list`")
        })
}

fn add_comment(
    conn: &Connection,
    id: i64,
    author: &str,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO approval_comments (approval_id, author, kind, body, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, author, kind, body, now])?;
    Ok(())
}

/// Opens an approval inside the caller's transaction; returns its id and event.
pub(crate) fn open(
    conn: &Connection,
    kind: ApprovalKind,
    subject: &str,
    requested_by: &str,
    payload: &Value,
    now: i64,
) -> Result<(i64, AuditEvent), StoreError> {
    conn.prepare_cached(
        "INSERT INTO approvals (kind, subject, status, requested_by, payload, created_at, updated_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        kind.as_str(),
        subject,
        requested_by,
        payload.to_string(),
        now
    ])?;
    let id = conn.last_insert_rowid();
    add_comment(conn, id, requested_by, "requested", "", now)?;
    let ev = Audit::new(
        requested_by,
        Action::ApprovalRequested,
        format!("approval:{id}"),
    )
    .after(json!({"kind": kind, "subject": subject, "payload": payload}))
    .append(conn, now)?;
    Ok((id, ev))
}

/// The open approval of `subject`, if any.
pub(crate) fn open_of(conn: &Connection, subject: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM approvals WHERE subject = ?1 AND status IN ('pending', 'revision_requested')",
        )?
        .query_row([subject], |r| r.get(0))
        .optional()?)
}

/// Closes the open approval of `subject` (if any) with a final status, inside the caller's
/// transaction: the subject's own operation decided it (`mr approve`, `dep approve`, a
/// cancelled merge request).
pub(crate) fn close_subject(
    conn: &Connection,
    actor: &str,
    subject: &str,
    m: Move,
    note: Option<&str>,
    now: i64,
) -> Result<Option<AuditEvent>, StoreError> {
    let Some(id) = open_of(conn, subject)? else {
        return Ok(None);
    };
    let before = load(conn, id)?;
    let Ok(status) = sf_core::approval::next(before.status, m) else {
        return Ok(None);
    };
    set_status(conn, actor, &before, status, m, note, now).map(Some)
}

fn set_status(
    conn: &Connection,
    actor: &str,
    before: &ApprovalInfo,
    status: ApprovalStatus,
    m: Move,
    note: Option<&str>,
    now: i64,
) -> Result<AuditEvent, StoreError> {
    let decided = matches!(m, Move::Approve | Move::Reject | Move::RequestRevision);
    conn.prepare_cached(
        "UPDATE approvals SET status = ?1, updated_at = ?2,
             decided_by = CASE WHEN ?3 THEN ?4 ELSE decided_by END,
             decided_at = CASE WHEN ?3 THEN ?2 ELSE decided_at END,
             decision_note = CASE WHEN ?3 THEN ?5 ELSE decision_note END
         WHERE id = ?6",
    )?
    .execute(params![
        status.as_str(),
        now,
        decided,
        actor,
        note,
        before.id
    ])?;
    add_comment(
        conn,
        before.id,
        actor,
        move_word(m),
        note.unwrap_or(""),
        now,
    )?;
    Audit::new(actor, move_action(m), format!("approval:{}", before.id))
        .before(json!({"status": before.status}))
        .after(json!({"status": status, "kind": before.kind, "subject": before.subject}))
        .reason(note)
        .append(conn, now)
}

impl Store {
    /// Approvals, newest first, optionally in one status.
    pub fn list_approvals(
        &self,
        status: Option<ApprovalStatus>,
    ) -> Result<Vec<ApprovalInfo>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM approvals WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT 500"
        ))?;
        let rows = stmt.query_map([status.map(ApprovalStatus::as_str)], row_to_approval)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One approval with its comments and history.
    pub fn show_approval(&self, id: i64) -> Result<ApprovalDetail, StoreError> {
        let approval = load(&self.conn, id)?;
        let comments = self
            .conn
            .prepare_cached(
                "SELECT author, kind, body, at FROM approval_comments WHERE approval_id = ?1 ORDER BY id",
            )?
            .query_map([id], |r| {
                Ok(ApprovalComment {
                    author: r.get(0)?,
                    kind: r.get(1)?,
                    body: r.get(2)?,
                    at: ts(r.get(3)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(ApprovalDetail { approval, comments })
    }

    /// Who asked for an approval (for the guard).
    pub fn approval_requester(&self, id: i64) -> Result<String, StoreError> {
        Ok(load(&self.conn, id)?.requested_by)
    }

    /// Adds a comment; the requesting agent gets it in its inbox.
    pub fn comment_approval(
        &mut self,
        actor: &str,
        id: i64,
        text: &str,
    ) -> Result<ApprovalDetail, StoreError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreError::invalid("the comment is empty").hint("give its text"));
        }
        crate::validate_text_len("comment", text)?;
        let before = load(&self.conn, id)?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        add_comment(&tx, id, actor, "comment", text, now)?;
        let ev = Audit::new(actor, Action::ApprovalCommented, format!("approval:{id}"))
            .reason(Some(text))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.tell_requester(actor, &before, &format!("comment on approval #{id}"), text);
        self.show_approval(id)
    }

    /// A move on an approval: a human's decision (approve, reject, ask for a revision) or
    /// the requester's (resubmit with `patch`, cancel). The effect on its subject is
    /// applied with it; the requesting agent gets the decision and note in its inbox.
    pub fn move_approval(
        &mut self,
        actor: &str,
        id: i64,
        m: Move,
        note: Option<&str>,
        patch: &AgentPatch,
    ) -> Result<ApprovalDetail, StoreError> {
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = note {
            crate::validate_text_len("note", n)?;
        }
        let before = load(&self.conn, id)?;
        let status = sf_core::approval::next(before.status, m).map_err(|(why, hint)| {
            StoreError::state(format!("cannot {} approval #{id}: {why}", m.verb())).hint(hint)
        })?;
        if m == Move::Cancel && before.kind == ApprovalKind::Gate && actor.starts_with("agent:") {
            return Err(StoreError::Denied(
                sf_proto::ProtoError::new(
                    ErrorKind::Denied,
                    format!("a gate's approval is withdrawn by a human; `{actor}` may not"),
                )
                .with_hint("remove the gate's dependency is a human's decision too")
                .with_code("HUMAN_REQUIRED"),
            ));
        }
        if m == Move::Resubmit && before.kind != ApprovalKind::HireAgent && !patch.is_empty() {
            return Err(StoreError::invalid(format!(
                "a {} approval has no fields to change",
                before.kind
            ))
            .hint("resubmit it without changes, with a --note"));
        }
        // decisions on merge requests and gates go through their own operations, which
        // close the approval in their transaction
        match (before.kind, m) {
            (ApprovalKind::MergeRequest, Move::Approve) => {
                let mr = subject_id(&before.subject, "mr:")?;
                let approver = actor.strip_prefix("human:").unwrap_or(actor);
                self.approve_mr(sf_proto::MergeRequestId(mr), approver)?;
                self.annotate(id, actor, note)?;
                self.tell_requester(
                    actor,
                    &before,
                    &format!("approval #{id} approved"),
                    note.unwrap_or(""),
                );
                return self.show_approval(id);
            }
            (ApprovalKind::Gate, Move::Approve) => {
                let dep = subject_id(&before.subject, "gate:")?;
                let approver = actor.strip_prefix("human:").unwrap_or(actor);
                self.approve_gate(actor, sf_proto::DepId(dep), approver)?;
                self.annotate(id, actor, note)?;
                self.tell_requester(
                    actor,
                    &before,
                    &format!("approval #{id}: gate approved"),
                    note.unwrap_or(""),
                );
                return self.show_approval(id);
            }
            (ApprovalKind::MergeRequest, Move::Reject | Move::Cancel) => {
                let mr = subject_id(&before.subject, "mr:")?;
                self.cancel_mr_closing(actor, sf_proto::MergeRequestId(mr), m, note)?;
                self.tell_requester(
                    actor,
                    &before,
                    &format!("approval #{id} {}", move_word(m)),
                    note.unwrap_or(""),
                );
                return self.show_approval(id);
            }
            _ => {}
        }
        let now = now_ms();
        let mut events = Vec::new();
        let tx = self.conn.transaction()?;
        if before.kind == ApprovalKind::HireAgent {
            let name = before
                .payload
                .get("agent")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match m {
                // an approved hire is a draft: signed, dry-run and taken live by a human
                Move::Approve => {
                    set_agent_status(&tx, &name, AgentStatus::Draft, true, now)?;
                }
                Move::Reject | Move::Cancel => {
                    set_agent_status(&tx, &name, AgentStatus::Terminated, false, now)?;
                }
                Move::Resubmit if !patch.is_empty() => {
                    let spec: String = tx
                        .prepare_cached("SELECT spec FROM agents WHERE name = ?1")?
                        .query_row([&name], |r| r.get(0))?;
                    let mut spec: AgentSpec = serde_json::from_str(&spec)?;
                    patch.apply(&mut spec);
                    let spec = validate_spec(spec, |_| false)?;
                    tx.prepare_cached(
                        "UPDATE agents SET spec = ?1, updated_at = ?2 WHERE name = ?3",
                    )?
                    .execute(params![
                        serde_json::to_string(&spec)?,
                        now,
                        name
                    ])?;
                    let mut payload = before.payload.clone();
                    let old_shown = payload["spec"].clone();
                    payload["spec"] = serde_json::to_value(sf_core::redact::spec(&spec))?;
                    tx.prepare_cached("UPDATE approvals SET payload = ?1 WHERE id = ?2")?
                        .execute(params![payload.to_string(), id])?;
                    events.push(
                        Audit::new(actor, Action::AgentUpdated, format!("agent:{name}"))
                            .before(old_shown)
                            .after(payload["spec"].clone())
                            .append(&tx, now)?,
                    );
                }
                _ => {}
            }
        }
        events.push(set_status(&tx, actor, &before, status, m, note, now)?);
        tx.commit()?;
        self.new_events.extend(events);
        self.tell_requester(
            actor,
            &before,
            &format!("approval #{id} {}", move_word(m)),
            note.unwrap_or(""),
        );
        self.show_approval(id)
    }

    /// Adds a decider's note to an approval its subject's operation closed.
    fn annotate(&mut self, id: i64, actor: &str, note: Option<&str>) -> Result<(), StoreError> {
        if let Some(n) = note {
            self.conn
                .prepare_cached("UPDATE approvals SET decision_note = coalesce(decision_note, ?1) WHERE id = ?2")?
                .execute(params![n, id])?;
            add_comment(&self.conn, id, actor, "comment", n, now_ms())?;
        }
        Ok(())
    }

    /// Tells an agent that asked for an approval what happened to it (best effort: the
    /// decision is recorded either way).
    fn tell_requester(&mut self, actor: &str, approval: &ApprovalInfo, subject: &str, body: &str) {
        let Some(agent) = approval.requested_by.strip_prefix("agent:") else {
            return;
        };
        if actor == approval.requested_by || !self.agent_exists(agent).unwrap_or(false) {
            return;
        }
        let text = format!(
            "{subject} ({} {}) by {actor}{}{body}\n\nSee `sfctl approval show {}`.",
            approval.kind,
            approval.subject,
            if body.is_empty() { "" } else { ":\n\n" },
            approval.id
        );
        let message = NewMessage {
            to: Some(agent.to_owned()),
            subject: Some(subject.to_owned()),
            body: text,
            ..NewMessage::default()
        };
        if let Err(e) = self.send_message(actor, message) {
            tracing::warn!(error = %e, approval = approval.id, "could not tell the requester");
        }
    }

    /// `sfctl agent hire`: creates the agent, `pending_approval` with a `hire_agent`
    /// approval when `needs_approval`, else a draft at once. One transaction.
    pub fn hire_agent(
        &mut self,
        actor: &str,
        spec: AgentSpec,
        needs_approval: bool,
        grants: Option<&str>,
    ) -> Result<(AgentDetail, Option<i64>), StoreError> {
        let spec = self.prepare_spec(actor, spec)?;
        let now = now_ms();
        let status = if needs_approval {
            AgentStatus::PendingApproval
        } else {
            AgentStatus::Draft
        };
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO agents (name, spec, enabled, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![
            spec.name,
            serde_json::to_string(&spec)?,
            !needs_approval,
            status.as_str(),
            now
        ])?;
        let shown = serde_json::to_value(sf_core::redact::spec(&spec))?;
        let mut events = vec![
            Audit::new(actor, Action::AgentHired, format!("agent:{}", spec.name))
                .after(json!({"spec": shown, "status": status}))
                .append(&tx, now)?,
        ];
        let approval = if needs_approval {
            // what the hire would grant beyond its hirer, for the human who decides
            let payload =
                json!({"agent": spec.name, "requested_by": actor, "spec": shown, "grants": grants});
            let (id, ev) = open(
                &tx,
                ApprovalKind::HireAgent,
                &format!("agent:{}", spec.name),
                actor,
                &payload,
                now,
            )?;
            events.push(ev);
            Some(id)
        } else {
            None
        };
        tx.commit()?;
        self.new_events.extend(events);
        Ok((self.show_agent(&spec.name)?, approval))
    }

    /// `sfctl agent update`: changes a registered agent's fields (a human's decision).
    pub fn update_agent(
        &mut self,
        actor: &str,
        name: &str,
        patch: &AgentPatch,
    ) -> Result<AgentDetail, StoreError> {
        if patch.is_empty() {
            return Err(StoreError::invalid("nothing to change")
                .hint("give the fields to change, e.g. `--model NAME` or `--capability push`"));
        }
        let before = self.show_agent(name)?.agent.spec;
        let mut spec = before.clone();
        patch.apply(&mut spec);
        let spec = validate_spec(spec, |_| false)?;
        self.check_seat(&spec)?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE agents SET spec = ?1, updated_at = ?2 WHERE name = ?3")?
            .execute(params![serde_json::to_string(&spec)?, now, name])?;
        let ev = Audit::new(actor, Action::AgentUpdated, format!("agent:{name}"))
            .before(serde_json::to_value(sf_core::redact::spec(&before))?)
            .after(serde_json::to_value(sf_core::redact::spec(&spec))?)
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_agent(name)
    }

    /// `sfctl agent permissions`: a human changes what an agent may do.
    pub fn set_agent_permissions(
        &mut self,
        actor: &str,
        name: &str,
        can_create_agents: Option<bool>,
    ) -> Result<AgentDetail, StoreError> {
        let before = self.show_agent(name)?.agent.spec;
        let mut spec = before.clone();
        if let Some(v) = can_create_agents {
            spec.permissions.can_create_agents = Some(v);
        }
        if spec == before {
            return self.show_agent(name);
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE agents SET spec = ?1, updated_at = ?2 WHERE name = ?3")?
            .execute(params![serde_json::to_string(&spec)?, now, name])?;
        let ev = Audit::new(
            actor,
            Action::AgentPermissionsChanged,
            format!("agent:{name}"),
        )
        .before(json!({"can_create_agents": before.can_create_agents()}))
        .after(json!({"can_create_agents": spec.can_create_agents()}))
        .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_agent(name)
    }
}

fn set_agent_status(
    conn: &Connection,
    name: &str,
    status: AgentStatus,
    enabled: bool,
    now: i64,
) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE agents SET status = ?1, enabled = ?2, updated_at = ?3 WHERE name = ?4",
        )?
        .execute(params![status.as_str(), enabled, now, name])?;
    if n == 0 {
        return Err(StoreError::state(format!(
            "the hired agent `{name}` no longer exists"
        )));
    }
    Ok(())
}

fn subject_id(subject: &str, prefix: &str) -> Result<i64, StoreError> {
    subject
        .strip_prefix(prefix)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::state(format!("approval subject `{subject}` is malformed")))
}
