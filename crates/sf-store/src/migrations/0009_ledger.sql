-- The tool-call ledger (issue 15): one row per tool call an agent's CLI asked the guard
-- about, with the decision, the rule and the guard's latency.
CREATE TABLE tool_calls (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL,
    agent       TEXT NOT NULL,
    task        TEXT,
    source      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    call_id     TEXT,
    summary     TEXT NOT NULL,
    decision    TEXT NOT NULL,
    rule        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    latency_us  INTEGER NOT NULL,
    outcome     TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX tool_calls_by_agent ON tool_calls (agent, id);
CREATE INDEX tool_calls_by_run ON tool_calls (run_id, id);
CREATE INDEX tool_calls_by_call ON tool_calls (call_id) WHERE call_id IS NOT NULL;
