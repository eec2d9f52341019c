-- 0001: tenancy, CAs, keys, certificates, events, audit.
-- Every row below partition carries partition_id and every query filters on it.

CREATE TABLE subscription (
  id            TEXT PRIMARY KEY,
  status        TEXT NOT NULL CHECK (status IN ('Assigned','Unassigned')),
  region        TEXT,
  certs_purchased INTEGER NOT NULL DEFAULT 0,
  cas_purchased   INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL
);

CREATE TABLE partition (
  id              TEXT PRIMARY KEY,          -- account id, used in URLs
  label           TEXT NOT NULL,
  region          TEXT NOT NULL,
  subscription_id TEXT NOT NULL UNIQUE REFERENCES subscription(id),
  created_at      INTEGER NOT NULL
);

CREATE TABLE app_user (
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  email         TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  must_change_password INTEGER NOT NULL DEFAULT 1,
  roles         TEXT NOT NULL,               -- comma-separated role names
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (partition_id, email)
);

CREATE TABLE api_token (
  token_hash    TEXT PRIMARY KEY,            -- SHA-256 hex of the token
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  name          TEXT NOT NULL,
  roles         TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  revoked_at    INTEGER
);

-- A CA row is never removed: deletion sets status 'deleted'; the identifier
-- stays reserved for 24 h (checked on insert) and unique among live CAs.
CREATE TABLE ca (
  pk            INTEGER PRIMARY KEY,
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  ca_id         TEXT NOT NULL,
  friendly_name TEXT NOT NULL,
  type          TEXT NOT NULL CHECK (type IN ('root','externalKey','intermediate','subord')),
  status        TEXT NOT NULL CHECK (status IN ('active','pending','deleted')),
  parent_id     TEXT,
  key_label     TEXT,
  key_blob      BLOB,                        -- AES-256-GCM sealed PKCS#8, NULL for externalKey
  cert_der      BLOB,                        -- NULL while pending
  csr_der       BLOB,
  subject       TEXT NOT NULL,
  path_len      INTEGER,                     -- NULL: unlimited
  crl_enabled   INTEGER NOT NULL DEFAULT 0,
  ocsp_enabled  INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL,
  deleted_at    INTEGER
);
CREATE UNIQUE INDEX ca_live_id ON ca(partition_id, ca_id) WHERE status <> 'deleted';
CREATE INDEX ca_by_id ON ca(partition_id, ca_id, deleted_at);

CREATE TABLE certificate (
  pk            INTEGER PRIMARY KEY,
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  issuer_ca_pk  INTEGER NOT NULL REFERENCES ca(pk),
  serial        TEXT NOT NULL,               -- lowercase hex
  subject       TEXT NOT NULL,
  sans          TEXT,
  not_before    INTEGER NOT NULL,
  not_after     INTEGER NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('issued','revoked','suspended')),
  revocation_reason INTEGER,
  revoked_at    INTEGER,
  invalidity_date INTEGER,
  profile_id    TEXT,
  requester     TEXT,
  is_ca         INTEGER NOT NULL DEFAULT 0,
  der           BLOB NOT NULL,
  created_at    INTEGER NOT NULL,
  UNIQUE (issuer_ca_pk, serial)
);
CREATE INDEX certificate_by_expiry ON certificate(partition_id, issuer_ca_pk, not_after);

CREATE TABLE event (
  pk            INTEGER PRIMARY KEY,
  partition_id  TEXT NOT NULL,
  at            INTEGER NOT NULL,
  actor         TEXT NOT NULL,
  action        TEXT NOT NULL,
  target        TEXT NOT NULL,
  detail        TEXT
);

-- Hash-chained: hash = SHA-256(prev_hash || canonical JSON of the record).
CREATE TABLE audit (
  seq           INTEGER PRIMARY KEY,
  partition_id  TEXT,
  at            INTEGER NOT NULL,
  actor         TEXT NOT NULL,
  action        TEXT NOT NULL,
  target        TEXT NOT NULL,
  detail        TEXT,
  prev_hash     TEXT NOT NULL,
  hash          TEXT NOT NULL
);
