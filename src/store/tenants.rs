//! Tenants, their services and their API tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::Row;

use super::audit::append_audit;
use super::{Store, now, on_pool};
use crate::crypto::{Keyring, Sealed};
use crate::domain::audit::{Action, Actor, NewEntry};
use crate::domain::language::Language;
use crate::domain::scope::Scope;
use crate::domain::sender_id::SenderId;
use crate::domain::service::ServiceKind;

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub sms_sender_id: SenderId,
    pub languages: Vec<Language>,
    pub time_zone: String,
    pub privacy_contact: String,
    pub services: Vec<ServiceKind>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub sms_sender_id: String,
    pub languages: Vec<Language>,
    pub time_zone: String,
    pub privacy_contact: String,
    pub services: Vec<ServiceKind>,
}

impl Tenant {
    /// The language used when nothing better is known (first configured one).
    /// The tenant's time zone, in which its households read every time.
    pub fn zone(&self) -> anyhow::Result<jiff::tz::TimeZone> {
        jiff::tz::TimeZone::get(&self.time_zone).map_err(|e| {
            anyhow::anyhow!(
                "tenant {} has the time zone {:?}, which is unknown: {e}",
                self.slug,
                self.time_zone
            )
        })
    }

    pub fn default_language(&self) -> Language {
        self.languages.first().copied().unwrap_or(Language::En)
    }
}

#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub token_id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// A token as an admin lists it: never its secret.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenListing {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, to the minute; null when never used.
    pub last_used_at: Option<i64>,
    /// Unix seconds; null for a token that does not expire.
    pub expires_at: Option<i64>,
    /// Unix seconds; null while the token is live.
    pub revoked_at: Option<i64>,
}

/// How often a token's last use is written: a request a minute at most per token, so a busy
/// OMS does not turn every call into a write.
const LAST_USE_GRANULARITY: i64 = 60;

fn join<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A stored list read back. A value this build does not know is an error rather than left
/// out: a tenant quietly losing a language, or a token a scope, would go unnoticed.
fn split<T: std::str::FromStr>(text: &str, what: &str) -> anyhow::Result<Vec<T>> {
    text.split(',')
        .map(|s| {
            s.parse()
                .map_err(|_| anyhow::anyhow!("a stored {what} {s:?} is not one this build knows"))
        })
        .collect()
}

impl Store {
    /// Creates a tenant with its services. A taken slug is an error the caller reports.
    /// Audited as `tenant.created`.
    pub async fn create_tenant(&self, t: &NewTenant, actor: &Actor) -> anyhow::Result<Tenant> {
        let langs = join(t.languages.iter().map(|l| l.as_str()));
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let id: i64 = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO tenants (slug, name, sms_sender_id, languages, time_zone, privacy_contact, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&t.slug)
            .bind(&t.name)
            .bind(t.sms_sender_id.as_str())
            .bind(&langs)
            .bind(&t.time_zone)
            .bind(&t.privacy_contact)
            .bind(now())
            .fetch_one(&mut *tx)
            .await?;
            for s in &t.services {
                sqlx::query("INSERT INTO tenant_services (tenant_id, service) VALUES ($1, $2)")
                    .bind(id)
                    .bind(s.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let entry = NewEntry::new(Some(id), actor, Action::TenantCreated)
                .subject(format!("tenant:{id}"))
                .details(serde_json::json!({ "slug": t.slug }));
            append_audit!(&mut *tx, self, &[entry]);
            tx.commit().await?;
            id
        });
        self.tenant_by_id(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("tenant {id} vanished right after it was created"))
    }

    pub async fn tenant_slug_taken(&self, slug: &str) -> anyhow::Result<bool> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE slug = $1")
                .bind(slug)
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }

    pub async fn tenant_by_id(&self, id: i64) -> anyhow::Result<Option<Tenant>> {
        self.tenant_where("id = $1", TenantKey::Id(id)).await
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> anyhow::Result<Option<Tenant>> {
        self.tenant_where("slug = $1", TenantKey::Slug(slug)).await
    }

    /// The tenant a household's sign-in or page names, from `TenantCache` when it was read
    /// lately. Staff, CLI and API-token paths read it fresh (`tenant_by_slug`).
    pub async fn household_tenant(&self, slug: &str) -> anyhow::Result<Option<Tenant>> {
        if let Some(t) = self.tenant_cache.get(slug) {
            return Ok(Some(t));
        }
        let found = self
            .tenant_where("slug = $1", TenantKey::Slug(slug))
            .await?;
        if let Some(t) = &found {
            self.tenant_cache.put(t);
        }
        Ok(found)
    }

    /// The tenant of a household's session, from `TenantCache` when it was read lately.
    pub async fn household_tenant_by_id(&self, id: i64) -> anyhow::Result<Option<Tenant>> {
        if let Some(t) = self.tenant_cache.get_by_id(id) {
            return Ok(Some(t));
        }
        let found = self.tenant_by_id(id).await?;
        if let Some(t) = &found {
            self.tenant_cache.put(t);
        }
        Ok(found)
    }

    pub async fn list_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        let ids: Vec<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM tenants ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.tenant_by_id(id).await?);
        }
        Ok(out)
    }

    async fn tenant_where(&self, cond: &str, key: TenantKey<'_>) -> anyhow::Result<Option<Tenant>> {
        // One query, one row per service: every sign-in looks its tenant up, and each
        // round trip to the database is a large part of a sign-in's cost (bench/load.sh).
        let sql = format!(
            "SELECT t.id, t.slug, t.name, t.sms_sender_id, t.languages, t.time_zone, t.privacy_contact, s.service
             FROM tenants t LEFT JOIN tenant_services s ON s.tenant_id = t.id WHERE t.{cond}"
        );
        let found = on_pool!(self, pool => {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            let q = match key {
                TenantKey::Id(id) => q.bind(id),
                TenantKey::Slug(s) => q.bind(s.to_string()),
            };
            let rows = q.fetch_all(pool).await?;
            match rows.first() {
                None => None,
                Some(row) => {
                    let mut services = Vec::with_capacity(rows.len());
                    for r in &rows {
                        services.extend(r.try_get::<Option<String>, _>("service")?);
                    }
                    Some((
                        Tenant {
                            id: row.try_get("id")?,
                            slug: row.try_get("slug")?,
                            name: row.try_get("name")?,
                            sms_sender_id: row.try_get("sms_sender_id")?,
                            languages: split(&row.try_get::<String, _>("languages")?, "language")?,
                            time_zone: row.try_get("time_zone")?,
                            privacy_contact: row.try_get("privacy_contact")?,
                            services: Vec::new(),
                        },
                        services,
                    ))
                }
            }
        });
        let Some((mut tenant, services)) = found else {
            return Ok(None);
        };
        // Electricity first, as households expect, rather than alphabetical.
        let mut kinds: Vec<ServiceKind> = split(&services.join(","), "service")?;
        kinds.sort_by_key(|k| ServiceKind::all().iter().position(|x| x == k));
        tenant.services = kinds;
        Ok(Some(tenant))
    }

    /// Stores a token's hash (never the token) with its scopes. Audited as `token.created`.
    pub async fn create_token(
        &self,
        tenant_id: i64,
        name: &str,
        scopes: &[Scope],
        token_hash: &[u8],
        expires_at: Option<i64>,
        actor: &Actor,
    ) -> anyhow::Result<i64> {
        let scope_list: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let scopes = join(&scope_list);
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (tenant_id, name, token_hash, scopes, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(token_hash)
            .bind(&scopes)
            .bind(now())
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?;
            let entry = NewEntry::new(Some(tenant_id), actor, Action::TokenCreated)
                .subject(format!("token:{id}"))
                .details(serde_json::json!({ "name": name, "scopes": scope_list, "expires_at": expires_at }));
            append_audit!(&mut *tx, self, &[entry]);
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// The live token with this hash (not revoked, not expired); its last use is noted.
    pub async fn token_by_hash(&self, token_hash: &[u8]) -> anyhow::Result<Option<TokenInfo>> {
        let t = now();
        let info = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, tenant_id, name, scopes, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(token_hash)
            .bind(t)
            .fetch_optional(pool)
            .await?;
            if let Some(r) = &row
                && r.try_get::<Option<i64>, _>("last_used_at")?.is_none_or(|u| u <= t - LAST_USE_GRANULARITY)
            {
                let _writer = self.writer().await;
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(t)
                    .bind(r.try_get::<i64, _>("id")?)
                    .execute(pool)
                    .await?;
            }
            match row {
                None => None,
                Some(row) => Some(TokenInfo {
                    token_id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    scopes: split(&row.try_get::<String, _>("scopes")?, "scope")?,
                }),
            }
        });
        Ok(info)
    }

    /// Whether any token, live or not, has this hash.
    pub async fn token_hash_known(&self, token_hash: &[u8]) -> anyhow::Result<bool> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }

    /// The tenant's tokens, newest first, revoked and expired ones too.
    pub async fn list_tokens(&self, tenant_id: i64) -> anyhow::Result<Vec<TokenListing>> {
        let list = on_pool!(self, pool => {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT id, name, scopes, created_at, last_used_at, expires_at, revoked_at FROM api_tokens
                 WHERE tenant_id = $1 ORDER BY id DESC",
            )
            .bind(tenant_id)
            .fetch_all(pool)
            .await?
            {
                out.push(TokenListing {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    scopes: split(&r.try_get::<String, _>("scopes")?, "scope")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                });
            }
            out
        });
        Ok(list)
    }

    /// Revokes a token of this tenant; false when there is no such live token. Audited as
    /// `token.revoked` when it was.
    pub async fn revoke_token(
        &self,
        tenant_id: i64,
        token_id: i64,
        actor: &Actor,
    ) -> anyhow::Result<bool> {
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let n = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let n = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
                .bind(now())
                .bind(token_id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                let entry = NewEntry::new(Some(tenant_id), actor, Action::TokenRevoked)
                    .subject(format!("token:{token_id}"));
                append_audit!(&mut *tx, self, &[entry]);
            }
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }
}

impl Store {
    /// Makes the tenant's data key usable in `keyring`: read and unwrapped, or on the
    /// tenant's first sealed value made, stored wrapped and then read back (so of two
    /// instances making one at once, both use the one stored). Call it before taking the
    /// store's write lock.
    pub async fn ensure_tenant_key(&self, keyring: &Keyring, tenant_id: i64) -> anyhow::Result<()> {
        if keyring.has_tenant_key(tenant_id) {
            return Ok(());
        }
        let wrapped = match self.wrapped_tenant_key(tenant_id).await? {
            Some(w) => w,
            None => {
                let fresh = keyring.new_tenant_key(tenant_id);
                {
                    let _writer = self.writer().await;
                    on_pool!(self, pool => {
                        sqlx::query(
                            "INSERT INTO tenant_keys (tenant_id, key_ct, key_key, created_at) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (tenant_id) DO NOTHING",
                        )
                        .bind(tenant_id)
                        .bind(&fresh.ciphertext)
                        .bind(fresh.key_id)
                        .bind(now())
                        .execute(pool)
                        .await
                        .with_context(|| format!("cannot store a data key for tenant {tenant_id}"))?;
                    });
                }
                self.wrapped_tenant_key(tenant_id).await?.with_context(|| {
                    format!("tenant {tenant_id} has no data key right after one was stored")
                })?
            }
        };
        keyring
            .install_tenant_key(tenant_id, &wrapped)
            .with_context(|| {
                format!("the data key of tenant {tenant_id} cannot be unwrapped with the key file")
            })?;
        Ok(())
    }

    /// The tenant's data key as stored, wrapped with a key of the key file.
    pub async fn wrapped_tenant_key(&self, tenant_id: i64) -> anyhow::Result<Option<Sealed>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query("SELECT key_ct, key_key FROM tenant_keys WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(pool)
                .await?;
            match row {
                None => None,
                Some(r) => Some(Sealed { key_id: r.try_get("key_key")?, ciphertext: r.try_get("key_ct")? }),
            }
        });
        Ok(found)
    }

    /// Deletes a tenant and everything of it, its data key first, in one transaction: what
    /// is left of its sealed values elsewhere (replicas, dead rows, backups taken after the
    /// last rotation that retired the file key wrapping it) no longer opens. Audited as
    /// `tenant.deleted`. False when there is no such tenant. A running service that still
    /// holds the key in memory keeps it until it stops; run it with the service stopped.
    pub async fn delete_tenant(&self, tenant_id: i64, actor: &Actor) -> anyhow::Result<bool> {
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let deleted = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let key = sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let n = sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                let entry = NewEntry::new(Some(tenant_id), actor, Action::TenantDeleted)
                    .subject(format!("tenant:{tenant_id}"))
                    .details(serde_json::json!({ "data_key_deleted": key == 1 }));
                append_audit!(&mut *tx, self, &[entry]);
            }
            tx.commit().await?;
            n == 1
        });
        self.tenant_cache.forget(tenant_id);
        Ok(deleted)
    }
}

/// Tenants by slug for the household routes (`Store::household_tenant`, `..._by_id`), kept briefly because
/// every sign-in and every household page looks its tenant up. A tenant's row never changes once created (there is no update, and deletion is
/// done with the service stopped), so an entry goes stale only when another instance deletes
/// its tenant, or deletes it and gives the slug to a new one: it is kept `TENANT_TTL` at most.
/// Only tenants that exist are kept, so made-up slugs cannot fill it.
#[derive(Default)]
pub(crate) struct TenantCache(std::sync::Mutex<HashMap<String, (Instant, Tenant)>>);

const TENANT_TTL: Duration = Duration::from_secs(10);
const TENANT_CACHE_MAX: usize = 1024;

impl TenantCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Tenant)>> {
        // Nothing panics while holding it, so a poisoned map is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, slug: &str) -> Option<Tenant> {
        let map = self.map();
        let (at, t) = map.get(slug)?;
        (at.elapsed() < TENANT_TTL).then(|| t.clone())
    }

    /// By id: a scan, as a service holds a handful of tenants (at most `TENANT_CACHE_MAX`).
    fn get_by_id(&self, id: i64) -> Option<Tenant> {
        let map = self.map();
        map.values()
            .find(|(at, t)| t.id == id && at.elapsed() < TENANT_TTL)
            .map(|(_, t)| t.clone())
    }

    fn put(&self, t: &Tenant) {
        let mut map = self.map();
        if map.len() >= TENANT_CACHE_MAX {
            map.retain(|_, (at, _)| at.elapsed() < TENANT_TTL);
            if map.len() >= TENANT_CACHE_MAX {
                map.clear();
            }
        }
        map.insert(t.slug.clone(), (Instant::now(), t.clone()));
    }

    fn forget(&self, tenant_id: i64) {
        self.map().retain(|_, (_, t)| t.id != tenant_id);
    }
}

enum TenantKey<'a> {
    Id(i64),
    Slug(&'a str),
}

/// A tenant's own notice text for one service, step group, language and channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TemplateRow {
    pub service: String,
    pub step_group: String,
    pub language: String,
    pub channel: String,
    pub subject: Option<String>,
    pub body: String,
}

impl Store {
    pub async fn templates(
        &self,
        tenant_id: i64,
        service: Option<&str>,
    ) -> anyhow::Result<Vec<TemplateRow>> {
        let rows = on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT service, step_group, language, channel, subject, body FROM message_templates
                 WHERE tenant_id = $1 AND ($2 IS NULL OR service = $2) ORDER BY service, step_group, language, channel",
            )
            .bind(tenant_id)
            .bind(service)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(TemplateRow {
                    service: r.try_get("service")?,
                    step_group: r.try_get("step_group")?,
                    language: r.try_get("language")?,
                    channel: r.try_get("channel")?,
                    subject: r.try_get("subject")?,
                    body: r.try_get("body")?,
                });
            }
            out
        });
        Ok(rows)
    }

    pub async fn put_template(&self, tenant_id: i64, t: &TemplateRow) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO message_templates (tenant_id, service, step_group, language, channel, subject, body, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant_id, service, step_group, language, channel)
                 DO UPDATE SET subject = excluded.subject, body = excluded.body, updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(&t.service)
            .bind(&t.step_group)
            .bind(&t.language)
            .bind(&t.channel)
            .bind(&t.subject)
            .bind(&t.body)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes a tenant's text so our default applies again; false when there was none.
    pub async fn delete_template(
        &self,
        tenant_id: i64,
        service: &str,
        group: &str,
        language: &str,
        channel: &str,
    ) -> anyhow::Result<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM message_templates WHERE tenant_id = $1 AND service = $2 AND step_group = $3 AND language = $4 AND channel = $5",
            )
            .bind(tenant_id)
            .bind(service)
            .bind(group)
            .bind(language)
            .bind(channel)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }
}
