-- Outages, their steps, the affected set, and the notice outbox.
CREATE TABLE outages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    etr BIGINT,
    ended_at BIGINT,
    cause TEXT,
    texts TEXT NOT NULL,
    selector TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX outages_tenant ON outages (tenant_id, state);

-- Every step, with who took it. The step is the unit of idempotency: its notices are
-- written in the same transaction, exactly once.
CREATE TABLE outage_steps (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outage_id BIGINT NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    etr BIGINT,
    cause TEXT,
    notify BIGINT NOT NULL,
    notices BIGINT NOT NULL,
    idempotency_key TEXT,
    UNIQUE (outage_id, seq)
);
CREATE UNIQUE INDEX outage_steps_idempotency ON outage_steps (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The resolved affected set: which facility, from when, until when.
CREATE TABLE outage_facilities (
    outage_id BIGINT NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    facility_id BIGINT NOT NULL,
    affected_from BIGINT NOT NULL,
    affected_until BIGINT,
    PRIMARY KEY (outage_id, facility_id)
);

-- The rendered texts of a step, shared by its notices.
CREATE TABLE step_texts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id BIGINT NOT NULL REFERENCES outage_steps(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    language TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL
);

-- The outbox: one row per recipient per step per channel, written before anything is sent.
CREATE TABLE notices (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    outage_id BIGINT NOT NULL,
    step_id BIGINT NOT NULL,
    text_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    recipient_bidx BYTEA NOT NULL,
    recipient_ct BYTEA NOT NULL,
    recipient_key BIGINT NOT NULL,
    source TEXT NOT NULL,
    facilities BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    provider TEXT,
    provider_id TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX notices_due ON notices (status, next_attempt_at, id);
CREATE INDEX notices_step ON notices (step_id);
