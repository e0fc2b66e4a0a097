-- Data-subject requests that need a person: one row per case, with its legal deadline. No
-- contact data in clear: the note (free text, may name the person) is sealed with the data
-- key, bound to cases:note:<id>. Closed cases are deleted `cases.keep_closed_days` after
-- closing (the `retention.cases` job).
CREATE TABLE cases (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    received_via TEXT NOT NULL,
    -- Calendar days in the tenant's time zone, YYYY-MM-DD.
    received_on TEXT NOT NULL,
    deadline_on TEXT NOT NULL,
    extended_to TEXT,
    extension_reason TEXT,
    -- When the deadline in force (extended_to, else deadline_on) ends: local midnight after
    -- it, Unix seconds; what "overdue" is decided on.
    due_at BIGINT NOT NULL,
    identity_check TEXT NOT NULL,
    facility_id BIGINT REFERENCES facilities(id) ON DELETE SET NULL,
    note_ct BYTEA,
    note_key BIGINT,
    resolution TEXT,
    -- Bumped by every change, so two staff editing at once cannot overwrite each other.
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at BIGINT,
    reminded_at BIGINT
);
CREATE INDEX cases_tenant_due ON cases (tenant_id, due_at);
CREATE INDEX cases_closed ON cases (closed_at) WHERE closed_at IS NOT NULL;
