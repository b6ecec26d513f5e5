-- What the rules need from the action log, kept as current state when actions are
-- recorded or change status, so that a tick reads it with the open invoices it
-- evaluates instead of reading every customer's whole log each day.
--
-- invoice_steps: one row per open invoice and step applied to it, by customer (the
-- order a tick reads customers in). `applied` lists the day of each application in the
-- order of the log, separated by spaces; a day marked `!` is an application whose
-- action failed or died (it still counts as applied; an insurer handover that failed
-- does not take the invoice out of the ladder). Cancelled and blocked actions are not
-- applications. `first_action` is the first action that applied the step: steps are
-- listed in that order. An invoice's rows leave with it when it closes (paid,
-- cancelled, written off) and are folded again from the log if it reopens: the table
-- holds the open invoices' state, whatever the length of the history.
CREATE TABLE invoice_steps (
    customer_id  BIGINT NOT NULL,
    invoice      TEXT NOT NULL,
    step         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    first_action BIGINT NOT NULL,
    applied      TEXT NOT NULL,
    PRIMARY KEY (customer_id, invoice, step)
);

INSERT INTO invoice_steps (customer_id, invoice, step, kind, first_action, applied)
SELECT a.customer_id, j.invoice, a.step, (array_agg(a.kind ORDER BY a.id))[1], MIN(a.id),
       string_agg(CASE WHEN a.status IN ('failed', 'dead') THEN '!' ELSE '' END || to_char(a.decided_on, 'YYYY-MM-DD'), ' ' ORDER BY a.id)
FROM actions a
CROSS JOIN LATERAL jsonb_array_elements_text(a.invoice_numbers::jsonb) AS j (invoice)
JOIN invoices i ON i.number = j.invoice AND i.customer_id = a.customer_id AND i.status = 'open'
WHERE a.status NOT IN ('cancelled', 'blocked', 'duplicate')
GROUP BY a.customer_id, j.invoice, a.step;

CREATE FUNCTION invoice_steps_follow_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'open' AND NEW.status <> 'open' THEN
        DELETE FROM invoice_steps WHERE customer_id = OLD.customer_id AND invoice = OLD.number;
    ELSIF OLD.status <> 'open' AND NEW.status = 'open' THEN
        INSERT INTO invoice_steps (customer_id, invoice, step, kind, first_action, applied)
        SELECT NEW.customer_id, NEW.number, a.step, (array_agg(a.kind ORDER BY a.id))[1], MIN(a.id),
               string_agg(CASE WHEN a.status IN ('failed', 'dead') THEN '!' ELSE '' END || to_char(a.decided_on, 'YYYY-MM-DD'), ' ' ORDER BY a.id)
        FROM actions a CROSS JOIN LATERAL jsonb_array_elements_text(a.invoice_numbers::jsonb) AS j (invoice)
        WHERE a.customer_id = NEW.customer_id AND j.invoice = NEW.number AND a.status NOT IN ('cancelled', 'blocked', 'duplicate')
        GROUP BY a.step
        ON CONFLICT (customer_id, invoice, step) DO UPDATE SET applied = excluded.applied, first_action = excluded.first_action, kind = excluded.kind;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER invoice_steps_follow_status AFTER UPDATE OF status ON invoices
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION invoice_steps_follow_status();

-- contacts: one row per message delivered (the `sent` event of an action), by customer
-- and time: the contact budget counts a customer's contacts in its window from here.
CREATE TABLE contacts (
    customer_id BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    kind        TEXT NOT NULL,
    action_id   BIGINT NOT NULL
);
CREATE INDEX contacts_by_customer ON contacts (customer_id, at);

INSERT INTO contacts (customer_id, at, kind, action_id)
SELECT a.customer_id, e.at, a.kind, a.id
FROM action_events e JOIN actions a ON a.id = e.action_id
WHERE e.status = 'sent';

-- The open invoices a tick reads by customer: the covering index again covers every
-- column read (the e-invoicing status of 0018 was read from the table, a lookup per
-- invoice, and the scan was no longer index-only).
DROP INDEX invoices_open_by_customer;
CREATE INDEX invoices_open_by_customer ON invoices (
    customer_id, due_date, number, id, issue_date, currency, amount_minor, open_minor,
    allocated_minor, dispute_reason, disputed_at, pause_reason, paused_until, einvoice_status
) WHERE status = 'open';

-- The outbox's queue: the actions still to deliver, oldest first. Claiming the next one
-- reads the first entries of this index instead of sorting every planned action.
CREATE INDEX actions_queue ON actions (id) WHERE status IN ('planned', 'retrying');
