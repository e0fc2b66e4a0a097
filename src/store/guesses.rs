//! Wrong sign-in guesses per facility and per client, in time buckets, shared by every
//! instance on the database (the rules are in `crate::throttle`). Keys are keyed hashes the
//! caller makes; the store neither knows nor needs what they stand for.

use sqlx::Row;

use super::retention::CHUNK;
use super::{Store, on_pool};

/// What was counted under a facility's key and a client's key since a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuessCounts {
    pub facility: i64,
    pub client: i64,
    /// The latest bucket the client guessed wrong in; None when it has not.
    pub client_latest: Option<i64>,
}

impl Store {
    /// Wrong guesses under `facility` and under `client` in buckets from `since` on.
    pub async fn wrong_guesses(
        &self,
        facility: &[u8],
        client: &[u8],
        since: i64,
    ) -> anyhow::Result<GuessCounts> {
        let rows: Vec<(Vec<u8>, i64, i64)> = on_pool!(self, pool => {
            sqlx::query(
                "SELECT key, CAST(SUM(guesses) AS BIGINT) AS guesses, MAX(bucket) AS latest
                 FROM wrong_guesses WHERE key IN ($1, $2) AND bucket >= $3 GROUP BY key",
            )
            .bind(facility)
            .bind(client)
            .bind(since)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("guesses")?, r.try_get("latest")?)))
            .collect::<Result<_, sqlx::Error>>()?
        });
        let mut counts = GuessCounts::default();
        for (key, guesses, latest) in rows {
            if key == facility {
                counts.facility = guesses;
            } else {
                counts.client = guesses;
                counts.client_latest = Some(latest);
            }
        }
        Ok(counts)
    }

    /// Counts one wrong guess under both keys in `bucket`.
    pub async fn add_wrong_guess(
        &self,
        facility: &[u8],
        client: &[u8],
        bucket: i64,
    ) -> anyhow::Result<()> {
        let _writer = self.writer().await;
        on_pool!(self, pool => {
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
