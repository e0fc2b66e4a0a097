-- The versions of each tenant's records of processing and privacy notice, and when each was
-- first produced: the version is a hash of the content, so the same content keeps its date
-- across restarts and instances, and a change of configuration or wording gets a new one.
CREATE TABLE privacy_notices (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    first_produced_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
