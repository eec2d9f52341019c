-- 0010: protocol state as typed JSON documents. Protocol configurations,
-- their secrets (EAB keys, credentials), ACME accounts, orders,
-- authorizations and nonces share one table: each protocol module owns the
-- shape of its `json`, the store guarantees identity, the optional unique
-- secondary key (`lookup`), optimistic concurrency (`version`) and expiry.
CREATE TABLE object (
    partition_id TEXT NOT NULL,      -- '' for process-wide objects (nonces)
    kind TEXT NOT NULL,              -- 'protocol', 'eab', 'acme-account', ...
    id TEXT NOT NULL,
    parent TEXT,                     -- owning object (configuration, account, order)
    lookup TEXT,                     -- unique per (partition, kind) when set
    status TEXT NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL DEFAULT 0, -- unix seconds, 0 = never
    json TEXT,
    blob BLOB,                       -- sealed secret material (never plaintext)
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (partition_id, kind, id)
);
CREATE UNIQUE INDEX object_lookup ON object(partition_id, kind, lookup) WHERE lookup IS NOT NULL;
CREATE INDEX object_parent ON object(partition_id, kind, parent, id);
CREATE INDEX object_expiry ON object(kind, expires_at) WHERE expires_at > 0;
