-- 0009: the comment given with the latest status change of a certificate
-- (revoke, suspend/hold, unsuspend/unhold), shown in certificate details
-- and the CA Gateway's revocationInfo.comment.
ALTER TABLE certificate ADD COLUMN status_comment TEXT;
