-- 0011 (SQLite only: one node, no rolling upgrade; PostgreSQL keeps the table
-- for older nodes, see docs/operations.md): the event table mirrored every
-- audit record for views that read the
-- audit log instead; nothing ever read it. Dropped, and no longer written
-- (one statement and its pages less per issued certificate).
DROP TABLE IF EXISTS event;
