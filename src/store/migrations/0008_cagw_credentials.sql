-- 0008: CA Gateway credentials (mutual TLS). Each partition has its own
-- credentials CA; a credential is a client certificate it issued, granted
-- roles per CA. A request is authenticated when its TLS client certificate
-- is exactly the DER of an active, unexpired credential.
CREATE TABLE cagw_ca (
  partition_id  TEXT PRIMARY KEY REFERENCES partition(id),
  key_blob      BLOB NOT NULL,            -- sealed under the master key
  cert_der      BLOB NOT NULL,
  created_at    INTEGER NOT NULL
);

CREATE TABLE cagw_credential (
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  cred_id       TEXT NOT NULL,
  name          TEXT NOT NULL,
  serial        TEXT NOT NULL,
  cert_der      BLOB NOT NULL,
  not_after     INTEGER NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('active','deleted')),
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (partition_id, cred_id)
);
CREATE INDEX cagw_credential_by_serial ON cagw_credential(serial);

CREATE TABLE cagw_grant (
  partition_id  TEXT NOT NULL,
  cred_id       TEXT NOT NULL,
  ca_id         TEXT NOT NULL,
  roles         TEXT NOT NULL,
  PRIMARY KEY (partition_id, cred_id, ca_id)
);
