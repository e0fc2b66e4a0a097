-- The customer number is half of a household's sign-in credential and sign-in only needs
-- equality, so it is kept as the keyring's blind index over (tenant, "customer_number", the
-- normalised number). The holder's name and postal address are sealed as one JSON document
-- (associated data facilities:holder:<id>), with the id of the key that sealed it so key
-- rotation can find it. The clear columns (customer_number, holder_name, postal_*) stay in
-- the schema only so that the startup pass, which needs the key file, can convert rows that
-- older versions wrote; it NULLs them, and nothing writes them any more.
ALTER TABLE facilities ADD COLUMN customer_bidx BYTEA;
ALTER TABLE facilities ADD COLUMN holder_ct BYTEA;
ALTER TABLE facilities ADD COLUMN holder_key BIGINT;

-- Each tenant's own data key (crypto-shredding): 32 random bytes, hex, sealed (wrapped) with
-- the key file's current key under associated data tenant_keys:key:<tenant id>. Values of
-- the tenant are sealed with a key derived from it (HKDF-SHA256) and carry key id
-- -<tenant id>. Deleting the tenant deletes this row first, in the same transaction as its
-- other rows, and what is left anywhere of its sealed values no longer opens.
CREATE TABLE tenant_keys (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    key_ct BYTEA NOT NULL,
    key_key BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
