//! Wrong sign-in guesses per facility and per client, in time buckets, shared by every
//! instance on the database (the rules are in `crate::throttle`). Keys are keyed hashes the
//! caller makes; the store neither knows nor needs what they stand for.

use sqlx::Row;

use super::retention::CHUNK;
use super::{FacilityAuth, Store, on_pool};
use crate::domain::ids::FacilityNumber;
use crate::domain::service::ServiceKind;

/// What was counted under a facility's key and a client's key since a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuessCounts {
    pub facility: i64,
    /// The latest bucket the client guessed wrong in; None when it has not.
    pub client_latest: Option<i64>,
}

impl Store {
    /// Wrong guesses under `facility_key` and the latest under `client_key` in buckets from
    /// `since` on, and the facility the invoice pair names: in one query, because a sign-in
    /// needs both and each round trip is a large part of its cost (bench/load.sh).
    pub async fn sign_in_facts(
        &self,
        (facility_key, client_key): (&[u8], &[u8]),
        since: i64,
        tenant_id: i64,
        service: ServiceKind,
        number: &FacilityNumber,
    ) -> anyhow::Result<(GuessCounts, Option<FacilityAuth>)> {
        let facts = on_pool!(self, pool => {
            let r = sqlx::query(
                "SELECT
                   (SELECT CAST(COALESCE(SUM(guesses), 0) AS BIGINT) FROM wrong_guesses
                     WHERE key = $1 AND bucket >= $3) AS facility_guesses,
                   (SELECT MAX(bucket) FROM wrong_guesses WHERE key = $2 AND bucket >= $3) AS client_latest,
                   f.id, f.customer_bidx
                 FROM (SELECT 1 AS one) o
                 LEFT JOIN facilities f ON f.tenant_id = $4 AND f.service = $5 AND f.facility_number = $6",
            )
            .bind(facility_key)
            .bind(client_key)
            .bind(since)
            .bind(tenant_id)
            .bind(service.as_str())
            .bind(number.as_str())
            .fetch_one(pool)
            .await?;
            let counts = GuessCounts {
                facility: r.try_get("facility_guesses")?,
                client_latest: r.try_get("client_latest")?,
            };
            let found = match r.try_get::<Option<i64>, _>("id")? {
                None => None,
                Some(id) => Some(FacilityAuth { id, customer_bidx: r.try_get("customer_bidx")? }),
            };
            (counts, found)
        });
        Ok(facts)
    }

    /// Counts one wrong guess under both keys in `bucket`; volatile (`Store::volatile`).
    pub async fn add_wrong_guess(
        &self,
        facility: &[u8],
        client: &[u8],
        bucket: i64,
    ) -> anyhow::Result<()> {
        let _writer = self.writer().await;
        on_pool!(backend &self.volatile(), pool => {
            sqlx::query(
                "INSERT INTO wrong_guesses (key, bucket, guesses) VALUES ($1, $3, 1), ($2, $3, 1)
                 ON CONFLICT (key, bucket) DO UPDATE SET guesses = wrong_guesses.guesses + 1",
            )
            .bind(facility)
            .bind(client)
            .bind(bucket)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Deletes the buckets before `bucket`, in chunks so a purge after a flood of guesses
    /// never holds SQLite's writer long; returns how many rows went.
    pub async fn delete_wrong_guesses_before(&self, bucket: i64) -> anyhow::Result<u64> {
        let mut deleted = 0;
        loop {
            let _writer = self.writer().await;
            let n = on_pool!(self, pool => {
                sqlx::query(
                    "DELETE FROM wrong_guesses WHERE (key, bucket) IN
                     (SELECT key, bucket FROM wrong_guesses WHERE bucket < $1 LIMIT $2)",
                )
                .bind(bucket)
                .bind(CHUNK)
                .execute(pool)
                .await?
                .rows_affected()
            });
            deleted += n;
            if n < CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }
}
