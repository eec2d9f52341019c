-- 0013 (as SQLite's 0013): a version per user, moved by every update; an
-- update names the version it read and changes nothing if the user changed
-- meanwhile. Adding a column with a constant default rewrites nothing.
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
