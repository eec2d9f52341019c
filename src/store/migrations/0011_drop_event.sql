-- 0011: the event table mirrored every audit record for views that read the
-- audit log instead; nothing ever read it. Dropped, and no longer written
-- (one statement and its pages less per issued certificate).
DROP TABLE IF EXISTS event;
