//! Guessing the invoice pair is slowed in two ways, and neither can lock a household out.
//!
//! **Attempts per client** (`registration.attempts_per_client_per_minute`): every sign-in
//! attempt, right or wrong, spends from its client's budget, a GCRA bucket (`governor`): the
//! whole budget at once, then one attempt back every 60/N seconds. A client is an IPv4
//! address or an IPv6 /64, taken from the socket or from behind the trusted proxies
//! (`domain::client`). The budgets live in memory, per instance: this is the cheap first
//! gate that keeps a flood away from the database. Memory stays bounded: every
//! `RETAIN_EVERY` attempts the budgets that are full again (indistinguishable from a new
//! one) are dropped, shard by shard rather than under one lock; and once `MAX_CLIENTS`
//! budgets are held, a client not yet among them spends from one shared overflow budget
//! until room is made. Clients already known keep their own, so a guesser rotating through
//! more prefixes than that throttles mostly itself.
//!
//! **Wrong guesses per facility** (`registration.attempts_per_facility_per_hour`): a wrong
//! pair (an unknown facility number is one too, so the limit tells nothing about which
//! numbers exist) is counted in the store under the facility and under the client, in
//! ten-minute buckets over the last hour (60 to 70 minutes: the current bucket and the six
//! before it). Every instance sharing a PostgreSQL database reads the same counts. Once a
//! facility has taken that many wrong guesses it is *guarded*: a client that has itself
//! guessed wrong within the hour, at any facility, is refused there (429, `Retry-After`
//! until its own wrong guesses age out), while a client with none may still try, and the
//! right pair lets it in.
//!
//! Why a guard and not a lock: a lock on the facility after ten wrong guesses from anyone
//! let anybody keep a household out of its own registration by guessing at its facility
//! number. With the guard the household, signing in from its own address with the right
//! pair, passes; a guesser gets at most one wrong guess per prefix per hour at a guarded
//! facility, so guessing one household's customer number takes as many prefixes as
//! guesses. A household that mistypes while its facility is guarded waits until its own
//! mistake ages out, and the answer says how long. Correct sign-ins reset nothing: a guesser
//! could otherwise clean its record by signing in to a facility of its own.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};

use crate::config::RegistrationConfig;
use crate::crypto::Keyring;
use crate::domain::client::ClientPrefix;
use crate::domain::ids::FacilityNumber;
use crate::domain::service::ServiceKind;
use crate::store::{FacilityAuth, GuessCounts, Store};

/// Budgets held at most: about 30 bytes each, so a few megabytes. More distinct clients
/// than this within a minute is a flood from many networks, not households.
const MAX_CLIENTS: usize = 200_000;
/// Attempts between sweeps of the budgets that are full again: at most this many budgets
/// are added between two sweeps, and a sweep's cost is spread over as many attempts.
const RETAIN_EVERY: u64 = 1024;

/// Wrong guesses are counted in buckets of this many seconds...
const BUCKET_SECS: i64 = 600;
/// ...over the current bucket and this many before it: an hour at least.
const WINDOW_BUCKETS: i64 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Budget {
    Client(ClientPrefix),
    Overflow,
}

/// The budgets, shared between the limiter and the throttle, which needs to know whether a
/// client already has one before the limiter would add it.
#[derive(Clone, Default)]
struct Budgets(Arc<DashMapStateStore<Budget>>);

impl StateStore for Budgets {
    type Key = Budget;
    fn measure_and_replace<T, F, E>(&self, key: &Budget, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Budget> for Budgets {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }
    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The in-memory attempts per client.
pub struct Throttle<C: Clock = DefaultClock> {
    limiter: RateLimiter<Budget, Budgets, C, NoOpMiddleware<C::Instant>>,
    budgets: Budgets,
    attempts: AtomicU64,
    max_clients: usize,
    retain_every: u64,
}

impl Throttle {
    pub fn new(cfg: &RegistrationConfig) -> anyhow::Result<Self> {
        let per_minute = NonZeroU32::new(cfg.attempts_per_client_per_minute).ok_or_else(|| {
            anyhow::anyhow!("registration.attempts_per_client_per_minute must be at least 1")
        })?;
        Ok(Self::with_clock(
            Quota::per_minute(per_minute),
            DefaultClock::default(),
            MAX_CLIENTS,
            RETAIN_EVERY,
        ))
    }
}

impl<C: Clock> Throttle<C> {
    fn with_clock(quota: Quota, clock: C, max_clients: usize, retain_every: u64) -> Self {
        let budgets = Budgets::default();
        Self {
            limiter: RateLimiter::new(quota, budgets.clone(), clock),
            budgets,
            attempts: AtomicU64::new(0),
            max_clients,
            retain_every,
        }
    }

    /// Spends one attempt from `client`'s budget; `Err(wait)` (whole seconds, at least one)
    /// when it is spent.
    pub fn attempt(&self, client: ClientPrefix) -> Result<(), Duration> {
        if self.attempts.fetch_add(1, Ordering::Relaxed) % self.retain_every
            == self.retain_every - 1
        {
            self.limiter.retain_recent();
        }
        let mut budget = Budget::Client(client);
        if self.budgets.0.len() >= self.max_clients && !self.budgets.0.contains_key(&budget) {
            budget = Budget::Overflow;
        }
        self.limiter.check_key(&budget).map_err(|refused| {
            let wait = refused.wait_time_from(self.limiter.clock().now());
            Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                .max(Duration::from_secs(1))
        })
    }

    /// How many budgets are held (for the tests of the bound).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.budgets.0.len()
    }
}

/// What the store counts one sign-in's wrong guesses under: keyed hashes (the blind index
/// key), so the table names neither a facility number nor an address.
pub struct GuessKeys {
    facility: Vec<u8>,
    client: Vec<u8>,
}

impl GuessKeys {
    pub fn new(
        keyring: &Keyring,
        tenant_id: i64,
        service: ServiceKind,
        facility: &FacilityNumber,
        client: ClientPrefix,
    ) -> Self {
        Self {
            facility: keyring.blind_index(
                tenant_id,
                "wrong_guesses:facility",
                &format!("{}:{}", service.as_str(), facility.as_str()),
            ),
            // Under no tenant (0 is none's id): a client guessing at one utility of a shared
            // instance is the same client at the next.
            client: keyring.blind_index(0, "wrong_guesses:client", &client.to_string()),
        }
    }
}

fn bucket(now: i64) -> i64 {
    now.div_euclid(BUCKET_SECS)
}

/// The first bucket still counted at `now`; the sessions retention job deletes the ones
/// before it.
pub fn first_counted_bucket(now: i64) -> i64 {
    bucket(now) - WINDOW_BUCKETS
}

/// The facility an invoice pair names, with the wrong guesses counted against it and
/// against the client (for `admit`), read together.
pub async fn look_up(
    store: &Store,
    keys: &GuessKeys,
    tenant_id: i64,
    service: ServiceKind,
    facility: &FacilityNumber,
    now: i64,
) -> anyhow::Result<(GuessCounts, Option<FacilityAuth>)> {
    store
        .sign_in_facts(
            (&keys.facility, &keys.client),
            first_counted_bucket(now),
            tenant_id,
            service,
            facility,
        )
        .await
}

/// Whether the client may try the facility at `now`: `Err(wait)` when the facility has taken
/// `limit` wrong guesses within the hour and the client has guessed wrong itself.
pub fn admit(counts: GuessCounts, limit: u32, now: i64) -> Result<(), Duration> {
    match counts.client_latest {
        Some(latest) if counts.facility >= i64::from(limit) => {
            // The client's latest wrong guess is counted until its bucket leaves the window.
            let clean_at = (latest + WINDOW_BUCKETS + 1) * BUCKET_SECS;
            Err(Duration::from_secs((clean_at - now).max(1).unsigned_abs()))
        }
        _ => Ok(()),
    }
}

/// Counts a wrong guess (or an unknown facility) under the facility and the client.
pub async fn wrong_guess(store: &Store, keys: &GuessKeys, now: i64) -> anyhow::Result<()> {
    store
        .add_wrong_guess(&keys.facility, &keys.client, bucket(now))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::IpAddr;

    fn prefix(ip: &str) -> ClientPrefix {
        ClientPrefix::from(ip.parse::<IpAddr>().unwrap())
    }

    fn throttle(
        per_minute: u32,
        max_clients: usize,
    ) -> (Throttle<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap());
        (
            Throttle::with_clock(quota, clock.clone(), max_clients, 8),
            clock,
        )
    }

    #[test]
    fn a_client_spends_its_budget_and_gets_it_back_over_the_minute() {
        let (t, clock) = throttle(3, 100);
        let a = prefix("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(t.attempt(a), Ok(()));
        }
        assert_eq!(t.attempt(a), Err(Duration::from_secs(20)));
        assert_eq!(
            t.attempt(prefix("192.0.2.2")),
            Ok(()),
            "others are not touched"
        );
        clock.advance(Duration::from_millis(19_500));
        assert_eq!(t.attempt(a), Err(Duration::from_secs(1)), "rounded up");
        clock.advance(Duration::from_millis(500));
        assert_eq!(t.attempt(a), Ok(()));
    }

    #[test]
    fn one_ipv6_64_is_one_budget() {
        let (t, _) = throttle(2, 100);
        assert_eq!(t.attempt(prefix("2001:db8:1:2::1")), Ok(()));
        assert_eq!(t.attempt(prefix("2001:db8:1:2::2")), Ok(()));
        assert!(t.attempt(prefix("2001:db8:1:2:ffff::9")).is_err());
        assert_eq!(t.attempt(prefix("2001:db8:1:3::1")), Ok(()));
    }

    #[test]
    fn budgets_full_again_are_swept_and_their_number_is_capped() {
        let (t, clock) = throttle(2, 4);
        for i in 0..4 {
            assert_eq!(t.attempt(prefix(&format!("192.0.2.{i}"))), Ok(()));
        }
        assert_eq!(t.held(), 4);
        // At the cap, clients not yet known share one overflow budget...
        assert_eq!(t.attempt(prefix("198.51.100.1")), Ok(()));
        assert_eq!(t.attempt(prefix("198.51.100.2")), Ok(()));
        assert!(t.attempt(prefix("198.51.100.3")).is_err());
        assert_eq!(t.held(), 5, "four clients and the overflow");
        // ...while known ones keep their own.
        assert_eq!(t.attempt(prefix("192.0.2.0")), Ok(()));
        // Once budgets are full again, the next sweep (every 8 attempts here) drops them.
        clock.advance(Duration::from_secs(120));
        let allowed = (0..8)
            .filter(|_| t.attempt(prefix("192.0.2.0")).is_ok())
            .count();
        assert_eq!(allowed, 2);
        assert_eq!(t.held(), 1, "only the client still spending");
        assert_eq!(t.attempt(prefix("203.0.113.1")), Ok(()));
        assert_eq!(t.held(), 2, "a new client has its own budget again");
    }

    #[test]
    fn a_client_is_clean_once_its_latest_wrong_bucket_leaves_the_window() {
        let now = 1_700_000_123;
        let latest = bucket(now);
        assert!(latest >= first_counted_bucket(now));
        let clean_at = (latest + WINDOW_BUCKETS + 1) * BUCKET_SECS;
        assert!(latest < first_counted_bucket(clean_at));
        assert!(latest >= first_counted_bucket(clean_at - 1));
        assert!(clean_at - now >= 3600, "counted for an hour at least");
    }
}
