-- The one scheduler: every timed job is a row, claimed with a lease like an outbox row, so
-- several instances never run one twice and a job whose time passed while the service was
-- down runs at the next start. Recurring jobs move their due time on; one-off jobs are done.
CREATE TABLE scheduled_jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    -- '' for a recurring job; the subject of a one-off job (a case, an outage).
    job_key TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    every_seconds BIGINT,
    -- What the job keeps between runs (cursors), as JSON.
    state TEXT,
    claimed_until BIGINT,
    claim_token BIGINT,
    done_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, job_key)
);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (due_at) WHERE done_at IS NULL;

-- What each run did: counts per tenant, never personal data.
CREATE TABLE job_runs (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX job_runs_kind ON job_runs (kind, id);

-- Notices whose contact was erased before erasure reached notices still carry the person's
-- blind index and subscription: anonymise them now (the status and times stay).
UPDATE notices SET recipient_bidx = convert_to('anon:' || id::text, 'UTF8'), subscription_id = NULL, provider_id = NULL, last_error = NULL
WHERE subscription_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.facility_id = notices.subscription_id
                  AND (s.phone_bidx = notices.recipient_bidx OR s.email_bidx = notices.recipient_bidx));
UPDATE notices SET recipient_bidx = convert_to('anon:' || id::text, 'UTF8'), directory_id = NULL, provider_id = NULL, last_error = NULL
WHERE directory_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM directory_contacts d WHERE d.id = notices.directory_id);

-- Erasure finds the notices that name a contact through these, not by scanning the outbox.
CREATE INDEX notices_subscription ON notices (subscription_id) WHERE subscription_id IS NOT NULL;
CREATE INDEX notices_directory ON notices (directory_id) WHERE directory_id IS NOT NULL;
