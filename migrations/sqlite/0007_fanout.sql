-- The storm rework: a step commits with a durable fan-out record, and its notices are then
-- written in short chunks that refer to the contact they go to instead of carrying a sealed
-- copy of it. A registered contact is opened once, when it is sent, from its subscription;
-- directory numbers (no subscription behind them) are sealed once per outage and address in
-- directory_contacts, which retention can purge on its own.

-- Numbers the telecom directory listed at an affected address, told about this outage.
CREATE TABLE directory_contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    outage_id INTEGER NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    address_key TEXT NOT NULL,
    phone_bidx BLOB NOT NULL,
    phone_ct BLOB NOT NULL,
    phone_key INTEGER NOT NULL,
    language TEXT NOT NULL,
    -- The step after which nothing at this address is affected any more.
    released_step_id INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (outage_id, address_key, phone_bidx)
);

-- One per notifying step: where its fan-out stands. phase 0 registered phones, 1 verified
-- e-mails, 2 directory numbers, 3 done; cursor is the chunk (phases 0, 1) or the last
-- facility id (phase 2) already written. A crash resumes from here.
CREATE TABLE fanouts (
    step_id INTEGER PRIMARY KEY REFERENCES outage_steps(id) ON DELETE CASCADE,
    tenant_id INTEGER NOT NULL,
    outage_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    phase INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    claimed_until INTEGER,
    created_at INTEGER NOT NULL,
    done_at INTEGER
);
CREATE INDEX fanouts_open ON fanouts (claimed_until) WHERE done_at IS NULL;

-- A provider that throttles or is down is paused for every worker of every instance.
CREATE TABLE provider_pauses (
    provider TEXT PRIMARY KEY,
    paused_until INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    reason TEXT NOT NULL
);

-- A step keeps the facts its texts are rendered from, so texts are rendered when sent.
ALTER TABLE outage_steps ADD COLUMN ended_at INTEGER;
ALTER TABLE outage_steps ADD COLUMN texts TEXT NOT NULL DEFAULT '{}';

-- Which step added and which released each facility: the targets of a step.
ALTER TABLE outage_facilities ADD COLUMN added_step_id INTEGER;
ALTER TABLE outage_facilities ADD COLUMN released_step_id INTEGER;
UPDATE outage_facilities SET added_step_id =
    (SELECT MIN(s.id) FROM outage_steps s WHERE s.outage_id = outage_facilities.outage_id);
UPDATE outage_facilities SET released_step_id =
    (SELECT MAX(s.id) FROM outage_steps s WHERE s.outage_id = outage_facilities.outage_id)
    WHERE affected_until IS NOT NULL;

-- The outbox without sealed recipients. Notices written before this change carried their
-- recipient sealed in the row; those already sent keep their anonymous facts, and any still
-- unsent are marked expired (Varsel had no release with an outbox before this).
CREATE TABLE notices_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    outage_id INTEGER NOT NULL,
    step_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient_bidx BLOB NOT NULL,
    -- The facility whose subscription holds the contact (registered recipients).
    subscription_id INTEGER,
    directory_id INTEGER,
    -- How many affected facilities this person registered (0 for directory numbers).
    facilities INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER,
    provider TEXT,
    provider_id TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    delivery_status TEXT,
    delivered_at INTEGER
);
INSERT INTO notices_v2 (id, tenant_id, outage_id, step_id, channel, recipient_bidx, facilities,
    status, attempts, next_attempt_at, provider, provider_id, last_error, created_at, sent_at,
    delivery_status, delivered_at)
SELECT id, tenant_id, outage_id, step_id, channel, recipient_bidx, facilities,
    CASE WHEN status IN ('pending', 'sending') THEN 'expired' ELSE status END, attempts,
    next_attempt_at, provider, provider_id, NULL, created_at, sent_at, delivery_status, delivered_at
FROM notices;
DROP TABLE notices;
DROP TABLE step_texts;
ALTER TABLE notices_v2 RENAME TO notices;
-- One notice per person, step and channel; also answers "was this person told?".
CREATE UNIQUE INDEX notices_recipient ON notices (outage_id, channel, recipient_bidx, step_id);
-- Partial indexes: a fresh notice costs one entry in the due index and nothing else.
CREATE INDEX notices_due ON notices (channel, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX notices_leases ON notices (claimed_until) WHERE status = 'sending';
CREATE INDEX notices_provider_id ON notices (provider, provider_id) WHERE provider_id IS NOT NULL;
