//! Budgets: limits per task, plan and agent (per UTC day), and what has been spent against
//! them. Use is charged up the chain: a task's budget counts its runs and the runs of the
//! tasks they created (`parent_task`, recursively); a plan's, every run of its tasks; an
//! agent's, its runs started today. Finished runs count what their CLI reported; runs in
//! flight what the daemon has seen of their stream so far ([`LiveUse`]); tool calls come
//! from the ledger.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sf_proto::{Action, BudgetInfo, BudgetLimits, BudgetScope, BudgetUse, RunUsage};

use crate::events::Audit;
use crate::util::now_ms;
use crate::{Store, StoreError};
use sf_core::ready::Key;

/// What the daemon has seen of a live run's usage in its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveUse {
    /// Tokens in and out so far.
    pub tokens: u64,
    /// Cost so far, when the CLI says.
    pub cost_usd: f64,
    /// Model steps (turns) so far.
    pub steps: u64,
}

/// A limit reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    /// The budget's scope.
    pub scope: BudgetScope,
    /// Its subject.
    pub subject: String,
    /// What ran out, in words (`tokens: 312 of 250`).
    pub what: String,
}

impl Exhausted {
    /// The whole reason, for a denial and the event.
    pub fn reason(&self) -> String {
        format!(
            "the {} budget of {} is exhausted ({})",
            self.scope, self.subject, self.what
        )
    }
}

/// Which runs a budget covers.
enum Runs {
    Tasks(Vec<Key>),
    Plan(Key),
    AgentSince(String, i64),
}

fn day_start(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(86_400_000)
}

fn exhausted(limits: &BudgetLimits, used: &BudgetUse, extra_call: bool) -> Option<String> {
    let calls = used.tool_calls + u64::from(extra_call);
    if let Some(l) = limits.tokens
        && used.tokens >= l
    {
        return Some(format!("tokens: {} of {l}", used.tokens));
    }
    if let Some(l) = limits.cost_usd
        && used.cost_usd >= l
    {
        return Some(format!("cost: ${:.4} of ${l:.4}", used.cost_usd));
    }
    if let Some(l) = limits.tool_calls
        && calls > l
    {
        return Some(format!("tool calls: {calls} of {l}"));
    }
    if let Some(l) = limits.steps
        && used.steps >= l
    {
        return Some(format!("steps: {} of {l}", used.steps));
    }
    if let Some(l) = limits.wall_secs
        && used.wall_secs >= l
    {
        return Some(format!("wall time: {} s of {l} s", used.wall_secs));
    }
    None
}

impl Store {
    /// Sets a budget's limits (fields left `None` keep their value); refused for an unknown
    /// subject or no limit at all.
    pub fn set_budget(
        &mut self,
        actor: &str,
        scope: BudgetScope,
        subject: &str,
        limits: &BudgetLimits,
    ) -> Result<BudgetInfo, StoreError> {
        if limits.is_empty() {
            return Err(StoreError::invalid("no limit given")
                .hint("give at least one of --tokens, --cost, --tool-calls, --wall"));
        }
        if limits.cost_usd.is_some_and(|c| !c.is_finite() || c < 0.0) {
            return Err(StoreError::invalid(
                "--cost must be a non-negative amount of USD",
            ));
        }
        let subject = self.budget_subject(scope, subject)?;
        let old = self.budget_limits(scope, &subject)?.unwrap_or_default();
        let merged = BudgetLimits {
            tokens: limits.tokens.or(old.tokens),
            cost_usd: limits.cost_usd.or(old.cost_usd),
            tool_calls: limits.tool_calls.or(old.tool_calls),
            steps: limits.steps.or(old.steps),
            wall_secs: limits.wall_secs.or(old.wall_secs),
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO budgets (scope, subject, tokens, cost_usd, tool_calls, wall_secs, updated_at, steps)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (scope, subject) DO UPDATE SET tokens = ?3, cost_usd = ?4,
                 tool_calls = ?5, wall_secs = ?6, updated_at = ?7, steps = ?8",
        )?
        .execute(params![
            scope.as_str(),
            subject,
            merged.tokens.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            merged.cost_usd,
            merged.tool_calls.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            merged.wall_secs.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            now,
            merged.steps.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        ])?;
        let ev = Audit::new(actor, Action::BudgetSet, format!("{scope}:{subject}"))
            .before(serde_json::to_value(&old)?)
            .after(serde_json::to_value(&merged)?)
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        let mut list = self.list_budgets(Some(scope), Some(&subject), &HashMap::new())?;
        list.pop()
            .ok_or_else(|| StoreError::state("the budget just set is gone"))
    }

    /// Whether any budget is set.
    pub fn has_budgets(&self) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM budgets)")?
            .query_row([], |r| r.get(0))?)
    }

    /// The canonical subject: a task's or plan's full id, an existing agent's name.
    fn budget_subject(&self, scope: BudgetScope, subject: &str) -> Result<String, StoreError> {
        Ok(match scope {
            BudgetScope::Task => self.resolve_task(subject)?.1.to_string(),
            BudgetScope::Plan => self.resolve_plan(subject)?.id.to_string(),
            BudgetScope::Agent => {
                if !self.agent_exists(subject)? {
                    return Err(StoreError::not_found(format!("no agent named `{subject}`")));
                }
                subject.to_owned()
            }
        })
    }

    pub(crate) fn budget_limits(
        &self,
        scope: BudgetScope,
        subject: &str,
    ) -> Result<Option<BudgetLimits>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT tokens, cost_usd, tool_calls, wall_secs, steps FROM budgets WHERE scope = ?1 AND subject = ?2",
            )?
            .query_row(params![scope.as_str(), subject], |r| {
                Ok(BudgetLimits {
                    tokens: r.get::<_, Option<i64>>(0)?.map(|v| v.max(0) as u64),
                    cost_usd: r.get(1)?,
                    tool_calls: r.get::<_, Option<i64>>(2)?.map(|v| v.max(0) as u64),
                    wall_secs: r.get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
                    steps: r.get::<_, Option<i64>>(4)?.map(|v| v.max(0) as u64),
                })
            })
            .optional()?)
    }

    /// Budgets with their use, optionally one scope or subject.
    pub fn list_budgets(
        &self,
        scope: Option<BudgetScope>,
        subject: Option<&str>,
        live: &HashMap<i64, LiveUse>,
    ) -> Result<Vec<BudgetInfo>, StoreError> {
        let subject = match (scope, subject) {
            (Some(sc), Some(su)) => Some(self.budget_subject(sc, su)?),
            (None, Some(su)) => Some(su.to_owned()),
            _ => None,
        };
        let rows: Vec<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT scope, subject FROM budgets WHERE (?1 IS NULL OR scope = ?1)
                   AND (?2 IS NULL OR subject = ?2) ORDER BY scope, subject",
            )?
            .query_map(params![scope.map(BudgetScope::as_str), subject], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let now = now_ms();
        let mut out = Vec::new();
        for (sc, su) in rows {
            let Ok(sc) = sc.parse::<BudgetScope>() else {
                continue;
            };
            let limits = self.budget_limits(sc, &su)?.unwrap_or_default();
            let used = self.budget_use(sc, &su, live, now)?;
            let exhausted = exhausted(&limits, &used, false);
            out.push(BudgetInfo {
                scope: sc,
                subject: su,
                limits,
                used,
                exhausted,
            });
        }
        Ok(out)
    }

    fn runs_of(&self, scope: BudgetScope, subject: &str, now: i64) -> Result<Runs, StoreError> {
        Ok(match scope {
            BudgetScope::Task => {
                let (key, _) = self.resolve_task(subject)?;
                let keys: Vec<Key> = self
                    .conn
                    .prepare_cached(
                        "WITH RECURSIVE sub(k) AS (SELECT ?1 UNION SELECT t.key FROM tasks t JOIN sub ON t.parent_task = sub.k)
                         SELECT k FROM sub",
                    )?
                    .query_map([key], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Runs::Tasks(keys)
            }
            BudgetScope::Plan => Runs::Plan(self.resolve_plan(subject)?.key),
            BudgetScope::Agent => Runs::AgentSince(subject.to_owned(), day_start(now)),
        })
    }

    /// What has been spent against one budget.
    fn budget_use(
        &self,
        scope: BudgetScope,
        subject: &str,
        live: &HashMap<i64, LiveUse>,
        now: i64,
    ) -> Result<BudgetUse, StoreError> {
        type Row = (i64, Option<String>, i64, Option<i64>);
        let runs = self.runs_of(scope, subject, now)?;
        let (rows, calls): (Vec<Row>, i64) = match &runs {
            Runs::Tasks(keys) => {
                let list = keys
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let rows = self
                    .conn
                    .prepare(&format!(
                        "SELECT id, usage, started_at, ended_at FROM runs WHERE task IN ({list})"
                    ))?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<_, _>>()?;
                let calls = self
                    .conn
                    .prepare(&format!(
                        "SELECT count(*) FROM tool_calls WHERE task IN (SELECT id FROM tasks WHERE key IN ({list}))"
                    ))?
                    .query_row([], |r| r.get(0))?;
                (rows, calls)
            }
            Runs::Plan(plan) => {
                let rows = self
                    .conn
                    .prepare_cached(
                        "SELECT r.id, r.usage, r.started_at, r.ended_at FROM runs r JOIN tasks t ON t.key = r.task
                         WHERE t.plan = ?1",
                    )?
                    .query_map([plan], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<_, _>>()?;
                let calls = self
                    .conn
                    .prepare_cached(
                        "SELECT count(*) FROM tool_calls WHERE task IN (SELECT id FROM tasks WHERE plan = ?1)",
                    )?
                    .query_row([plan], |r| r.get(0))?;
                (rows, calls)
            }
            Runs::AgentSince(agent, since) => {
                let rows = self
                    .conn
                    .prepare_cached(
                        "SELECT id, usage, started_at, ended_at FROM runs WHERE agent = ?1 AND started_at >= ?2",
                    )?
                    .query_map(params![agent, since], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let calls = self
                    .conn
                    .prepare_cached(
                        "SELECT count(*) FROM tool_calls WHERE agent = ?1 AND at >= ?2",
                    )?
                    .query_row(params![agent, since], |r| r.get(0))?;
                (rows, calls)
            }
        };
        let mut used = BudgetUse {
            tool_calls: calls.max(0) as u64,
            ..BudgetUse::default()
        };
        for (id, usage, started, ended) in rows {
            let recorded = usage.and_then(|u| serde_json::from_str::<RunUsage>(&u).ok());
            match (ended, live.get(&id), recorded) {
                (None, Some(l), _) => {
                    used.tokens += l.tokens;
                    used.cost_usd += l.cost_usd;
                    used.steps += l.steps;
                }
                (_, _, Some(u)) => {
                    used.tokens += u.input_tokens + u.output_tokens;
                    used.cost_usd += u.cost_usd.unwrap_or(0.0);
                    used.steps += u.steps;
                }
                _ => {}
            }
            let end = ended.unwrap_or(now);
            used.wall_secs += u64::try_from((end - started).max(0) / 1000).unwrap_or(0);
        }
        Ok(used)
    }

    /// The budgets a run of `task` (and `agent`) is charged to, nearest first: the task and
    /// its ancestors, its plan, its agent.
    fn chain(
        &self,
        task: Option<Key>,
        agent: &str,
    ) -> Result<Vec<(BudgetScope, String)>, StoreError> {
        let mut out = Vec::new();
        if let Some(key) = task {
            let tasks: Vec<(String, Option<String>)> = self
                .conn
                .prepare_cached(
                    "WITH RECURSIVE up(k, depth) AS (SELECT ?1, 0 UNION SELECT t.parent_task, up.depth + 1
                         FROM tasks t JOIN up ON t.key = up.k WHERE t.parent_task IS NOT NULL AND up.depth < 64)
                     SELECT t.id, p.id FROM up JOIN tasks t ON t.key = up.k LEFT JOIN plans p ON p.key = t.plan
                     ORDER BY up.depth",
                )?
                .query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut plans = Vec::new();
            for (id, plan) in tasks {
                out.push((BudgetScope::Task, id));
                if let Some(p) = plan
                    && !plans.contains(&p)
                {
                    plans.push(p);
                }
            }
            out.extend(plans.into_iter().map(|p| (BudgetScope::Plan, p)));
        }
        out.push((BudgetScope::Agent, agent.to_owned()));
        Ok(out)
    }

    /// The first budget in the chain of run `run_id` that is exhausted (counting one more
    /// tool call with `extra_call`), if any.
    pub fn run_budget(
        &self,
        run_id: i64,
        live: &HashMap<i64, LiveUse>,
        extra_call: bool,
    ) -> Result<Option<Exhausted>, StoreError> {
        let row: Option<(Option<Key>, String)> = self
            .conn
            .prepare_cached("SELECT task, agent FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((task, agent)) = row else {
            return Ok(None);
        };
        self.first_exhausted(task, &agent, live, extra_call)
    }

    /// The budgets of run `run_id`'s chain with a limit, and the largest share of any of
    /// their limits spent (0.0 to 1.0 and beyond), for `budget_usage` events.
    pub fn run_budget_shares(
        &self,
        run_id: i64,
        live: &HashMap<i64, LiveUse>,
    ) -> Result<Vec<(BudgetScope, String, f64)>, StoreError> {
        let row: Option<(Option<Key>, String)> = self
            .conn
            .prepare_cached("SELECT task, agent FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((task, agent)) = row else {
            return Ok(Vec::new());
        };
        let now = now_ms();
        let mut out = Vec::new();
        for (scope, subject) in self.chain(task, &agent)? {
            let Some(limits) = self.budget_limits(scope, &subject)? else {
                continue;
            };
            let used = self.budget_use(scope, &subject, live, now)?;
            let share = |u: f64, l: Option<f64>| l.filter(|l| *l > 0.0).map_or(0.0, |l| u / l);
            let most = [
                share(used.tokens as f64, limits.tokens.map(|v| v as f64)),
                share(used.cost_usd, limits.cost_usd),
                share(used.tool_calls as f64, limits.tool_calls.map(|v| v as f64)),
                share(used.steps as f64, limits.steps.map(|v| v as f64)),
                share(used.wall_secs as f64, limits.wall_secs.map(|v| v as f64)),
            ]
            .into_iter()
            .fold(0.0, f64::max);
            out.push((scope, subject, most));
        }
        Ok(out)
    }

    /// Records that a budget passed a share of its limit (`budget_usage`).
    pub fn record_budget_usage(
        &mut self,
        scope: BudgetScope,
        subject: &str,
        percent: u32,
        run: i64,
    ) -> Result<(), StoreError> {
        let ev = Audit::new("daemon", Action::BudgetUsage, format!("{scope}:{subject}"))
            .after(json!({"scope": scope, "subject": subject, "percent": percent, "run": run}))
            .append(&self.conn, now_ms())?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Before a spawn of `agent` on `task`: the first exhausted budget of its chain.
    pub fn spawn_budget(
        &self,
        task: &str,
        agent: &str,
        live: &HashMap<i64, LiveUse>,
    ) -> Result<Option<Exhausted>, StoreError> {
        let (key, _) = self.resolve_task(task)?;
        self.first_exhausted(Some(key), agent, live, false)
    }

    /// The first exhausted budget of `agent`'s own (for work that has no task yet).
    pub fn spawn_budget_of_agent(
        &self,
        agent: &str,
        live: &HashMap<i64, LiveUse>,
    ) -> Result<Option<Exhausted>, StoreError> {
        self.first_exhausted(None, agent, live, false)
    }

    fn first_exhausted(
        &self,
        task: Option<Key>,
        agent: &str,
        live: &HashMap<i64, LiveUse>,
        extra_call: bool,
    ) -> Result<Option<Exhausted>, StoreError> {
        let now = now_ms();
        for (scope, subject) in self.chain(task, agent)? {
            let Some(limits) = self.budget_limits(scope, &subject)? else {
                continue;
            };
            let used = self.budget_use(scope, &subject, live, now)?;
            if let Some(what) = exhausted(&limits, &used, extra_call) {
                return Ok(Some(Exhausted {
                    scope,
                    subject,
                    what,
                }));
            }
        }
        Ok(None)
    }

    /// The cost left to a run of `agent` on `task` across its chain, for a CLI that can stop
    /// itself at a cost (Claude Code's `--max-budget-usd`); `None` without a cost limit.
    pub fn cost_left(
        &self,
        task: &str,
        agent: &str,
        live: &HashMap<i64, LiveUse>,
    ) -> Result<Option<f64>, StoreError> {
        let (key, _) = self.resolve_task(task)?;
        let now = now_ms();
        let mut left: Option<f64> = None;
        for (scope, subject) in self.chain(Some(key), agent)? {
            let Some(limits) = self.budget_limits(scope, &subject)? else {
                continue;
            };
            if let Some(l) = limits.cost_usd {
                let used = self.budget_use(scope, &subject, live, now)?;
                let rest = (l - used.cost_usd).max(0.0);
                left = Some(left.map_or(rest, |x: f64| x.min(rest)));
            }
        }
        Ok(left)
    }

    /// Records a budget's exhaustion (`budget_exhausted`, or `plan_budget_exhausted`).
    pub fn record_budget_exhausted(
        &mut self,
        run: Option<i64>,
        agent: &str,
        e: &Exhausted,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let action = if e.scope == BudgetScope::Plan {
            Action::PlanBudgetExhausted
        } else {
            Action::BudgetExhausted
        };
        let reason = e.reason();
        let ev = Audit::new("daemon", action, format!("{}:{}", e.scope, e.subject))
            .after(json!({"run": run, "agent": agent, "scope": e.scope, "subject": e.subject, "what": e.what}))
            .reason(Some(&reason))
            .append(&self.conn, now)?;
        self.new_events.push(ev);
        Ok(())
    }

    /// The live runs of the tasks of `plan` (their ids).
    pub fn live_runs_of_plan(&self, plan: &str) -> Result<Vec<i64>, StoreError> {
        let key = self.resolve_plan(plan)?.key;
        Ok(self
            .conn
            .prepare_cached(
                "SELECT r.id FROM runs r JOIN tasks t ON t.key = r.task WHERE t.plan = ?1 AND r.ended_at IS NULL",
            )?
            .query_map([key], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }
}
