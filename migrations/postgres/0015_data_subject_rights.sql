-- Data-subject rights. A session that proved the invoice pair may register and replace
-- contacts (that is the service); seeing, downloading, restricting or erasing what is held
-- also needs a one-time code sent to a contact the household registered, and the session
-- holds that proof until `rights_until`.
ALTER TABLE registration_sessions ADD COLUMN rights_until BIGINT;

-- A restricted (or objected-to) subscription stays but is inert: no notices, and the
-- directory is not asked for numbers at its address either, until the household lifts it.
ALTER TABLE subscriptions ADD COLUMN restricted_at BIGINT;

-- One-time codes: only a keyed hash bound to the session that asked; no contact data.
-- Rows outlive their code by an hour so sends per facility can be counted across sessions.
CREATE TABLE access_codes (
    id BIGSERIAL PRIMARY KEY,
    facility_id BIGINT NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    session_hash BYTEA NOT NULL,
    code_hash BYTEA NOT NULL,
    channel TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at BIGINT
);
CREATE INDEX access_codes_session ON access_codes (session_hash);
CREATE INDEX access_codes_facility ON access_codes (facility_id, created_at);
