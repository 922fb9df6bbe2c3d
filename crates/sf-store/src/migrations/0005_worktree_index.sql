-- The janitor looks up the tasks using a worktree directory, or a branch, by name: the
-- cost of a clean-up grows with the worktrees and branches left, not with the history.
CREATE INDEX tasks_by_worktree ON tasks(worktree) WHERE worktree IS NOT NULL;
CREATE INDEX tasks_by_branch ON tasks(branch) WHERE branch IS NOT NULL;
-- The merge steward's count of merges, `agent list`, reads this index only.
CREATE INDEX merge_requests_merged ON merge_requests(id) WHERE state = 'merged';
