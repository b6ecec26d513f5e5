-- The console's users and their sessions. Passwords are stored as Argon2id hashes (PHC
-- strings); sessions by the SHA-256 of their cookie's secret, never the secret.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    -- viewer, collector, credit_manager or admin.
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    disabled_at   TEXT
);

CREATE TABLE sessions (
    sha256       TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    -- The token forms carry (CSRF), for this session only.
    csrf         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Who changed what from the console: the user, what was done, to what, and the details.
CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    -- The customer (external id) the change concerns, if any.
    customer  TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_events_by_customer ON audit_events (customer, id);

-- Notes on a customer's account, written by a user (what a collector learned on a call).
CREATE TABLE notes (
    id        INTEGER PRIMARY KEY,
    customer  TEXT NOT NULL,
    at        TEXT NOT NULL,
    author    TEXT NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX notes_by_customer ON notes (customer, id);
