-- The guard (issue 14): an agent's life status beside `enabled`, approvals as one
-- mechanism, and a fast path to the denials.

-- `active`: may work; `pending_approval`: hired by an agent, waiting for a human;
-- `terminated`: its hire was rejected (kept for the record, never runs).
ALTER TABLE agents ADD COLUMN status TEXT NOT NULL DEFAULT 'active';

-- A decision waiting for (or made by) a human: a hire, a merge request, an approval gate.
CREATE TABLE approvals (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    status        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    payload       TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    INTEGER,
    decision_note TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX approvals_by_status ON approvals (status, id);
-- at most one open approval per subject
CREATE UNIQUE INDEX approvals_open_subject ON approvals (subject)
    WHERE status IN ('pending', 'revision_requested');

-- Comments and the audit trail of each approval (decisions, revisions, resubmissions).
CREATE TABLE approval_comments (
    id          INTEGER PRIMARY KEY,
    approval_id INTEGER NOT NULL REFERENCES approvals(id),
    author      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX approval_comments_by_approval ON approval_comments (approval_id, id);

CREATE INDEX events_denied ON events (id)
    WHERE action IN ('request_denied', 'spawn_denied', 'egress_denied');
