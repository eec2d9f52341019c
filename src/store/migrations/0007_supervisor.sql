-- 0007: the supervisor account (subscriptions and partitions belong to it,
-- not to partition users) and subscription assignment details.
CREATE TABLE supervisor_token (
  token_hash    TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  revoked_at    INTEGER
);
ALTER TABLE subscription ADD COLUMN terms_accepted_at INTEGER;
ALTER TABLE subscription ADD COLUMN assigned_by TEXT;
