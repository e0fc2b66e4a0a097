-- A tenant's own notice texts, replacing our defaults per service, step group, language and
-- channel.
CREATE TABLE message_templates (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    step_group TEXT NOT NULL,
    language TEXT NOT NULL,
    channel TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, service, step_group, language, channel)
);
