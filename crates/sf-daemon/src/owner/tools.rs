//! Tool calls: the guard's answer to each call an agent's CLI is about to make
//! (`Request::GuardToolCall`, from `sfctl guard check` in the CLI's hook), recorded in the
//! ledger; held calls parked until a human decides their approval or `hold_timeout` passes.

use std::time::{Duration, Instant};

use sf_core::tools::{ToolCall, ToolDecision, ToolVerdict};
use sf_proto::{ErrorKind, ProtoError, Response, ToolAnswer};
use sf_store::{NewToolCall, StoreError};

use super::{Owner, internal};
use crate::mailbox::Reply;

/// A held call waiting for a human: its ledger record, the hook's reply, the deadline.
pub(super) struct HeldCall {
    record: i64,
    reply: Reply,
    deadline: Instant,
}

/// One call a run's hook asks about (`Request::GuardToolCall`).
pub(super) struct Ask {
    pub token: String,
    pub source: String,
    pub tool: String,
    pub call_id: Option<String>,
    pub input: serde_json::Value,
}

/// How much of a call's input the ledger keeps.
const SUMMARY_MAX: usize = 200;

/// What the ledger keeps of a call's input: keys redacted, one line, cut short.
fn summary(input: &str) -> String {
    let one_line = input.replace(['\n', '\r'], " ");
    let red = sf_core::redact::command(&one_line);
    match red.char_indices().nth(SUMMARY_MAX) {
        Some((i, _)) => format!("{}…", &red[..i]),
        None => red,
    }
}

impl Owner {
    /// Decides one tool call and records it; a held call is answered later.
    pub(super) async fn guard_tool_call(&mut self, actor: &str, ask: Ask, reply: Reply) -> bool {
        let Ask {
            token,
            source,
            tool,
            call_id,
            input,
        } = ask;
        let started = Instant::now();
        let config = self.config.clone();
        let actor = actor.to_owned();
        let live = self.budgets_exist.then(|| self.live_use.clone());
        let decided = self
            .store_call(move |s| {
                let run = s.guard_run(&token)?;
                if let Some(a) = actor.strip_prefix("agent:")
                    && a != run.agent
                {
                    return Err(StoreError::Denied(
                        ProtoError::new(
                            ErrorKind::Denied,
                            format!(
                                "this lease is {}'s, but the caller is agent `{a}`",
                                run.agent
                            ),
                        )
                        .with_code("PERMISSION_DENIED"),
                    ));
                }
                let mut spec = s.agent_spec(&run.agent)?.unwrap_or_default();
                // a dry run holds no capability, whatever its agent is granted
                if s.is_dry_run(run.run_id)? {
                    spec.capabilities.clear();
                }
                let text = sf_core::tools::input_text(&input);
                let budget = match &live {
                    Some(live) => s.run_budget(run.run_id, live, true)?,
                    None => None,
                };
                let verdict = match (&budget, config.policy.as_ref()) {
                    (Some(e), _) => ToolVerdict {
                        decision: ToolDecision::Deny,
                        rule: format!("budget:{}:{}", e.scope, e.subject),
                        reason: format!("BUDGET_EXHAUSTED: {}; the run is stopped", e.reason()),
                    },
                    (None, Ok(p)) => {
                        let call = ToolCall {
                            tool: &tool,
                            input: &text,
                        };
                        // the job role's rules come first, and only deny
                        sf_core::jobs::tool_rules(spec.job)
                            .map(|r| r.decide(&call, &spec.capabilities))
                            .filter(|v| v.decision != ToolDecision::Allow)
                            .unwrap_or_else(|| p.tools.decide(&call, &spec.capabilities))
                    }
                    (None, Err(e)) => ToolVerdict {
                        decision: ToolDecision::Deny,
                        rule: "policy".into(),
                        reason: format!("POLICY_MISSING: {e}"),
                    },
                };
                let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let (id, approval) = s.record_tool_call(&NewToolCall {
                    run: &run,
                    source: &source,
                    tool: &tool,
                    call_id: call_id.as_deref(),
                    summary: &summary(&text),
                    decision: verdict.decision.as_str(),
                    rule: &verdict.rule,
                    reason: &verdict.reason,
                    latency_us,
                })?;
                Ok::<_, StoreError>((run, id, verdict, approval, budget))
            })
            .await;
        match decided {
            Ok((Ok((run, id, verdict, approval, budget)), changed)) => {
                match (verdict.decision, approval) {
                    (ToolDecision::Hold, Some(approval)) => {
                        let wait = self
                            .config
                            .policy
                            .as_ref()
                            .map_or(Duration::ZERO, |p| p.tools.hold_timeout);
                        self.held.insert(
                            approval,
                            HeldCall {
                                record: id,
                                reply,
                                deadline: Instant::now() + wait,
                            },
                        );
                    }
                    (decision, _) => reply.send(Response::ToolAnswer(ToolAnswer {
                        allow: decision == ToolDecision::Allow,
                        decision: decision.as_str().to_owned(),
                        reason: verdict.reason,
                        record: id,
                    })),
                }
                // the call is denied first, then the run stopped: cancel first, report after
                match budget {
                    Some(e) => self.budget_ran_out(run.run_id, e).await,
                    // the call counts: its budgets' shares, after the answer
                    None => self.check_budget(run.run_id).await,
                }
                changed
            }
            Ok((Err(e), _)) => {
                reply.send(Response::Error(e.into()));
                false
            }
            Err(e) => {
                reply.send(internal(e));
                false
            }
        }
    }

    /// What a run's output said live. A tool call whose result came back without the guard
    /// ever being asked about it (the CLI's hook off or bypassed) stops the run, its work
    /// saved, recorded as `guard_bypassed`.
    pub(super) async fn live(&mut self, run_id: i64, live: sf_worker::adapters::Live) {
        use sf_worker::adapters::Live;
        let id = match live {
            Live::ToolResult { id } => id,
            Live::ToolUse { .. } => return,
            Live::Usage { message, tokens } => {
                if self
                    .live_messages
                    .entry(run_id)
                    .or_default()
                    .insert(message)
                {
                    let used = self.live_use.entry(run_id).or_default();
                    used.tokens += tokens;
                    used.steps += 1;
                    self.check_budget(run_id).await;
                }
                return;
            }
            Live::Cost { usd } => {
                self.live_use.entry(run_id).or_default().cost_usd = usd;
                self.check_budget(run_id).await;
                return;
            }
        };
        if self.stopped_for.contains_key(&run_id) || !self.workers.contains_key(&run_id) {
            return;
        }
        let call = id.clone();
        let asked = self
            .store_call(move |s| s.call_recorded(run_id, &call))
            .await;
        match asked {
            Ok((Ok(true), _)) => {}
            Ok((Ok(false), _)) => {
                let Some(w) = self.workers.get(&run_id) else {
                    return;
                };
                tracing::warn!(run_id, agent = %w.agent, call = %id, "a tool call ran without the guard: stopping the run");
                w.stop.cancel();
                let (agent, task) = (w.agent.clone(), w.task.clone());
                self.stopped_for
                    .insert(run_id, sf_store::Failure::GuardBypassed);
                if let Err(e) = self
                    .store_call(move |s| s.record_guard_bypassed(run_id, &agent, &task, &id))
                    .await
                {
                    tracing::error!(error = %e, "failed to record a bypassed guard");
                }
            }
            Ok((Err(e), _)) => tracing::error!(error = %e, "failed to look up a tool call"),
            Err(e) => tracing::error!(error = %e, "failed to look up a tool call"),
        }
    }

    /// Stops run `run_id` if a budget it is charged to ran out (what its stream said so far
    /// included); a plan's budget stops every live run of the plan.
    pub(super) async fn check_budget(&mut self, run_id: i64) {
        // no budget, no store work: a run's stream may say a lot
        if !self.budgets_exist
            || self.stopped_for.contains_key(&run_id)
            || !self.workers.contains_key(&run_id)
        {
            return;
        }
        let live = self.live_use.clone();
        let (warned, lv) = (self.budget_warned.clone(), live.clone());
        match self
            .store_call(move |s| {
                let out = s.run_budget(run_id, &live, false)?;
                // half and 80 % of a limit are events, once each per budget
                let mut crossed = Vec::new();
                for (scope, subject, share) in s.run_budget_shares(run_id, &lv)? {
                    for percent in [50, 80] {
                        let key = (scope, subject.clone(), percent);
                        if share * 100.0 >= f64::from(percent) && !warned.contains(&key) {
                            s.record_budget_usage(scope, &subject, percent, run_id)?;
                            crossed.push(key);
                        }
                    }
                }
                Ok::<_, sf_store::StoreError>((out, crossed))
            })
            .await
        {
            Ok((Ok((exhausted, crossed)), _)) => {
                self.budget_warned.extend(crossed);
                if let Some(e) = exhausted {
                    self.budget_ran_out(run_id, e).await;
                }
            }
            Ok((Err(e), _)) => tracing::error!(error = %e, "failed to check a run's budget"),
            Err(e) => tracing::error!(error = %e, "failed to check a run's budget"),
        }
    }

    /// A budget ran out under run `run_id`: it is stopped (its work saved, outcome
    /// `budget_exhausted`) and it is recorded; a plan's stops the plan's other live runs too.
    pub(super) async fn budget_ran_out(&mut self, run_id: i64, e: sf_store::Exhausted) {
        let mut runs = vec![run_id];
        if e.scope == sf_proto::BudgetScope::Plan {
            let plan = e.subject.clone();
            if let Ok((Ok(more), _)) = self.store_call(move |s| s.live_runs_of_plan(&plan)).await {
                runs.extend(more.into_iter().filter(|r| *r != run_id));
            }
        }
        let agent = self
            .workers
            .get(&run_id)
            .map(|w| w.agent.clone())
            .unwrap_or_default();
        tracing::warn!(run_id, reason = %e.reason(), "budget exhausted: stopping");
        for r in runs {
            if let Some(w) = self.workers.get(&r)
                && !self.stopped_for.contains_key(&r)
            {
                w.stop.cancel();
                self.stopped_for
                    .insert(r, sf_store::Failure::BudgetExhausted);
            }
        }
        if let Err(err) = self
            .store_call(move |s| s.record_budget_exhausted(Some(run_id), &agent, &e))
            .await
        {
            tracing::error!(error = %err, "failed to record an exhausted budget");
        }
    }

    /// Answers the held call of `approval`, if one waits: run on approval, blocked on
    /// rejection or cancellation.
    pub(super) async fn settle_held(&mut self, approval: i64, status: sf_proto::ApprovalStatus) {
        use sf_proto::ApprovalStatus as S;
        let (decision, allow, reason) = match status {
            S::Approved => ("held_approved", true, "approved by a human".to_owned()),
            S::Rejected => ("held_denied", false, "a human refused this call".to_owned()),
            S::Cancelled => ("held_denied", false, "the hold was withdrawn".to_owned()),
            S::Pending | S::RevisionRequested => return,
        };
        let Some(held) = self.held.remove(&approval) else {
            return;
        };
        self.answer_held(held, decision, allow, reason).await;
    }

    /// Denies the held calls whose time ran out, and cancels their approvals.
    pub(super) async fn expire_held(&mut self) {
        let now = Instant::now();
        let due: Vec<i64> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(a, _)| *a)
            .collect();
        for approval in due {
            let Some(held) = self.held.remove(&approval) else {
                continue;
            };
            let r = self
                .store_call(move |s| {
                    s.move_approval(
                        "daemon",
                        approval,
                        sf_core::approval::Move::Cancel,
                        Some("no human approved it within hold_timeout"),
                        &sf_proto::AgentPatch::default(),
                    )
                })
                .await;
            if let Ok((Err(e), _)) = r {
                tracing::warn!(approval, error = %e, "could not cancel a timed-out hold");
            }
            self.answer_held(
                held,
                "held_timed_out",
                false,
                "no human approved this call within hold_timeout".to_owned(),
            )
            .await;
        }
    }

    async fn answer_held(
        &mut self,
        held: HeldCall,
        decision: &'static str,
        allow: bool,
        reason: String,
    ) {
        let (record, r2) = (held.record, reason.clone());
        if let Err(e) = self
            .store_call(move |s| s.settle_held_call(record, decision, &r2))
            .await
        {
            tracing::error!(error = %e, "failed to record a held call's end");
        }
        held.reply.send(Response::ToolAnswer(ToolAnswer {
            allow,
            decision: decision.to_owned(),
            reason,
            record,
        }));
    }
}
