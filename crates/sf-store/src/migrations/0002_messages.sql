-- Messages between agents and humans (`sfctl message`, `sfctl inbox`).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    addressed   TEXT,
    task        INTEGER REFERENCES tasks(key),
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    reply_to    INTEGER REFERENCES messages(id),
    read_at     INTEGER,
    became_task INTEGER REFERENCES tasks(key)
);
CREATE INDEX messages_by_recipient ON messages(recipient, id);
CREATE INDEX messages_unread ON messages(recipient, id) WHERE read_at IS NULL;
CREATE INDEX messages_by_task ON messages(task, id) WHERE task IS NOT NULL;
