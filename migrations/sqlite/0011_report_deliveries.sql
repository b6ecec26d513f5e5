-- Scheduled reports emailed to the credit managers (reports.monthly): one row per
-- report, period and recipient, so a report is sent at most once to each whatever
-- the number of instances or slots. Claimed with a lease like an action; a send
-- interrupted by a crash is sent again with the same Message-ID.
CREATE TABLE report_deliveries (
    id              INTEGER PRIMARY KEY,
    report          TEXT NOT NULL,
    period          TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    slot            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('planned', 'sending', 'retrying', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    idempotency_key TEXT NOT NULL,
    document_sha256 TEXT,
    last_error      TEXT,
    planned_at      TEXT NOT NULL,
    sent_at         TEXT,
    updated_at      TEXT NOT NULL,
    UNIQUE (report, period, recipient)
);
CREATE INDEX report_deliveries_due ON report_deliveries (status, next_attempt_at);
