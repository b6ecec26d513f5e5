-- Each time a customer opened its portal page (pressed "see my account" on the page a
-- link leads to): the action whose message carried the link, if any, and when. What
-- the customer then did there is in audit_events (actor "portal").
CREATE TABLE portal_visits (
    id        INTEGER PRIMARY KEY,
    customer  TEXT NOT NULL,
    action_id INTEGER,
    at        TEXT NOT NULL
);
CREATE INDEX portal_visits_by_customer ON portal_visits (customer, id);
CREATE INDEX portal_visits_by_action ON portal_visits (action_id) WHERE action_id IS NOT NULL;
