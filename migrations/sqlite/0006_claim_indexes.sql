-- The dispatcher finds due notices and expired leases through these, whatever the number
-- of notices already sent (measured: the claim slowed to a scan of all sent rows).
CREATE INDEX notices_leases ON notices (status, claimed_until);
