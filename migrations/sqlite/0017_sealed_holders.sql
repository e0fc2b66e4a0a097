-- The customer number is half of a household's sign-in credential and sign-in only needs
-- equality, so it is kept as the keyring's blind index over (tenant, "customer_number", the
-- normalised number). The holder's name and postal address are sealed as one JSON document
-- (associated data facilities:holder:<id>), with the id of the key that sealed it so key
-- rotation can find it. The clear columns (customer_number, holder_name, postal_*) stay in
-- the schema only so that the startup pass, which needs the key file, can convert rows that
-- older versions wrote; it NULLs them, and nothing writes them any more.
ALTER TABLE facilities ADD COLUMN customer_bidx BLOB;
ALTER TABLE facilities ADD COLUMN holder_ct BLOB;
ALTER TABLE facilities ADD COLUMN holder_key INTEGER;
