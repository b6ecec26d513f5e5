-- The action log's idempotency keys are unique per customer. A key is a hash of the
-- customer, kind, step, repeat number and invoices, so no two customers share one and
-- the guarantee is the same as before; but the index is now ordered by customer, as a
-- tick writes, so each tick inserts into it in order instead of all over it. It also
-- serves the reads by customer that actions_by_customer served. The keys themselves are
-- unchanged: they are the Message-ID, webhook-id and provider idempotency keys of the
-- messages already sent.
CREATE UNIQUE INDEX actions_by_customer_key ON actions (customer_id, idempotency_key);
ALTER TABLE actions DROP CONSTRAINT actions_idempotency_key_key;
DROP INDEX actions_by_customer;

-- Facts snapshots are likewise keyed by customer and SHA-256 (a snapshot shared by two
-- customers, were their facts ever identical, is stored for each).
CREATE TABLE facts_snapshots_new (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    snapshot    TEXT NOT NULL
);
INSERT INTO facts_snapshots_new (customer_id, sha256, snapshot)
SELECT k.customer_id, f.sha256, f.snapshot
FROM (SELECT DISTINCT customer_id, facts_sha256 FROM actions WHERE facts_sha256 IS NOT NULL) k
JOIN facts_snapshots f ON f.sha256 = k.facts_sha256
ORDER BY k.customer_id, f.sha256;
DROP TABLE facts_snapshots;
ALTER TABLE facts_snapshots_new RENAME TO facts_snapshots;
ALTER SEQUENCE facts_snapshots_new_id_seq RENAME TO facts_snapshots_id_seq;
ALTER TABLE facts_snapshots RENAME CONSTRAINT facts_snapshots_new_pkey TO facts_snapshots_pkey;
CREATE UNIQUE INDEX facts_snapshots_by_customer ON facts_snapshots (customer_id, sha256);
