-- A task's priority as admitted (a `high` request beyond the owner's budget is admitted as `low`):
-- what QUOTA_HIGH_TASKS_IN_FLIGHT counts. Rows from before have none and count as `low`.
ALTER TABLE tasks ADD COLUMN priority text CHECK (priority IN ('high', 'low'));
CREATE INDEX tasks_unfinished_high ON tasks (owner) WHERE finished_at IS NULL AND priority = 'high';
