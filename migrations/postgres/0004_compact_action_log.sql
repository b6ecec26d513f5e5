-- The facts behind decisions, stored once per customer and evaluation rather than with
-- each action: content-addressed by the SHA-256 of the JSON snapshot, so a customer's
-- several actions of one tick, and a re-run on unchanged facts, share one row.
-- Actions recorded before this table keep their snapshot inline in `actions.facts`.
CREATE TABLE facts_snapshots (
    id       BIGSERIAL PRIMARY KEY,
    sha256   TEXT NOT NULL UNIQUE,
    snapshot TEXT NOT NULL
);
ALTER TABLE actions ADD COLUMN facts_sha256 TEXT;

-- The invoices an action covers, as a JSON array of invoice numbers on the action itself
-- rather than one link row each: a tick writes a third of the rows it used to. History
-- is read by customer (actions_by_customer).
ALTER TABLE actions ADD COLUMN invoice_numbers TEXT NOT NULL DEFAULT '[]';
UPDATE actions a SET invoice_numbers = COALESCE((
    SELECT json_agg(i.number ORDER BY i.number)::text FROM action_invoices ai
    JOIN invoices i ON i.id = ai.invoice_id WHERE ai.action_id = a.id
), '[]');
DROP TABLE action_invoices;
