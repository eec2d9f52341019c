-- 0004: partitioned CRLs (RFC 5280 5.2.5 issuingDistributionPoint).
-- A CA with crl_shards > 1 places every certificate it issues in one shard,
-- fixed at issuance (certificate.crl_shard) and written into the
-- certificate's CRL distribution point. shard -1 is the full CRL.
ALTER TABLE ca ADD COLUMN crl_shards INTEGER NOT NULL DEFAULT 0;
ALTER TABLE certificate ADD COLUMN crl_shard INTEGER;
ALTER TABLE crl ADD COLUMN shard INTEGER NOT NULL DEFAULT -1;
CREATE INDEX crl_by_shard ON crl(ca_pk, shard, number);
