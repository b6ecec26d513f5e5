-- Documents generated for actions (formal notices, account statements): evidence.
-- The SHA-256 is of the exact bytes sent; the bytes are in `content` (database archive)
-- or in the file at `location` (directory archive). One document per action and kind:
-- a retry reuses the archived one rather than generating another.
CREATE TABLE documents (
    id         BIGSERIAL PRIMARY KEY,
    action_id  BIGINT NOT NULL REFERENCES actions (id),
    kind       TEXT NOT NULL,
    reference  TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    location   TEXT,
    content    BYTEA,
    metadata   TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (action_id, kind)
);

-- The parts of an action delivered by several means (a formal notice by email and by
-- registered mail): a retry skips the parts already accepted.
CREATE TABLE action_deliveries (
    action_id    BIGINT NOT NULL REFERENCES actions (id),
    part         TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (action_id, part)
);

-- Insurer endpoints disabled after answering 410 Gone, until an operator re-enables them.
CREATE TABLE insurer_endpoints (
    insurer     TEXT PRIMARY KEY,
    disabled_at TIMESTAMPTZ,
    reason      TEXT,
    updated_at  TIMESTAMPTZ NOT NULL
);
