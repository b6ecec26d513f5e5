-- The e-invoicing lifecycle statuses an invoice went through (relance's platform feed:
-- POST /v1/invoices/{number}/status, relance import statuses), and the last one on the
-- invoice itself.
ALTER TABLE invoices ADD COLUMN einvoice_status TEXT;
CREATE TABLE einvoice_statuses (
    id           BIGSERIAL PRIMARY KEY,
    invoice      TEXT NOT NULL,
    code         INTEGER NOT NULL,
    status       TEXT NOT NULL,
    status_date  DATE NOT NULL,
    reason       TEXT,
    amount_minor BIGINT,
    source       TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX einvoice_statuses_by_invoice ON einvoice_statuses (invoice, id);
