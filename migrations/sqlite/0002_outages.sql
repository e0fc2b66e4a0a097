-- Outages, their steps, the affected set, and the notice outbox.
CREATE TABLE outages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    etr INTEGER,
    ended_at INTEGER,
    cause TEXT,
    texts TEXT NOT NULL,
    selector TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX outages_tenant ON outages (tenant_id, state);

-- Every step, with who took it. The step is the unit of idempotency: its notices are
-- written in the same transaction, exactly once.
CREATE TABLE outage_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outage_id INTEGER NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    tenant_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    etr INTEGER,
    cause TEXT,
    notify INTEGER NOT NULL,
    notices INTEGER NOT NULL,
    idempotency_key TEXT,
    UNIQUE (outage_id, seq)
);
CREATE UNIQUE INDEX outage_steps_idempotency ON outage_steps (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The resolved affected set: which facility, from when, until when.
CREATE TABLE outage_facilities (
    outage_id INTEGER NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL,
    affected_from INTEGER NOT NULL,
    affected_until INTEGER,
    PRIMARY KEY (outage_id, facility_id)
);

-- The rendered texts of a step, shared by its notices.
CREATE TABLE step_texts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    step_id INTEGER NOT NULL REFERENCES outage_steps(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    language TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL
);

-- The outbox: one row per recipient per step per channel, written before anything is sent.
CREATE TABLE notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    outage_id INTEGER NOT NULL,
    step_id INTEGER NOT NULL,
    text_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient_bidx BLOB NOT NULL,
    recipient_ct BLOB NOT NULL,
    recipient_key INTEGER NOT NULL,
    source TEXT NOT NULL,
    facilities INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER,
    provider TEXT,
    provider_id TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX notices_due ON notices (status, next_attempt_at, id);
CREATE INDEX notices_step ON notices (step_id);
