-- The receivables ledger: customers, invoices, payments and their allocations,
-- promises to pay, and the record of imports.
-- Money is integer minor units next to an ISO 4217 currency code.

CREATE TABLE customers (
    id                INTEGER PRIMARY KEY,
    external_id       TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    legal_name        TEXT,
    siren             TEXT,
    siret             TEXT,
    vat_number        TEXT,
    country           TEXT NOT NULL,
    segment           TEXT NOT NULL,
    locale            TEXT NOT NULL,
    emails            TEXT NOT NULL DEFAULT '[]',
    phones            TEXT NOT NULL DEFAULT '[]',
    address_line1     TEXT,
    address_line2     TEXT,
    postal_code       TEXT,
    city              TEXT,
    address_country   TEXT,
    currency          TEXT NOT NULL,
    credit_limit_minor INTEGER,
    insured           INTEGER NOT NULL DEFAULT 0,
    insurer_policy    TEXT,
    insurer_buyer_ref TEXT,
    cover_minor       INTEGER,
    collector         TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    pause_reason      TEXT,
    paused_until      TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX customers_by_segment ON customers (segment, id);

CREATE TABLE invoices (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    issue_date      TEXT NOT NULL,
    due_date        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    -- What relance's own payment allocations have settled.
    allocated_minor INTEGER NOT NULL DEFAULT 0,
    -- The open amount the ERP supplied, when it does its own matching (else NULL).
    erp_open_minor  INTEGER,
    -- The status the ERP supplied (else NULL: derived from the open amount).
    erp_status      TEXT,
    open_minor      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'paid', 'cancelled', 'written_off')),
    dispute_reason  TEXT,
    disputed_at     TEXT,
    pause_reason    TEXT,
    paused_until    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX invoices_by_customer ON invoices (customer_id, due_date);

CREATE TABLE payments (
    id              INTEGER PRIMARY KEY,
    external_id     TEXT NOT NULL UNIQUE,
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    kind            TEXT NOT NULL CHECK (kind IN ('payment', 'credit_note')),
    date            TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    unapplied_minor INTEGER NOT NULL,
    reference       TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer_id, date);

CREATE TABLE allocations (
    id           INTEGER PRIMARY KEY,
    payment_id   INTEGER NOT NULL REFERENCES payments (id),
    invoice_id   INTEGER NOT NULL REFERENCES invoices (id),
    amount_minor INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX allocations_by_payment ON allocations (payment_id);
CREATE INDEX allocations_by_invoice ON allocations (invoice_id);

CREATE TABLE promises (
    id                    INTEGER PRIMARY KEY,
    customer_id           INTEGER NOT NULL REFERENCES customers (id),
    promised_date         TEXT NOT NULL,
    currency              TEXT NOT NULL,
    amount_minor          INTEGER NOT NULL,
    -- Open total of the covered invoices when the promise was made: what was paid
    -- since is measured against it.
    open_at_promise_minor INTEGER NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'kept', 'broken', 'cancelled')),
    note                  TEXT,
    created_at            TEXT NOT NULL,
    resolved_at           TEXT
);
CREATE INDEX promises_by_customer ON promises (customer_id, status);

CREATE TABLE promise_invoices (
    promise_id INTEGER NOT NULL REFERENCES promises (id),
    invoice_id INTEGER NOT NULL REFERENCES invoices (id),
    PRIMARY KEY (promise_id, invoice_id)
);

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    rows_read     INTEGER NOT NULL,
    rows_written  INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    finished_at   TEXT NOT NULL
);
