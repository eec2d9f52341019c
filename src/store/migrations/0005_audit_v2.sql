-- 0005: audit log v2 — one hash chain per partition (partition '' holds
-- system events), millisecond times, source IP and result, and signed
-- checkpoints. The v1 table (one global chain) is kept as an archive.
ALTER TABLE audit RENAME TO audit_v1;

CREATE TABLE audit (
  seq           INTEGER PRIMARY KEY,
  partition_id  TEXT NOT NULL,
  at_ms         INTEGER NOT NULL,
  actor         TEXT NOT NULL,
  source_ip     TEXT NOT NULL DEFAULT '',
  action        TEXT NOT NULL,
  target        TEXT NOT NULL,
  result        TEXT NOT NULL,
  detail        TEXT,
  prev_hash     TEXT NOT NULL,
  hash          TEXT NOT NULL
);
CREATE INDEX audit_by_partition ON audit(partition_id, seq);
CREATE INDEX audit_by_time ON audit(partition_id, at_ms);

-- Signed checkpoints: the chain head (seq, hash) of a partition signed with
-- its audit key, every N records and every hour.
CREATE TABLE audit_checkpoint (
  partition_id  TEXT NOT NULL,
  seq           INTEGER NOT NULL,
  at_ms         INTEGER NOT NULL,
  hash          TEXT NOT NULL,
  signature     BLOB NOT NULL,
  PRIMARY KEY (partition_id, seq)
);

CREATE TABLE audit_key (
  partition_id  TEXT PRIMARY KEY,
  key_blob      BLOB NOT NULL,             -- sealed under the master key
  public_der    BLOB NOT NULL,
  created_at    INTEGER NOT NULL
);
