-- One row per tick of a segment: when it ran, for which schedule slot, what it did.
-- The scheduler catches up from the last finished slot after a restart.
CREATE TABLE ticks (
    id            BIGSERIAL PRIMARY KEY,
    segment       TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'manual')),
    as_of         DATE NOT NULL,
    instance      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    customers     BIGINT NOT NULL DEFAULT 0,
    planned       BIGINT NOT NULL DEFAULT 0,
    blocked       BIGINT NOT NULL DEFAULT 0,
    errors        BIGINT NOT NULL DEFAULT 0,
    detail        TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX ticks_by_segment ON ticks (segment, scheduled_for);
