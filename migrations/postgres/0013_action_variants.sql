-- The variant of the segment's experiment (champion / challenger) whose script decided
-- each action; NULL for a segment without variants.
ALTER TABLE actions ADD COLUMN variant TEXT;
