-- Disputes and pauses as they were over time: each one from when it began to when it
-- ended (NULL: still on). The invoices' and customers' own columns keep the current
-- state, which the tick reads; this history lets reports (and replays of the rules)
-- see a dispute resolved since, or a pause lifted since, on a past date.
CREATE TABLE holds (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    -- NULL: a pause of the whole customer.
    invoice_id  BIGINT REFERENCES invoices (id),
    kind        TEXT NOT NULL CHECK (kind IN ('dispute', 'pause')),
    reason      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    -- A pause's last day, when it was given one.
    until       DATE,
    ended_at    TIMESTAMPTZ
);
CREATE INDEX holds_by_customer ON holds (customer_id, id);

-- What is on today, from when it is known to have begun.
INSERT INTO holds (customer_id, invoice_id, kind, reason, started_at)
SELECT customer_id, id, 'dispute', COALESCE(dispute_reason, ''), disputed_at
FROM invoices WHERE disputed_at IS NOT NULL;
INSERT INTO holds (customer_id, invoice_id, kind, reason, started_at, until)
SELECT customer_id, id, 'pause', pause_reason, updated_at, paused_until
FROM invoices WHERE pause_reason IS NOT NULL;
INSERT INTO holds (customer_id, invoice_id, kind, reason, started_at, until)
SELECT id, NULL, 'pause', pause_reason, updated_at, paused_until
FROM customers WHERE pause_reason IS NOT NULL;
