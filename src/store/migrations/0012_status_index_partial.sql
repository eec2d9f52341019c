-- 0012: the status index lists only certificates whose status is not
-- 'issued' (revoked or suspended: what a CRL lists). Issuing a certificate
-- no longer inserts into it (one index and its page less per commit), and
-- it stays as small as the revocations. The revoked-certificate query
-- carries the same `status <> 'issued'` term, which is what lets SQLite use
-- a partial index.
DROP INDEX IF EXISTS certificate_by_status;
CREATE INDEX certificate_revoked ON certificate(partition_id, issuer_ca_pk, status) WHERE status <> 'issued';
