CREATE TABLE plans (
    key          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    playbook     TEXT,
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE tasks (
    key           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    title         TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    acceptance    TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL,
    priority      INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 5),
    task_type     TEXT NOT NULL,
    assignee      TEXT,
    plan          INTEGER REFERENCES plans(key),
    skills        TEXT NOT NULL DEFAULT '[]',
    scheduled_for INTEGER,
    defer_until   INTEGER,
    close_reason  TEXT,
    retry_at      INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    branch        TEXT,
    worktree      TEXT,
    fix_of        INTEGER REFERENCES tasks(key),
    fix_kind      TEXT,
    shell         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX tasks_by_status ON tasks(status, priority, created_at);
CREATE INDEX tasks_by_plan ON tasks(plan);
CREATE INDEX tasks_by_assignee ON tasks(assignee) WHERE assignee IS NOT NULL;
CREATE INDEX tasks_open_shell ON tasks(key) WHERE shell IS NOT NULL AND status = 'open';
CREATE INDEX tasks_deferred ON tasks(defer_until) WHERE status = 'deferred' AND defer_until IS NOT NULL;

CREATE TABLE deps (
    id            INTEGER PRIMARY KEY,
    blocked       INTEGER NOT NULL REFERENCES tasks(key),
    blocker       INTEGER REFERENCES tasks(key),
    kind          TEXT NOT NULL,
    gate          TEXT,
    gate_until    INTEGER,
    satisfied_at  INTEGER,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX deps_unique ON deps(blocked, blocker, kind) WHERE blocker IS NOT NULL;
CREATE INDEX deps_by_blocked ON deps(blocked);
CREATE INDEX deps_by_blocker ON deps(blocker);
CREATE INDEX deps_due_timers ON deps(gate_until) WHERE gate_until IS NOT NULL AND satisfied_at IS NULL;

CREATE TABLE notes (
    id      INTEGER PRIMARY KEY,
    task    INTEGER NOT NULL REFERENCES tasks(key),
    at      INTEGER NOT NULL,
    author  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    text    TEXT NOT NULL
);
CREATE INDEX notes_by_task ON notes(task, id);

CREATE TABLE agents (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    task        INTEGER REFERENCES tasks(key),
    agent       TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    exit_code   INTEGER,
    outcome     TEXT,
    pid         INTEGER,
    pgid        INTEGER,
    proc_start  INTEGER,
    log_path    TEXT,
    usage       TEXT,
    token       TEXT NOT NULL UNIQUE,
    released_at INTEGER,
    trigger     TEXT,
    data        TEXT,
    result      TEXT
);
CREATE INDEX runs_by_agent ON runs(agent, id);
CREATE INDEX runs_by_task ON runs(task, id);
CREATE INDEX runs_live ON runs(id) WHERE ended_at IS NULL;

CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    task     INTEGER REFERENCES tasks(key),
    before   TEXT,
    after    TEXT,
    reason   TEXT
);
CREATE INDEX events_by_task ON events(task, id) WHERE task IS NOT NULL;

CREATE TABLE merge_requests (
    id          INTEGER PRIMARY KEY,
    task        INTEGER REFERENCES tasks(key),
    branch      TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    summary     TEXT,
    message     TEXT,
    agent       TEXT,
    approved_by TEXT,
    last_result TEXT,
    log_path    TEXT,
    commit_id   TEXT,
    fix_task    INTEGER REFERENCES tasks(key),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX merge_requests_open ON merge_requests(state, id) WHERE state NOT IN ('merged', 'cancelled');

CREATE TABLE trigger_state (
    agent       TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    last_fired  INTEGER NOT NULL,
    PRIMARY KEY (agent, trigger)
);
