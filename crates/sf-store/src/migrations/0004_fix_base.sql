-- The branch tip a fix task starts from (the merge that failed tested it): completing the
-- fix with the tip unchanged is refused, since the retest would fail the same way.
ALTER TABLE tasks ADD COLUMN fix_base TEXT;
