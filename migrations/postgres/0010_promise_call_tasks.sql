-- A promise obtained on a call records the call task it came from: the collectors'
-- report counts the promises each collector obtained, and those kept.
ALTER TABLE promises ADD COLUMN call_task_id BIGINT REFERENCES call_tasks (id);
