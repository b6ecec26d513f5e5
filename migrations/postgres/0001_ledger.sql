-- The receivables ledger: customers, invoices, payments and their allocations,
-- promises to pay, and the record of imports.
-- Money is integer minor units next to an ISO 4217 currency code.

CREATE TABLE customers (
    id                BIGSERIAL PRIMARY KEY,
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
    credit_limit_minor BIGINT,
    insured           BOOLEAN NOT NULL DEFAULT FALSE,
    insurer_policy    TEXT,
    insurer_buyer_ref TEXT,
    cover_minor       BIGINT,
    collector         TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    pause_reason      TEXT,
    paused_until      DATE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX customers_by_segment ON customers (segment, id);

CREATE TABLE invoices (
    id              BIGSERIAL PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    customer_id     BIGINT NOT NULL REFERENCES customers (id),
    issue_date      DATE NOT NULL,
    due_date        DATE NOT NULL,
    currency        TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    -- What relance's own payment allocations have settled.
    allocated_minor BIGINT NOT NULL DEFAULT 0,
    -- The open amount the ERP supplied, when it does its own matching (else NULL).
    erp_open_minor  BIGINT,
    -- The status the ERP supplied (else NULL: derived from the open amount).
    erp_status      TEXT,
    open_minor      BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'paid', 'cancelled', 'written_off')),
    dispute_reason  TEXT,
    disputed_at     TIMESTAMPTZ,
    pause_reason    TEXT,
    paused_until    DATE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX invoices_by_customer ON invoices (customer_id, due_date);

CREATE TABLE payments (
    id              BIGSERIAL PRIMARY KEY,
    external_id     TEXT NOT NULL UNIQUE,
    customer_id     BIGINT NOT NULL REFERENCES customers (id),
    kind            TEXT NOT NULL CHECK (kind IN ('payment', 'credit_note')),
    date            DATE NOT NULL,
    currency        TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    unapplied_minor BIGINT NOT NULL,
    reference       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer_id, date);

CREATE TABLE allocations (
    id           BIGSERIAL PRIMARY KEY,
    payment_id   BIGINT NOT NULL REFERENCES payments (id),
    invoice_id   BIGINT NOT NULL REFERENCES invoices (id),
    amount_minor BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX allocations_by_payment ON allocations (payment_id);
CREATE INDEX allocations_by_invoice ON allocations (invoice_id);

CREATE TABLE promises (
    id                    BIGSERIAL PRIMARY KEY,
    customer_id           BIGINT NOT NULL REFERENCES customers (id),
    promised_date         DATE NOT NULL,
    currency              TEXT NOT NULL,
    amount_minor          BIGINT NOT NULL,
    -- Open total of the covered invoices when the promise was made: what was paid
    -- since is measured against it.
    open_at_promise_minor BIGINT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'kept', 'broken', 'cancelled')),
    note                  TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    resolved_at           TIMESTAMPTZ
);
CREATE INDEX promises_by_customer ON promises (customer_id, status);

CREATE TABLE promise_invoices (
    promise_id BIGINT NOT NULL REFERENCES promises (id),
    invoice_id BIGINT NOT NULL REFERENCES invoices (id),
    PRIMARY KEY (promise_id, invoice_id)
);

CREATE TABLE imports (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    rows_read     BIGINT NOT NULL,
    rows_written  BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL
);
