-- The audit trail: every read of a household's contact data through the API, every change,
-- erasure and retention run, one row each, holding no contact data. Each row's hash covers
-- the previous row's hash, so a changed or missing row breaks the chain (`varsel audit
-- verify`). Ids are given by the writer (head + 1), not by a sequence: a rolled-back append
-- must not leave a gap that looks like a deleted row.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    -- NULL for entries about no one tenant (a retention run over all of them).
    tenant_id INTEGER,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    -- JSON of counts and flags, kept as the exact text that was hashed.
    details TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- The end of the chain. Appends read and move it inside their own transaction, which is what
-- keeps concurrent writers in one line; verify compares the chain's last row with it, so a
-- deleted last row shows too.
CREATE TABLE audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL,
    last_hash BLOB NOT NULL
);
INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, 0, zeroblob(32));

-- Append-only for the service; whoever can drop these triggers can also rewrite rows, which
-- is what the hash chain is there to show.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
