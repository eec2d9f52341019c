-- 0013: a version per user, moved by every update. An update names the
-- version it read and changes nothing if the user changed meanwhile (a
-- concurrent login consuming the same TOTP code, a failure counter, a role
-- change), so no update overwrites another with what it read before it.
ALTER TABLE app_user ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
