-- 0006: users (invitation, password, TOTP), invitations, sessions.
ALTER TABLE app_user ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE app_user ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
-- invited: password not set; enrolling: password set, TOTP not confirmed;
-- active: may log in
ALTER TABLE app_user ADD COLUMN status TEXT NOT NULL DEFAULT 'enrolling';
ALTER TABLE app_user ADD COLUMN totp_blob BLOB;               -- sealed TOTP secret
ALTER TABLE app_user ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0; -- replay protection
ALTER TABLE app_user ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE app_user ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;

CREATE TABLE invitation (
  token_hash    TEXT PRIMARY KEY,             -- SHA-256 of the link token
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  email         TEXT NOT NULL,
  expires_at    INTEGER NOT NULL,
  used_at       INTEGER
);

CREATE TABLE session (
  id_hash       TEXT PRIMARY KEY,             -- SHA-256 of the cookie value
  partition_id  TEXT NOT NULL,
  email         TEXT NOT NULL,
  csrf          TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  revoked_at    INTEGER
);
