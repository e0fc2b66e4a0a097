-- Tenants (utility companies) and the services they run.
CREATE TABLE tenants (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    sms_sender_id TEXT NOT NULL,
    languages TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    privacy_contact TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tenant_services (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    PRIMARY KEY (tenant_id, service)
);

-- Bearer tokens for the CIS, the OMS and admins; only a hash is kept.
CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Grid topology: a node takes every facility below it.
CREATE TABLE grid_nodes (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, node_id)
);

-- Facilities as the CIS reports them. customer_number is NULL after a move-out until the
-- next holder is reported.
CREATE TABLE facilities (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    facility_number TEXT NOT NULL,
    customer_number TEXT,
    street TEXT NOT NULL,
    house_number TEXT NOT NULL,
    entrance TEXT,
    postcode TEXT NOT NULL,
    town TEXT NOT NULL,
    latitude DOUBLE PRECISION,
    longitude DOUBLE PRECISION,
    grid_node TEXT,
    holder_name TEXT,
    postal_street TEXT,
    postal_postcode TEXT,
    postal_town TEXT,
    postal_country TEXT,
    language TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, service, facility_number)
);
CREATE INDEX facilities_postcode ON facilities (tenant_id, postcode);
CREATE INDEX facilities_grid_node ON facilities (tenant_id, grid_node);

-- What a household registered for one facility. Contact values are sealed (see crypto.rs);
-- *_bidx is the keyed blind index used for lookup and dedupe.
CREATE TABLE subscriptions (
    facility_id BIGINT PRIMARY KEY REFERENCES facilities(id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone_ct BYTEA,
    phone_key BIGINT,
    phone_bidx BYTEA,
    email_ct BYTEA,
    email_key BIGINT,
    email_bidx BYTEA,
    email_verified_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_phone ON subscriptions (tenant_id, phone_bidx);
CREATE INDEX subscriptions_email ON subscriptions (tenant_id, email_bidx);

CREATE TABLE email_verifications (
    token_hash BYTEA PRIMARY KEY,
    facility_id BIGINT NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    email_bidx BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- A household's signed-in session after proving the invoice pair.
CREATE TABLE registration_sessions (
    token_hash BYTEA PRIMARY KEY,
    facility_id BIGINT NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Life-cycle events of facilities (move-out, new holder). No personal data here.
CREATE TABLE facility_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    facility_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    subscription_erased BIGINT NOT NULL,
    at BIGINT NOT NULL
);
