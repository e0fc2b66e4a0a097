-- A token may expire; its last use is kept (to the minute) so an admin sees which tokens
-- are still in use before revoking one.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
