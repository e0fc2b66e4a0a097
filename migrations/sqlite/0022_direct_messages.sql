-- The outbox of direct messages to one household: e-mail verification links, one-time codes
-- for the data-subject rights, and the notice to a contact that was replaced or removed.
-- A request writes its message here before anything is sent; the dispatcher's urgent lane
-- sends it with the notices' retry policy (src/dispatch/direct.rs).
--
-- The recipient and the body (which holds the link or the code) are sealed with the
-- tenant's data key; the associated data is `direct_messages:<column>:<id>`, so the id is
-- chosen by the writer before sealing. Both are nulled as soon as the message is sent,
-- refused for good or past the life of its secret; the row itself (the facility, the
-- session hash and `limit_key`, no clear value) stays the hour it is counted in for the
-- limits per session, facility and address, then goes. `limit_key` is a keyed hash of the
-- address under its own name ("direct_limit"), not the subscriptions' blind index, so a
-- contact the household removed cannot be looked up by it; it is NULL for the notice to a
-- replaced contact, which is not limited. Erasure and move-out delete the facility's rows;
-- a deleted facility or tenant takes them along.
CREATE TABLE direct_messages (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    session_hash BLOB,
    sender TEXT NOT NULL,
    limit_key BLOB,
    recipient_ct BLOB,
    recipient_key INTEGER,
    body_ct BLOB,
    body_key INTEGER,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX direct_messages_due ON direct_messages (status, next_attempt_at);
CREATE INDEX direct_messages_facility ON direct_messages (facility_id, created_at);
CREATE INDEX direct_messages_address ON direct_messages (tenant_id, limit_key, created_at);
CREATE INDEX direct_messages_session ON direct_messages (session_hash, created_at);
