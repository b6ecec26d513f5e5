-- The credits of the bank statements imported (relance import camt), each with how it
-- was matched: by its structured reference, by an invoice number in its text, by its
-- amount and debtor, or not at all (then it waits for a collector). A matched credit is
-- also a payment in the ledger (payments.external_id = payment_id).
CREATE TABLE bank_credits (
    id           BIGSERIAL PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    file_name    TEXT NOT NULL,
    value_date   DATE NOT NULL,
    currency     TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    debtor_name  TEXT,
    debtor_iban  TEXT,
    reference    TEXT,
    remittance   TEXT NOT NULL,
    -- reference, invoice_number, amount_and_debtor; NULL: not matched.
    matched_by   TEXT,
    customer     TEXT,
    invoice      TEXT,
    payment_id   TEXT,
    imported_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX bank_credits_unmatched ON bank_credits (value_date) WHERE matched_by IS NULL;
