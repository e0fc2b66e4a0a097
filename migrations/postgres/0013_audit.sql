-- The audit trail: every read of a household's contact data through the API, every change,
-- erasure and retention run, one row each, holding no contact data. Each row's hash covers
-- the previous row's hash, so a changed or missing row breaks the chain (`varsel audit
-- verify`). Ids are given by the writer (head + 1), not by a sequence: a rolled-back append
-- must not leave a gap that looks like a deleted row.
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    -- NULL for entries about no one tenant (a retention run over all of them).
    tenant_id BIGINT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    -- JSON of counts and flags, kept as the exact text that was hashed (not JSONB, which
    -- would reorder it).
    details TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- The end of the chain. Appends lock it (SELECT ... FOR UPDATE) inside their own
-- transaction, which keeps writers of every instance in one line; verify compares the
-- chain's last row with it, so a deleted last row shows too.
CREATE TABLE audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id BIGINT NOT NULL,
    last_hash BYTEA NOT NULL
);
INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Append-only for the service; whoever can drop this trigger can also rewrite rows, which
-- is what the hash chain is there to show.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
