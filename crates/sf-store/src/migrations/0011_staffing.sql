-- Staffing (issue 16): seats with charters and human stewards, signed permission
-- manifests, dry runs with their evidence, pinned skills, and the agent's lifecycle
-- (`draft` → signed → dry run passed → `live` → `decommissioned`).

UPDATE agents SET status = 'live' WHERE status = 'active';

-- The manifest hash a human signed (`sfctl charter sign-manifest`), and who.
ALTER TABLE agents ADD COLUMN signed_manifest TEXT;
ALTER TABLE agents ADD COLUMN signed_by TEXT;

CREATE TABLE seats (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    stewards   TEXT NOT NULL,
    charter    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Tasks for a seat: a human seat's never go to an agent; an agent seat's go to its agent.
ALTER TABLE tasks ADD COLUMN seat TEXT;

CREATE TABLE dry_runs (
    id         INTEGER PRIMARY KEY,
    agent      TEXT NOT NULL,
    run        INTEGER NOT NULL REFERENCES runs(id),
    manifest   TEXT NOT NULL,
    task       TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    evidence   TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX dry_runs_by_agent ON dry_runs (agent, id);
CREATE UNIQUE INDEX dry_runs_by_run ON dry_runs (run);

-- A skill's hash a human pinned (`sfctl skill pin`).
CREATE TABLE skill_pins (
    name      TEXT PRIMARY KEY,
    hash      TEXT NOT NULL,
    pinned_by TEXT NOT NULL,
    pinned_at INTEGER NOT NULL
);

-- The skills (and their hashes) a run's prompt was given.
ALTER TABLE runs ADD COLUMN skills TEXT;
