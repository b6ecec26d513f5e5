-- Bearer tokens of the HTTP API. Only the SHA-256 of the secret is stored: the secret
-- is shown once, when the token is created. Scopes: ingest, read, collect, admin.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
