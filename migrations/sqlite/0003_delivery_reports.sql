-- Delivery reports from the providers, matched by the provider's message id.
ALTER TABLE notices ADD COLUMN delivery_status TEXT;
ALTER TABLE notices ADD COLUMN delivered_at INTEGER;
CREATE INDEX notices_provider_id ON notices (provider, provider_id);
