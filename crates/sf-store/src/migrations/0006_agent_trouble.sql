-- Why the daemon took an agent out of dispatch (its CLI cannot authenticate, its command
-- cannot run), shown by `agent show`, `agent list` and `daemon status`; cleared when a
-- human enables it again.
ALTER TABLE agents ADD COLUMN disabled_reason TEXT;
-- Dispatch to an adapter paused after its CLI hit a usage limit, until the reset: kept
-- here so that a restart does not send tasks straight back to the limited CLI.
CREATE TABLE adapter_pauses (
    adapter    TEXT PRIMARY KEY,
    until_ms   INTEGER NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
