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
    customer_id  INTEGER NOT NULL,
    invoice      TEXT NOT NULL,
    step         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    first_action INTEGER NOT NULL,
    applied      TEXT NOT NULL,
    PRIMARY KEY (customer_id, invoice, step)
) WITHOUT ROWID;

-- The open invoices' applications so far, from the log (each action's invoices, then
-- the invoice by its unique number). With one min() aggregate, SQLite takes the bare
-- column (kind) from the row of the first action.
INSERT INTO invoice_steps (customer_id, invoice, step, kind, first_action, applied)
SELECT a.customer_id, j.value, a.step, a.kind, MIN(a.id),
       group_concat(CASE WHEN a.status IN ('failed', 'dead') THEN '!' ELSE '' END || a.decided_on, ' ' ORDER BY a.id)
FROM actions a CROSS JOIN json_each(a.invoice_numbers) j CROSS JOIN invoices i
WHERE i.number = j.value AND i.customer_id = a.customer_id AND i.status = 'open'
  AND a.status NOT IN ('cancelled', 'blocked', 'duplicate')
GROUP BY a.customer_id, j.value, a.step;

CREATE TRIGGER invoice_steps_on_close AFTER UPDATE OF status ON invoices
WHEN OLD.status = 'open' AND NEW.status <> 'open'
BEGIN
    DELETE FROM invoice_steps WHERE customer_id = OLD.customer_id AND invoice = OLD.number;
END;

-- Folded again application by application, in the order of the log (no aggregate
-- ordered by id in a trigger: the schema stays readable by older sqlite3 tools).
CREATE TRIGGER invoice_steps_on_reopen AFTER UPDATE OF status ON invoices
WHEN OLD.status <> 'open' AND NEW.status = 'open'
BEGIN
    DELETE FROM invoice_steps WHERE customer_id = NEW.customer_id AND invoice = NEW.number;
    INSERT INTO invoice_steps (customer_id, invoice, step, kind, first_action, applied)
    SELECT NEW.customer_id, NEW.number, a.step, a.kind, a.id,
           CASE WHEN a.status IN ('failed', 'dead') THEN '!' ELSE '' END || a.decided_on
    FROM actions a JOIN json_each(a.invoice_numbers) j ON j.value = NEW.number
    WHERE a.customer_id = NEW.customer_id AND a.status NOT IN ('cancelled', 'blocked', 'duplicate')
    ORDER BY a.id
    ON CONFLICT (customer_id, invoice, step) DO UPDATE SET applied = invoice_steps.applied || ' ' || excluded.applied;
END;

-- contacts: one row per message delivered (the `sent` event of an action), by customer
-- and time: the contact budget counts a customer's contacts in its window from here.
CREATE TABLE contacts (
    customer_id INTEGER NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    action_id   INTEGER NOT NULL
);
CREATE INDEX contacts_by_customer ON contacts (customer_id, at);

INSERT INTO contacts (customer_id, at, kind, action_id)
SELECT a.customer_id, e.at, a.kind, a.id
FROM action_events e JOIN actions a ON a.id = e.action_id
WHERE e.status = 'sent'
ORDER BY a.customer_id, e.at;

-- The open invoices a tick reads by customer: the covering index again covers every
-- column read (the e-invoicing status of 0018 was read from the table, a lookup per
-- invoice).
DROP INDEX invoices_open_by_customer;
CREATE INDEX invoices_open_by_customer ON invoices (
    customer_id, due_date, number, id, issue_date, currency, amount_minor, open_minor,
    allocated_minor, dispute_reason, disputed_at, pause_reason, paused_until, einvoice_status
) WHERE status = 'open';

-- The outbox's queue: the actions still to deliver, oldest first. Claiming the next one
-- reads the first entries of this index instead of sorting every planned action.
CREATE INDEX actions_queue ON actions (id) WHERE status IN ('planned', 'retrying');
