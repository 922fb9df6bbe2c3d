#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agents;
mod approvals;
mod budgets;
mod deps;
mod egress;
mod error;
mod events;
mod gc;
mod ledger;
mod logs;
mod messages;
mod mr_actions;
mod mrs;
mod pauses;
mod plans;
mod pushes;
mod readiness;
mod runs;
mod sessions;
mod spec;
mod staffing;
mod stewards;
mod tasks;
mod util;
mod workflows;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use sf_core::ready::LiveIndex;
use sf_proto::AuditEvent;

pub use budgets::{Exhausted, LiveUse};
pub use error::StoreError;
pub use gc::Holder;
pub use ledger::{GuardRun, NewToolCall};
pub use messages::{quoted_message, triage_task};
pub use mrs::{MergeFailure, MergeJob};
pub use pauses::AdapterPause;
pub use pushes::PushRecord;
pub use runs::{
    AfterFailure, Claim, Failure, Lease, LiveRun, MAX_HANDOFFS, backoff_ms, handoff_backoff_ms,
};
pub use sessions::TurnDue;
pub use staffing::Staffing;
pub use stewards::Fired;
pub use tasks::ShellStep;
pub use util::now_ms;

/// Ordered migrations; `PRAGMA user_version` records how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_messages.sql"),
    include_str!("migrations/0003_fix_and_mr_indexes.sql"),
    include_str!("migrations/0004_fix_base.sql"),
    include_str!("migrations/0005_worktree_index.sql"),
    include_str!("migrations/0006_agent_trouble.sql"),
    include_str!("migrations/0007_egress.sql"),
    include_str!("migrations/0008_guard.sql"),
    include_str!("migrations/0009_ledger.sql"),
    include_str!("migrations/0010_budgets.sql"),
    include_str!("migrations/0011_staffing.sql"),
    include_str!("migrations/0012_sessions.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The store: the SQLite connection and the in-memory index of live tasks.
pub struct Store {
    conn: Connection,
    index: LiveIndex,
    new_events: Vec<AuditEvent>,
    /// The time zone cron expressions are read in (`timezone` in config.toml).
    time_zone: sf_core::cron::Tz,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("live_tasks", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        let mut store = Self {
            conn,
            index: LiveIndex::new(),
            new_events: Vec::new(),
            time_zone: sf_core::cron::Tz::UTC,
        };
        store.load_index()?;
        store.sign_upgraded_agents()?;
        Ok(store)
    }

    /// Sets the time zone cron expressions are read in.
    pub fn set_time_zone(&mut self, tz: sf_core::cron::Tz) {
        self.time_zone = tz;
    }

    /// The time zone cron expressions are read in.
    pub fn time_zone(&self) -> sf_core::cron::Tz {
        self.time_zone
    }

    /// Events committed since the last call, oldest first (the daemon fans them out).
    pub fn take_new_events(&mut self) -> Vec<AuditEvent> {
        std::mem::take(&mut self.new_events)
    }

    /// The number of live tasks (not closed, not deleted).
    pub fn live_tasks(&self) -> usize {
        self.index.len()
    }

    /// Rebuilds the in-memory index from the file (after an internal error).
    pub fn reload_index(&mut self) -> Result<(), StoreError> {
        self.index = LiveIndex::new();
        self.load_index()
    }

    /// Writes the WAL back into the main file (on shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            found: version,
            supported: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).expect("few migrations"),
        )?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied migration");
    }
    Ok(())
}

pub(crate) fn validate_text_len(field: &'static str, text: &str) -> Result<(), StoreError> {
    sf_core::naming::validate_text(field, text).map_err(Into::into)
}

#[cfg(test)]
mod tests;
