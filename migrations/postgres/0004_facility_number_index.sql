-- Lookups by facility number across services (bulk upsert, move-out) must not scan the
-- tenant's facilities: measured as quadratic seeding before this index.
CREATE INDEX facilities_number ON facilities (tenant_id, facility_number);
