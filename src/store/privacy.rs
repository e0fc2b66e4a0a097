//! When each version of a tenant's records of processing was first produced.

use super::{Store, on_pool};

impl Store {
    /// The time `version` of the tenant's record was first produced: now, the first time it
    /// is asked for, and the same answer ever after (on every instance, however many race).
    pub async fn privacy_version_date(
        &self,
        tenant_id: i64,
        version: &str,
        now: i64,
    ) -> anyhow::Result<i64> {
        let select =
            "SELECT first_produced_at FROM privacy_notices WHERE tenant_id = $1 AND version = $2";
        let at = on_pool!(self, pool => {
            // A public page asks on every view: read first, so views are not writes.
            let known: Option<i64> = sqlx::query_scalar(select)
                .bind(tenant_id)
                .bind(version)
                .fetch_optional(pool)
                .await?;
            match known {
                Some(at) => at,
                None => {
                    sqlx::query(
                        "INSERT INTO privacy_notices (tenant_id, version, first_produced_at) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant_id)
                    .bind(version)
                    .bind(now)
                    .execute(pool)
                    .await?;
                    sqlx::query_scalar(select)
                        .bind(tenant_id)
                        .bind(version)
                        .fetch_one(pool)
                        .await?
                }
            }
        });
        Ok(at)
    }
}
