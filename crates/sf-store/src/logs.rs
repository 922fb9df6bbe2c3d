//! Where run logs are: the log files of a task's, an agent's or a merge request's runs
//! (`sfctl logs`).

use crate::{Store, StoreError};
use rusqlite::OptionalExtension;
use sf_proto::{ErrorKind, LogRef, TaskId};

impl Store {
    /// Log files of a task's or an agent's runs, newest first.
    pub fn logs(&self, target: &str) -> Result<Vec<LogRef>, StoreError> {
        if let Some(id) = target.strip_prefix("mr:") {
            return self.merge_logs(id);
        }
        if let Some(agent) = self
            .list_agents()?
            .into_iter()
            .find(|a| a.spec.name == target && a.spec.focus == Some(sf_proto::Focus::Merge))
        {
            return self.merge_steward_logs(&agent.spec.name);
        }
        let by_agent: bool = self
            .conn
            .prepare_cached("SELECT 1 FROM runs WHERE agent = ?1 LIMIT 1")?
            .query_row([target], |_| Ok(()))
            .optional()?
            .is_some()
            || self.list_agents()?.iter().any(|a| a.spec.name == target);
        let (cond, arg): (&str, rusqlite::types::Value) = if by_agent {
            ("r.agent = ?1", target.to_owned().into())
        } else {
            let (k, _) = self.resolve_task(target).map_err(|e| match e {
                StoreError::Refused {
                    kind: ErrorKind::NotFound,
                    ..
                } => StoreError::not_found(format!("no task or agent matches `{target}`"))
                    .hint("give a task id (or prefix) or an agent name"),
                other => other,
            })?;
            ("r.task = ?1", k.into())
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT r.id, t.id, r.agent, r.log_path, r.ended_at IS NULL, json_extract(a.spec, '$.adapter')
             FROM runs r LEFT JOIN tasks t ON t.key = r.task LEFT JOIN agents a ON a.name = r.agent
             WHERE {cond} AND r.log_path IS NOT NULL ORDER BY r.id DESC LIMIT 50"
        ))?;
        let rows = stmt.query_map([arg], |r| {
            Ok(LogRef {
                run: sf_proto::RunId(r.get(0)?),
                task: r
                    .get::<_, Option<String>>(1)?
                    .and_then(|s| TaskId::new(s).ok()),
                agent: r.get(2)?,
                path: r.get(3)?,
                live: r.get(4)?,
                merge_request: None,
                adapter: r.get::<_, Option<String>>(5)?.and_then(|a| a.parse().ok()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `mr:<id>`: the test log of each attempt of a merge request (`run` is the attempt).
    fn merge_logs(&self, id: &str) -> Result<Vec<LogRef>, StoreError> {
        let n: i64 = id.trim_start_matches('#').parse().map_err(|_| {
            StoreError::invalid(format!("`mr:{id}` names no merge request"))
                .hint("give mr:ID, with the id `sfctl mr list` shows")
        })?;
        let mr = self.show_mr(sf_proto::MergeRequestId(n))?;
        let last = mr.test_logs.len();
        Ok(mr
            .test_logs
            .iter()
            .enumerate()
            .map(|(i, path)| LogRef {
                run: sf_proto::RunId(i as i64 + 1),
                task: mr.task.clone(),
                agent: "merge queue".to_owned(),
                path: path.clone(),
                live: mr.state == sf_proto::MergeState::Testing && i + 1 == last,
                merge_request: Some(sf_proto::MergeRequestId(n)),
                adapter: None,
            })
            .collect())
    }

    /// A merge steward's work: the last test log of each of the 50 newest merge requests
    /// that were tested (`run` is the request's id).
    fn merge_steward_logs(&self, steward: &str) -> Result<Vec<LogRef>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, t.id, m.log_path, m.state = 'testing' FROM merge_requests m LEFT JOIN tasks t ON t.key = m.task
             WHERE m.log_path IS NOT NULL ORDER BY m.id DESC LIMIT 50",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(LogRef {
                run: sf_proto::RunId(r.get(0)?),
                task: r
                    .get::<_, Option<String>>(1)?
                    .and_then(|s| TaskId::new(s).ok()),
                agent: steward.to_owned(),
                path: r.get(2)?,
                live: r.get(3)?,
                merge_request: r.get::<_, Option<i64>>(0)?.map(sf_proto::MergeRequestId),
                adapter: None,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
