-- Retention: a document whose bytes were removed after its retention period keeps its
-- row (kind, reference, SHA-256, size: the evidence that it was sent) with the time the
-- bytes went; a customer whose personal data was erased on request keeps its accounting
-- records and says when.
ALTER TABLE documents ADD COLUMN pruned_at TIMESTAMPTZ;
ALTER TABLE customers ADD COLUMN erased_at TIMESTAMPTZ;
