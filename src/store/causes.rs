//! A tenant's cause catalogue: its own codes and its own texts for ours (see
//! `domain::cause` for how they overlay the built-in ones).

use sqlx::Row;

use super::outages::parse_stored;
use super::{Store, now, on_pool};
use crate::domain::cause::{Catalogue, CauseCode, CauseTexts};

impl Store {
    /// Our codes with the tenant's texts and codes over them.
    pub async fn cause_catalogue(&self, tenant_id: i64) -> anyhow::Result<Catalogue> {
        let own = on_pool!(self, pool => {
            let mut own: Vec<(CauseCode, CauseTexts)> = Vec::new();
            for r in sqlx::query("SELECT code, texts FROM causes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?
            {
                own.push((
                    parse_stored(r.try_get("code")?)?,
                    serde_json::from_str(&r.try_get::<String, _>("texts")?)?,
                ));
            }
            own
        });
        Ok(Catalogue::new(own))
    }

    /// Creates the tenant's code, or replaces its texts for a code it has or one of ours.
    pub async fn put_cause(
        &self,
        tenant_id: i64,
        code: &CauseCode,
        texts: &CauseTexts,
    ) -> anyhow::Result<()> {
        let texts = serde_json::to_string(texts)?;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO causes (tenant_id, code, texts, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, code) DO UPDATE SET texts = excluded.texts, updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(code.as_str())
            .bind(&texts)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes the tenant's code or its texts for one of ours; false when it had none.
    pub async fn delete_cause(&self, tenant_id: i64, code: &CauseCode) -> anyhow::Result<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query("DELETE FROM causes WHERE tenant_id = $1 AND code = $2")
                .bind(tenant_id)
                .bind(code.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
