-- Phone calls for collectors, created by `call_task` actions. One task per action (the
-- UNIQUE constraint makes a resend a no-op); the outcome feeds back into the ledger.
CREATE TABLE call_tasks (
    id              INTEGER PRIMARY KEY,
    action_id       INTEGER NOT NULL UNIQUE REFERENCES actions (id),
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    invoice_numbers TEXT NOT NULL,
    reason          TEXT NOT NULL,
    priority        TEXT NOT NULL,
    assignee        TEXT,
    due_on          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'done')),
    outcome         TEXT CHECK (outcome IN ('reached', 'no-answer', 'wrong-number', 'promise', 'dispute')),
    note            TEXT,
    completed_by    TEXT,
    completed_at    TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX call_tasks_by_status ON call_tasks (status, due_on);
CREATE INDEX call_tasks_by_customer ON call_tasks (customer_id);
