-- Wrong sign-in guesses, counted per facility and per client in ten-minute buckets, so that
-- every instance sharing the database guards a facility under attack alike (src/throttle.rs).
-- `key` is a keyed hash (HMAC under the key file's index key) of the tenant, service and
-- facility number, or of the client's address prefix: the table names neither. The sessions
-- retention job deletes buckets older than the hour they are counted over.
CREATE TABLE wrong_guesses (
    key BLOB NOT NULL,
    bucket INTEGER NOT NULL,
    guesses INTEGER NOT NULL,
    PRIMARY KEY (key, bucket)
) WITHOUT ROWID;
CREATE INDEX wrong_guesses_bucket ON wrong_guesses (bucket);
