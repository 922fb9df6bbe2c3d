-- Budgets (issue 15): limits per task, plan and agent (per day), charged up the chain: a
-- task's runs, the tasks created by its runs (their `parent_task`), its plan, its agent.
CREATE TABLE budgets (
    scope      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    tokens     INTEGER,
    cost_usd   REAL,
    tool_calls INTEGER,
    steps      INTEGER,
    wall_secs  INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
);

-- The task whose run created this one: its usage counts against that task's budget too.
ALTER TABLE tasks ADD COLUMN parent_task INTEGER REFERENCES tasks(key);
CREATE INDEX tasks_by_parent ON tasks(parent_task) WHERE parent_task IS NOT NULL;
CREATE INDEX tool_calls_by_task ON tool_calls (task) WHERE task IS NOT NULL;
