-- Lookups by task on paths that run per request must not scan history: a task's open merge
-- requests (status changes of tasks in review), and its fix tasks (merge failures).
CREATE INDEX merge_requests_open_by_task ON merge_requests(task) WHERE state NOT IN ('merged', 'cancelled');
CREATE INDEX tasks_by_fix_of ON tasks(fix_of) WHERE fix_of IS NOT NULL;
