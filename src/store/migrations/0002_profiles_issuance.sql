-- 0002: custom profiles, CA <-> profile assignment, issuance counter.

CREATE TABLE profile (
  partition_id  TEXT NOT NULL REFERENCES partition(id),
  profile_id    TEXT NOT NULL,
  grp           TEXT NOT NULL,
  json          TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (partition_id, profile_id)
);

CREATE TABLE ca_profile (
  partition_id  TEXT NOT NULL,
  ca_pk         INTEGER NOT NULL REFERENCES ca(pk),
  profile_id    TEXT NOT NULL,
  PRIMARY KEY (ca_pk, profile_id)
);
CREATE INDEX ca_profile_by_profile ON ca_profile(partition_id, profile_id);

-- End-entity certificates issued against the subscription's purchase
-- (CA and responder certificates do not count). Incremented in the same
-- transaction as the certificate row, guarded by certs_purchased.
ALTER TABLE subscription ADD COLUMN certs_issued INTEGER NOT NULL DEFAULT 0;

CREATE INDEX certificate_by_status ON certificate(partition_id, issuer_ca_pk, status);
