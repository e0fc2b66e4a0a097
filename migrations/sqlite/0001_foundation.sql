-- Tenants (utility companies) and the services they run.
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    sms_sender_id TEXT NOT NULL,
    languages TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    privacy_contact TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE tenant_services (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    PRIMARY KEY (tenant_id, service)
);

-- Bearer tokens for the CIS, the OMS and admins; only a hash is kept.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Grid topology: a node takes every facility below it.
CREATE TABLE grid_nodes (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, node_id)
);

-- Facilities as the CIS reports them. customer_number is NULL after a move-out until the
-- next holder is reported.
CREATE TABLE facilities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    facility_number TEXT NOT NULL,
    customer_number TEXT,
    street TEXT NOT NULL,
    house_number TEXT NOT NULL,
    entrance TEXT,
    postcode TEXT NOT NULL,
    town TEXT NOT NULL,
    latitude REAL,
    longitude REAL,
    grid_node TEXT,
    holder_name TEXT,
    postal_street TEXT,
    postal_postcode TEXT,
    postal_town TEXT,
    postal_country TEXT,
    language TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, service, facility_number)
);
CREATE INDEX facilities_postcode ON facilities (tenant_id, postcode);
CREATE INDEX facilities_grid_node ON facilities (tenant_id, grid_node);

-- What a household registered for one facility. Contact values are sealed (see crypto.rs);
-- *_bidx is the keyed blind index used for lookup and dedupe.
CREATE TABLE subscriptions (
    facility_id INTEGER PRIMARY KEY REFERENCES facilities(id) ON DELETE CASCADE,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone_ct BLOB,
    phone_key INTEGER,
    phone_bidx BLOB,
    email_ct BLOB,
    email_key INTEGER,
    email_bidx BLOB,
    email_verified_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX subscriptions_phone ON subscriptions (tenant_id, phone_bidx);
CREATE INDEX subscriptions_email ON subscriptions (tenant_id, email_bidx);

CREATE TABLE email_verifications (
    token_hash BLOB PRIMARY KEY,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    email_bidx BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

-- A household's signed-in session after proving the invoice pair.
CREATE TABLE registration_sessions (
    token_hash BLOB PRIMARY KEY,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Life-cycle events of facilities (move-out, new holder). No personal data here.
CREATE TABLE facility_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    subscription_erased INTEGER NOT NULL,
    at INTEGER NOT NULL
);
