-- The cause catalogue: a tenant's own cause codes, and its own texts for our built-in ones.
-- The built-in codes and texts live in the code (src/domain/cause.rs), so a tenant's edits
-- stay and a code added later reaches every tenant.
CREATE TABLE causes (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    texts TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

-- A step keeps its cause as it was said, per language ('{}' when none), so a later edit of
-- the catalogue does not change what an earlier step said; `cause` holds the code, NULL for
-- free text.
ALTER TABLE outages ADD COLUMN cause_texts TEXT NOT NULL DEFAULT '{}';
ALTER TABLE outage_steps ADD COLUMN cause_texts TEXT NOT NULL DEFAULT '{}';

-- Before the catalogue a cause was free text that every household read as written.
UPDATE outages SET cause_texts = json_build_object('sv', cause, 'nb', cause, 'en', cause)::text, cause = NULL
WHERE cause IS NOT NULL;
UPDATE outage_steps SET cause_texts = json_build_object('sv', cause, 'nb', cause, 'en', cause)::text, cause = NULL
WHERE cause IS NOT NULL;
