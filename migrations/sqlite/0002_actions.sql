-- Reading open invoices customer by customer is the hot path of every tick: a
-- partial covering index makes it an index-only scan in customer order.
CREATE INDEX invoices_open_by_customer ON invoices (
    customer_id, due_date, number, id, issue_date, currency, amount_minor, open_minor,
    allocated_minor, dispute_reason, disputed_at, pause_reason, paused_until
) WHERE status = 'open';

-- Decisions taken by the rules and their delivery: one row per action, never deleted.
-- `idempotency_key` is deterministic (customer, kind, step, invoice set, repeat number):
-- the UNIQUE constraint makes a second identical decision a no-op.
CREATE TABLE actions (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    segment         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('email', 'sms', 'call_task', 'formal_notice', 'insurer_handover')),
    step            TEXT NOT NULL,
    template        TEXT,
    options         TEXT NOT NULL DEFAULT '{}',
    currency        TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    rule_file       TEXT NOT NULL,
    rule_hash       TEXT NOT NULL,
    facts           TEXT NOT NULL,
    decided_on      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    lease_owner     TEXT,
    lease_until     TEXT,
    provider_ref    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX actions_by_customer ON actions (customer_id, created_at);
CREATE INDEX actions_by_status ON actions (status, next_attempt_at);

-- The invoices an action covers, with its step: the history rules and idempotency read.
CREATE TABLE action_invoices (
    action_id  INTEGER NOT NULL REFERENCES actions (id),
    invoice_id INTEGER NOT NULL REFERENCES invoices (id),
    PRIMARY KEY (action_id, invoice_id)
);
CREATE INDEX action_invoices_by_invoice ON action_invoices (invoice_id);

-- Every status change and delivery attempt, appended, never updated.
CREATE TABLE action_events (
    id           INTEGER PRIMARY KEY,
    action_id    INTEGER NOT NULL REFERENCES actions (id),
    at           TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    detail       TEXT,
    provider_ref TEXT
);
CREATE INDEX action_events_by_action ON action_events (action_id, id);
