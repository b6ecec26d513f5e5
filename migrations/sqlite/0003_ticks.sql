-- One row per tick of a segment: when it ran, for which schedule slot, what it did.
-- The scheduler catches up from the last finished slot after a restart.
CREATE TABLE ticks (
    id            INTEGER PRIMARY KEY,
    segment       TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'manual')),
    as_of         TEXT NOT NULL,
    instance      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    customers     INTEGER NOT NULL DEFAULT 0,
    planned       INTEGER NOT NULL DEFAULT 0,
    blocked       INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    detail        TEXT,
    started_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX ticks_by_segment ON ticks (segment, scheduled_for);
