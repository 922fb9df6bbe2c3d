-- One row per connection a sandboxed run asked sfd's egress proxy for: allowed (and
-- relayed) or denied, with the rule that decided and the bytes each way
-- (`sfctl agent egress`).
CREATE TABLE egress (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL,
    agent      TEXT NOT NULL,
    host       TEXT NOT NULL,
    port       INTEGER NOT NULL,
    allowed    INTEGER NOT NULL,
    rule       TEXT NOT NULL,
    bytes_out  INTEGER NOT NULL,
    bytes_in   INTEGER NOT NULL,
    error      TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL
);
CREATE INDEX egress_by_agent ON egress (agent, id);
CREATE INDEX egress_by_run ON egress (run_id, id);
