-- Live sessions and message routing (issue 17): a message's type; sessions of directors
-- and persistent workers (a chain of turns, each a run of the session's task that resumes
-- the CLI's own session); messages waiting for an idle ephemeral worker's triage run.

ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'generic';

CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    agent            TEXT NOT NULL,
    task             INTEGER NOT NULL REFERENCES tasks(key),
    branch           TEXT NOT NULL,
    provider_session TEXT,
    resumed_from     TEXT,
    status           TEXT NOT NULL,
    note             TEXT,
    turns            INTEGER NOT NULL DEFAULT 0,
    started_at       INTEGER NOT NULL,
    last_turn_at     INTEGER,
    ended_at         INTEGER
);
CREATE INDEX sessions_by_agent ON sessions (agent, id);
CREATE UNIQUE INDEX sessions_active ON sessions (agent) WHERE status = 'active';

-- The turn a message was given to (given back if that turn never started).
ALTER TABLE messages ADD COLUMN triaged_by INTEGER REFERENCES runs(id);
-- The triage task a message was given to, set in the transaction that creates the task:
-- each message is in one triage task, whatever a kill interrupts.
ALTER TABLE messages ADD COLUMN triage_task INTEGER REFERENCES tasks(key);

-- The agents in a dry run, read at each dispatch pass: only the running ones.
CREATE INDEX dry_runs_running ON dry_runs (agent) WHERE status = 'running';
