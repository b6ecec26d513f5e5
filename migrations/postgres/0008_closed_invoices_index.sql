-- Open invoices are found by customer through invoices_open_by_customer (0002): the
-- index of all invoices by customer only needs to hold the others. Ingesting open
-- invoices then maintains one index by customer instead of two, and a customer's whole
-- ledger is read as its open part plus its closed part (store: invoices_of).
DROP INDEX invoices_by_customer;
CREATE INDEX invoices_closed_by_customer ON invoices (customer_id, due_date) WHERE status <> 'open';
