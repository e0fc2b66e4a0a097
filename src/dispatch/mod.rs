//! The dispatcher: claims due notices from the outbox, sends them, and records what
//! happened. Any number of instances may run it against one PostgreSQL database.
//!
//! Guarantee: every notice row is sent until the provider accepts it, it is refused for
//! good, or it runs out of attempts; each is recorded on the row. A notice is claimed with a
//! lease before it is sent and marked sent right after; if the process dies between the
//! provider's acceptance and that mark, the lease runs out and the notice is sent again. So
//! after a crash a recipient gets a notice at most twice, and only for notices of the batch
//! that was in flight (at most `dispatch.batch_size` per instance).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::crypto::random_bytes;
use crate::domain::email::Email;
use crate::domain::phone::{PhoneNumber, Region};
use crate::mail::OutgoingMail;
use crate::outages::notice_field;
use crate::state::AppState;
use crate::store::{ClaimedNotice, SendResult};

pub mod providers;

pub use providers::{ProviderError, SmsProvider};

/// Paces sends to the provider contract's messages per second.
pub struct RateLimit {
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            state: Mutex::new((per_second, Instant::now())),
        }
    }

    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.per_second)
                    .min(self.per_second);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Exponential backoff with ±20 % jitter, so a recovering provider is not hit by every
/// retry at the same instant.
pub fn backoff(attempts: i64, base_secs: u32, max_secs: u32) -> i64 {
    let exp = attempts.clamp(1, 30) - 1;
    let raw = u64::from(base_secs)
        .saturating_mul(1u64 << exp)
        .min(u64::from(max_secs));
    let [r] = random_bytes::<1>();
    let jitter = 0.8 + f64::from(r) / 255.0 * 0.4;
    ((raw as f64) * jitter).round().max(1.0) as i64
}

/// Per-id lookups the dispatcher keeps between batches (texts of a step, tenant senders).
type Cache<V> = Arc<Mutex<HashMap<i64, V>>>;

/// A step text: e-mail subject (if any) and body.
type Text = (Option<String>, String);

#[derive(Clone)]
struct TextCache(Cache<Text>);

/// Runs until `stop` is notified; sends what is due and sleeps when nothing is.
pub async fn run(state: AppState, stop: Arc<Notify>) {
    let cfg = state.config.dispatch.clone();
    let texts = TextCache(Arc::new(Mutex::new(HashMap::new())));
    let senders: Cache<(String, String)> = Arc::default();
    let limiter = Arc::new(Semaphore::new(cfg.concurrency as usize));
    loop {
        let claimed = match state
            .store
            .claim_notices(i64::from(cfg.batch_size), i64::from(cfg.lease_seconds))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "claiming notices failed; retrying shortly"
                );
                Vec::new()
            }
        };
        if claimed.is_empty() {
            let idle = match state.store.next_due().await {
                Ok(Some(t)) => Duration::from_secs((t - crate::store::now()).clamp(0, 5) as u64)
                    .max(Duration::from_millis(200)),
                _ => Duration::from_secs(5),
            };
            tokio::select! {
                () = stop.notified() => return,
                () = state.dispatch_wakeup.notified() => {},
                () = tokio::time::sleep(idle) => {},
            }
            continue;
        }
        let results = send_batch(&state, claimed, &texts, &senders, &limiter).await;
        if let Err(e) = state.store.record_results(&results).await {
            // The leases run out and the batch is sent again: better twice than never.
            tracing::error!(error = format!("{e:#}"), "recording send results failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if tokio::time::timeout(Duration::ZERO, stop.notified())
            .await
            .is_ok()
        {
            return;
        }
    }
}

async fn send_batch(
    state: &AppState,
    claimed: Vec<ClaimedNotice>,
    texts: &TextCache,
    senders: &Cache<(String, String)>,
    limiter: &Arc<Semaphore>,
) -> Vec<(i64, SendResult)> {
    let mut outages: Vec<i64> = claimed.iter().map(|n| n.outage_id).collect();
    outages.sort_unstable();
    outages.dedup();
    let latest = match state.store.latest_notifying_steps(&outages).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot check for superseded steps; sending later"
            );
            return claimed
                .iter()
                .map(|n| {
                    (
                        n.id,
                        SendResult::Retry {
                            at: crate::store::now() + 5,
                            error: "store unavailable".into(),
                        },
                    )
                })
                .collect();
        }
    };
    let mut set = JoinSet::new();
    let mut results = Vec::with_capacity(claimed.len());
    for n in claimed {
        // A step the outage has moved past is not sent late (e.g. "declared" after "restored").
        if latest.get(&n.outage_id).is_some_and(|s| *s != n.step_id) {
            results.push((n.id, SendResult::Superseded));
            continue;
        }
        let Ok(permit) = limiter.clone().acquire_owned().await else {
            break;
        };
        let state = state.clone();
        let texts = texts.clone();
        let senders = senders.clone();
        set.spawn(async move {
            let result = send_one(&state, &n, &texts, &senders).await;
            drop(permit);
            (n.id, result)
        });
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok(r) => results.push(r),
            Err(e) => {
                tracing::error!(error = %e, "a send task failed; its lease will run out and it is retried")
            }
        }
    }
    results
}

async fn send_one(
    state: &AppState,
    n: &ClaimedNotice,
    texts: &TextCache,
    senders: &Cache<(String, String)>,
) -> SendResult {
    let cfg = &state.config.dispatch;
    let retry = |error: String, after: Option<Duration>| {
        if n.attempts >= i64::from(cfg.max_attempts) {
            SendResult::Failed {
                error: format!("gave up after {} attempts: {error}", n.attempts),
            }
        } else {
            let delay = after.map(|d| d.as_secs() as i64).unwrap_or_else(|| {
                backoff(n.attempts, cfg.backoff_seconds, cfg.max_backoff_seconds)
            });
            SendResult::Retry {
                at: crate::store::now() + delay.max(1),
                error,
            }
        }
    };
    let address = match state.keyring.open(notice_field(&n.bidx), &n.recipient) {
        Ok(a) => a,
        Err(e) => {
            return SendResult::Failed {
                error: format!("recipient cannot be opened: {e}"),
            };
        }
    };
    let text = {
        let cached = texts.0.lock().await.get(&n.text_id).cloned();
        match cached {
            Some(t) => t,
            None => match state.store.step_text(n.text_id).await {
                Ok(Some(t)) => {
                    let mut cache = texts.0.lock().await;
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(n.text_id, t.clone());
                    t
                }
                Ok(None) => {
                    return SendResult::Failed {
                        error: "the notice's text is missing".into(),
                    };
                }
                Err(e) => return retry(format!("{e:#}"), None),
            },
        }
    };
    let sender = {
        let known = senders.lock().await.get(&n.tenant_id).cloned();
        match known {
            Some(s) => s,
            None => match state.store.tenant_by_id(n.tenant_id).await {
                Ok(Some(t)) => {
                    let s = (t.sms_sender_id.clone(), t.name.clone());
                    senders.lock().await.insert(n.tenant_id, s.clone());
                    s
                }
                Ok(None) => {
                    return SendResult::Failed {
                        error: "the tenant is gone".into(),
                    };
                }
                Err(e) => return retry(format!("{e:#}"), None),
            },
        }
    };
    match n.channel.as_str() {
        "sms" => {
            let Ok(to) = PhoneNumber::parse(&address, Region::Se) else {
                return SendResult::Failed {
                    error: "the stored number is not a valid mobile".into(),
                };
            };
            state.sms_rate.acquire().await;
            match state.sms.send(&sender.0, &to, &text.1).await {
                Ok(accepted) => SendResult::Sent {
                    provider: accepted.provider.to_string(),
                    provider_id: accepted.id,
                },
                Err(ProviderError::Permanent(e)) => SendResult::Failed { error: e },
                Err(ProviderError::Retry { message, after }) => retry(message, after),
            }
        }
        _ => {
            let Ok(to) = Email::parse(&address) else {
                return SendResult::Failed {
                    error: "the stored e-mail is not valid".into(),
                };
            };
            let mail = OutgoingMail {
                to: &to,
                subject: text.0.clone().unwrap_or_else(|| sender.1.clone()),
                body: text.1.clone(),
            };
            match state.mailer.send(mail).await {
                Ok(()) => SendResult::Sent {
                    provider: "email".into(),
                    provider_id: None,
                },
                Err(e) => retry(format!("{e:#}"), None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        for attempt in 1..=12 {
            let raw = (5u64 << (attempt - 1)).min(900) as f64;
            let d = backoff(attempt, 5, 900) as f64;
            assert!(
                d >= (raw * 0.8).floor() && d <= (raw * 1.2).ceil(),
                "attempt {attempt}: {d}"
            );
        }
        assert!(backoff(1000, 5, 900) <= 1080);
        assert!(backoff(0, 5, 900) >= 4);
    }
}
