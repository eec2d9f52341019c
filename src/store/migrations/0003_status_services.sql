-- 0003: CRLs (strictly increasing cRLNumber per CA) and OCSP responders.

ALTER TABLE ca ADD COLUMN crl_number INTEGER NOT NULL DEFAULT 0;

CREATE TABLE crl (
  partition_id  TEXT NOT NULL,
  ca_pk         INTEGER NOT NULL REFERENCES ca(pk),
  number        INTEGER NOT NULL,
  this_update   INTEGER NOT NULL,
  next_update   INTEGER NOT NULL,
  entries       INTEGER NOT NULL,
  der           BLOB NOT NULL,
  PRIMARY KEY (ca_pk, number)
);

CREATE TABLE ocsp_responder (
  ca_pk         INTEGER NOT NULL REFERENCES ca(pk),
  partition_id  TEXT NOT NULL,
  key_blob      BLOB NOT NULL,             -- sealed under the master key
  cert_der      BLOB NOT NULL,
  not_after     INTEGER NOT NULL,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (ca_pk, created_at)
);
