-- Planned outages are announced ahead (postcards, registered contacts) and reminded the day
-- before; they are kept apart from unplanned ones in every listing and count, as regulators
-- count notified interruptions separately.
ALTER TABLE outages ADD COLUMN planned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outages_planned ON outages (tenant_id, planned, state);
