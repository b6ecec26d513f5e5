-- The answers to POST requests sent with an Idempotency-Key header, by the token that
-- sent them (`token_id`) and the key, kept for a day: the same request again gets the
-- same answer, and is not done twice. `status` is NULL while the first request is being
-- answered.
CREATE TABLE idempotency_keys (
    token_id       BIGINT NOT NULL,
    key            TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status         INTEGER,
    content_type   TEXT,
    body           BYTEA,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (token_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
