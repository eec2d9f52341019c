-- 0012 (as SQLite's 0012): the status index lists only certificates whose
-- status is not 'issued' (revoked or suspended: what a CRL lists), so issuing
-- a certificate no longer inserts into it. PostgreSQL proves that older
-- nodes' `status IN ('revoked','suspended')` implies the index's predicate,
-- so they keep using it during a rolling upgrade. Building it scans the
-- certificate table once while writes to it wait (~0.2 s per million rows;
-- docs/operations.md).
DROP INDEX IF EXISTS certificate_by_status;
CREATE INDEX IF NOT EXISTS certificate_revoked ON certificate(partition_id, issuer_ca_pk, status)
  WHERE status <> 'issued';
