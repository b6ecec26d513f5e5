-- The debtor portal's links name a customer's link generation: raising it revokes every
-- link the customer was given (relance portal revoke). Nothing else is stored for a link.
ALTER TABLE customers ADD COLUMN portal_generation INTEGER NOT NULL DEFAULT 0;
