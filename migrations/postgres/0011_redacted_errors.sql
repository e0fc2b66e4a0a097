-- Provider and mail-server answers used to be kept as they came, and they quote the
-- recipient's number or address. SQL cannot redact them well, so what is stored is dropped:
-- each notice keeps its status, and a pause keeps its time but not its reason.
UPDATE notices SET last_error = NULL WHERE last_error IS NOT NULL;
UPDATE provider_pauses SET reason = 'unknown (recorded before errors were redacted)';
