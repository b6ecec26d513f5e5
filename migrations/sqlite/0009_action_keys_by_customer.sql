-- The action log's idempotency keys are unique per customer. A key is a hash of the
-- customer, kind, step, repeat number and invoices, so no two customers share one and
-- the guarantee is the same as before; but the index is now ordered by customer, as a
-- tick writes, so each tick inserts into it in order instead of all over it. It also
-- serves the reads by customer that actions_by_customer served. The keys themselves are
-- unchanged: they are the Message-ID, webhook-id and provider idempotency keys of the
-- messages already sent.
--
-- Facts snapshots are likewise keyed by customer and SHA-256 (a snapshot shared by two
-- customers, were their facts ever identical, is stored for each).
--
-- SQLite cannot drop a UNIQUE constraint: both tables are rebuilt, ids unchanged, the
-- way SQLite documents it: relance runs its migrations with foreign keys off, and the
-- last statements fail the migration (which then changes nothing) if any reference
-- from another table no longer holds.

CREATE TABLE facts_snapshots_new (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    snapshot    TEXT NOT NULL
);
INSERT INTO facts_snapshots_new (customer_id, sha256, snapshot)
SELECT k.customer_id, f.sha256, f.snapshot
FROM (SELECT DISTINCT customer_id, facts_sha256 FROM actions WHERE facts_sha256 IS NOT NULL) k
JOIN facts_snapshots f ON f.sha256 = k.facts_sha256
ORDER BY k.customer_id, f.sha256;
DROP TABLE facts_snapshots;
ALTER TABLE facts_snapshots_new RENAME TO facts_snapshots;
CREATE UNIQUE INDEX facts_snapshots_by_customer ON facts_snapshots (customer_id, sha256);

CREATE TABLE actions_new (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
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
    updated_at      TEXT NOT NULL,
    facts_sha256    TEXT,
    invoice_numbers TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO actions_new (
    id, idempotency_key, customer_id, segment, kind, step, template, options, currency,
    amount_minor, rule_file, rule_hash, facts, decided_on, status, attempts,
    next_attempt_at, lease_owner, lease_until, provider_ref, last_error, created_at,
    updated_at, facts_sha256, invoice_numbers
)
SELECT
    id, idempotency_key, customer_id, segment, kind, step, template, options, currency,
    amount_minor, rule_file, rule_hash, facts, decided_on, status, attempts,
    next_attempt_at, lease_owner, lease_until, provider_ref, last_error, created_at,
    updated_at, facts_sha256, invoice_numbers
FROM actions ORDER BY id;
DROP TABLE actions;
ALTER TABLE actions_new RENAME TO actions;
CREATE UNIQUE INDEX actions_by_customer_key ON actions (customer_id, idempotency_key);
CREATE INDEX actions_by_status ON actions (status, next_attempt_at);

CREATE TEMP TABLE migration_0009_check (broken_references INTEGER NOT NULL CHECK (broken_references = 0));
INSERT INTO migration_0009_check SELECT COUNT(*) FROM pragma_foreign_key_check;
DROP TABLE migration_0009_check;
