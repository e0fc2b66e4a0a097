//! The dispatcher: claims due notices from the outbox, sends them, and records what
//! happened. Any number of instances may run it against one PostgreSQL database.
//!
//! Guarantee: every notice row stays due until a provider accepts it, refuses it for good,
//! its outage moves past its step (`superseded`), its contact is erased or replaced
//! (`withdrawn`), or it has been due longer than `dispatch.give_up_after_minutes` (`expired`;
//! a notice held by quiet hours counts from their end); each is
//! recorded on the row. A notice is claimed with a lease before it is sent and marked sent
//! right after; if the process dies between the provider's acceptance and that mark, the
//! lease runs out and the notice is sent again. So after a crash a recipient gets a notice
//! at most twice, and only for notices of the batches that were in flight (at most
//! `dispatch.batch_size` per worker).
//!
//! A provider that throttles, is unreachable, answers 5xx or refuses our credentials is
//! paused for every worker of every instance (the pause is in the store): its notices wait,
//! without using anything up, and go to the secondary provider if there is one. A mail
//! server that refuses our credentials pauses the e-mail channel the same way. What a
//! provider or mail server answered is kept and logged only as a [`redact::Failure`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::config::{DispatchConfig, SmsConfig};
use crate::crypto::{Keyring, random_bytes};
use crate::domain::email::Email;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::recipients::Channel;
use crate::mail::{Mailer, OutgoingMail};
use crate::store::{ClaimedNotice, Pause, SendResult, StepFacts, Store};
use crate::texts::{self, Custom, StepGroup, TextFacts};

mod direct;
pub mod providers;
pub mod redact;

pub use direct::DirectBody;
pub use providers::{NamedProvider, SmsProvider};
use redact::{Failure, FailureClass};

/// The name the mail server's pause is kept under, beside the SMS providers'.
const MAIL: &str = "email:smtp";

/// Paces sends to the provider contract's messages per second.
pub struct RateLimit {
    per_second: f64,
    state: tokio::sync::Mutex<(f64, std::time::Instant)>,
}

impl RateLimit {
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            state: tokio::sync::Mutex::new((per_second, std::time::Instant::now())),
        }
    }

    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = std::time::Instant::now();
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

/// A rendered notice text: e-mail subject (if any) and body.
type Text = Arc<(Option<String>, String)>;

/// Texts are rendered when sent (relative dates read right then); one rendering serves
/// every notice of a step with the same channel, language and facility count, within the
/// hour.
#[derive(Clone, PartialEq, Eq, Hash)]
struct TextKey {
    step_id: i64,
    channel: Channel,
    language: Language,
    facilities: i64,
    hour: i64,
}

/// A provider's pause as this instance sees it. Once the pause is over, one request probes
/// the provider while the rest wait; its answer ends the pause or starts a longer one.
#[derive(Debug, Clone, Copy)]
struct LocalPause {
    pause: Pause,
    probing: bool,
}

/// Everything the dispatcher uses, and nothing else: built once in `app.rs`.
pub struct Dispatcher {
    store: Store,
    keyring: Arc<Keyring>,
    sms: Vec<NamedProvider>,
    mailer: Arc<Mailer>,
    sms_rate: RateLimit,
    cfg: DispatchConfig,
    pause_secs: (u32, u32),
    pauses: Mutex<HashMap<String, LocalPause>>,
    texts: tokio::sync::Mutex<HashMap<TextKey, Text>>,
    facts: tokio::sync::Mutex<HashMap<i64, Arc<StepFacts>>>,
    wakeup: Arc<Notify>,
    /// Wakes the urgent lane (`direct`) when a request has written a message.
    direct_wakeup: Notify,
}

/// How long an idle lane sleeps: until the next due row, but at most 5 s (a row written by
/// another instance wakes no one here) and at least 100 ms (no spinning on a row due now
/// that another instance holds).
fn idle_until(due: Option<i64>, now: i64) -> Duration {
    due.map(|t| Duration::from_secs((t - now).clamp(0, 5) as u64))
        .unwrap_or(Duration::from_secs(5))
        .max(Duration::from_millis(100))
}

impl Dispatcher {
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        sms: Vec<NamedProvider>,
        mailer: Arc<Mailer>,
        sms_cfg: &SmsConfig,
        cfg: DispatchConfig,
        wakeup: Arc<Notify>,
    ) -> Self {
        // The sink has no contract to respect; a real provider's rate comes from its contract.
        let rate = if sms_cfg.provider == crate::config::SmsProvider::Sink {
            1_000_000
        } else {
            sms_cfg.rate_per_second
        };
        Self {
            store,
            keyring,
            sms,
            mailer,
            sms_rate: RateLimit::new(rate),
            cfg,
            pause_secs: (sms_cfg.pause_seconds, sms_cfg.max_pause_seconds),
            pauses: Mutex::new(HashMap::new()),
            texts: tokio::sync::Mutex::new(HashMap::new()),
            facts: tokio::sync::Mutex::new(HashMap::new()),
            wakeup,
            direct_wakeup: Notify::new(),
        }
    }

    /// Runs `dispatch.workers` claim-send-record loops per channel, and the urgent lane's
    /// one for direct messages, until `stop` is notified; each loop finishes the batch it is
    /// sending first.
    pub async fn run(self: Arc<Self>, stop: Arc<Notify>) {
        let (tell, stopped) = tokio::sync::watch::channel(false);
        let mut set = JoinSet::new();
        for channel in Channel::ALL {
            for _ in 0..self.cfg.workers {
                set.spawn(self.clone().work(channel, stopped.clone()));
            }
        }
        set.spawn(self.clone().work_direct(stopped.clone()));
        stop.notified().await;
        // Fails only when every worker has ended already: nothing left to tell.
        if tell.send(true).is_err() {
            tracing::debug!("the dispatch workers had stopped");
        }
        while set.join_next().await.is_some() {}
    }

    async fn work(
        self: Arc<Self>,
        channel: Channel,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *stopped.borrow() {
                return;
            }
            let paused_until = self.refresh_pauses(channel).await;
            let claimed = if paused_until.is_some() {
                Vec::new()
            } else {
                match self
                    .store
                    .claim_notices(
                        channel,
                        i64::from(self.cfg.batch_size),
                        i64::from(self.cfg.lease_seconds),
                    )
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
                }
            };
            if claimed.is_empty() {
                let now = crate::store::now();
                let due = match paused_until {
                    Some(until) => Some(until),
                    None => self.store.next_due(channel).await.unwrap_or_else(|e| {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "cannot read when notices are due"
                        );
                        None
                    }),
                };
                let idle = idle_until(due, now);
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = self.wakeup.notified() => {},
                    () = tokio::time::sleep(idle) => {},
                }
                continue;
            }
            let results = self.send_batch(claimed).await;
            if let Err(e) = self.store.record_results(&results).await {
                // The leases run out and the batch is sent again: better twice than never.
                tracing::error!(error = format!("{e:#}"), "recording send results failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// The names a channel's pauses are kept under, in the order they are tried.
    fn senders(&self, channel: Channel) -> Vec<&str> {
        match channel {
            Channel::Sms => self.sms.iter().map(|p| p.name.as_str()).collect(),
            Channel::Email => vec![MAIL],
        }
    }

    /// Brings the local view of pauses up to date with the store's (another instance may
    /// have paused a provider); returns when the earliest paused sender of the channel
    /// resumes if every one of them is paused.
    async fn refresh_pauses(&self, channel: Channel) -> Option<i64> {
        match self.store.provider_pauses().await {
            Ok(stored) => {
                let mut local = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
                for (name, pause) in stored {
                    let fresher = local.get(&name).is_none_or(|l| pause.until > l.pause.until);
                    if fresher && pause.until > crate::store::now() {
                        local.insert(
                            name,
                            LocalPause {
                                pause,
                                probing: false,
                            },
                        );
                    }
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot read provider pauses"),
        }
        self.all_paused_until(channel, crate::store::now())
    }

    fn all_paused_until(&self, channel: Channel, now: i64) -> Option<i64> {
        let local = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
        self.senders(channel)
            .into_iter()
            .map(|name| local.get(name).map(|x| x.pause.until).filter(|u| *u > now))
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().min())
    }

    /// The first of the channel's senders that may be sent to (not paused, or this request
    /// is the probe of a pause that is over), by its place in `senders`, or when to try
    /// again.
    fn pick(&self, channel: Channel, now: i64) -> Result<usize, i64> {
        let mut local = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
        let mut earliest = i64::MAX;
        for (i, name) in self.senders(channel).into_iter().enumerate() {
            match local.get_mut(name) {
                None => return Ok(i),
                Some(x) if x.pause.until > now => earliest = earliest.min(x.pause.until),
                Some(x) if !x.probing => {
                    x.probing = true;
                    return Ok(i);
                }
                Some(_) => earliest = earliest.min(now + 1),
            }
        }
        Err(earliest)
    }

    /// Pauses a provider (or the mail server) that failed. The requests already in flight
    /// when it started to fail fail alike: only the first failure of an episode (or a
    /// failed probe) counts toward the doubling, and is logged. Returns when its notice may
    /// be tried again.
    async fn pause(&self, channel: Channel, name: &str, failure: &Failure) -> i64 {
        let now = crate::store::now();
        let pause = {
            let mut local = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
            let entry = local.entry(name.to_string()).or_insert(LocalPause {
                pause: Pause {
                    until: 0,
                    failures: 0,
                },
                probing: false,
            });
            if entry.pause.until > now {
                drop(local);
                return self.all_paused_until(channel, now).unwrap_or(now);
            }
            entry.probing = false;
            entry.pause.failures += 1;
            let wait = failure
                .after
                .map(|d| d.as_secs() as i64)
                .unwrap_or_else(|| {
                    backoff(entry.pause.failures, self.pause_secs.0, self.pause_secs.1)
                });
            entry.pause.until = now + wait.clamp(1, i64::from(self.pause_secs.1));
            entry.pause
        };
        let reason = failure.to_string();
        let seconds = pause.until - now;
        if failure.class == FailureClass::Auth {
            // Every notice would fail alike: the notices wait for someone to fix it.
            tracing::error!(
                provider = name,
                reason,
                seconds,
                failures = pause.failures,
                "our credentials or account were refused: fix the configuration; the notices wait"
            );
        } else {
            tracing::warn!(
                provider = name,
                reason,
                seconds,
                failures = pause.failures,
                "SMS provider paused: its notices wait (and go to the secondary provider, if any)"
            );
        }
        if let Err(e) = self.store.pause_provider(name, pause, &reason).await {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot share the provider pause with other instances"
            );
        }
        self.all_paused_until(channel, now).unwrap_or(now)
    }

    /// The provider (or mail server) answered (took or refused a message): any pause is
    /// over.
    async fn answered(&self, name: &str) {
        let was_paused = self
            .pauses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some();
        if was_paused {
            tracing::info!(provider = name, "SMS provider answers again");
            if let Err(e) = self.store.clear_provider_pause(name).await {
                tracing::error!(error = format!("{e:#}"), "cannot clear the provider pause");
            }
        }
    }

    async fn send_batch(self: &Arc<Self>, claimed: Vec<ClaimedNotice>) -> Vec<(i64, SendResult)> {
        let now = crate::store::now();
        let mut outages: Vec<i64> = claimed.iter().map(|n| n.outage_id).collect();
        outages.sort_unstable();
        outages.dedup();
        let latest = match self.store.latest_notifying_steps(&outages).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot check for superseded steps; sending later"
                );
                return claimed
                    .iter()
                    .map(|n| (n.id, SendResult::Deferred { at: now + 5 }))
                    .collect();
            }
        };
        let budget = i64::from(self.cfg.give_up_after_minutes) * 60;
        let limiter = Arc::new(Semaphore::new(self.cfg.concurrency as usize));
        let mut set = JoinSet::new();
        let mut results = Vec::with_capacity(claimed.len());
        for n in claimed {
            // A step the outage has moved past is not sent late (e.g. "declared" after "restored").
            if latest.get(&n.outage_id).is_some_and(|s| *s != n.step_id) {
                results.push((n.id, SendResult::Superseded));
                continue;
            }
            if now - n.due_from > budget {
                results.push((n.id, SendResult::Expired));
                continue;
            }
            let Some(recipient) = n.recipient.clone() else {
                results.push((n.id, SendResult::Withdrawn));
                continue;
            };
            let (text, facts) = match self.text(&n, recipient.language.as_deref()).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(
                        notice = n.id,
                        error = format!("{e:#}"),
                        "cannot render a notice text; retrying"
                    );
                    results.push((n.id, self.retry(n.attempts, "text unavailable")));
                    continue;
                }
            };
            let Ok(permit) = limiter.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            set.spawn(async move {
                let sender = (facts.sender_id.as_str(), facts.tenant_name.as_str());
                let result = this.send_one(&n, &recipient, &text, sender).await;
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

    fn retry(&self, attempts: i64, error: &str) -> SendResult {
        SendResult::Retry {
            at: crate::store::now()
                + backoff(
                    attempts,
                    self.cfg.backoff_seconds,
                    self.cfg.max_backoff_seconds,
                ),
            error: error.to_string(),
        }
    }

    async fn text(
        &self,
        n: &ClaimedNotice,
        language: Option<&str>,
    ) -> anyhow::Result<(Text, Arc<StepFacts>)> {
        let facts = {
            let cached = self.facts.lock().await.get(&n.step_id).cloned();
            match cached {
                Some(f) => f,
                None => {
                    let f = Arc::new(
                        self.store
                            .step_facts(n.step_id)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("step {} is gone", n.step_id))?,
                    );
                    let mut cache = self.facts.lock().await;
                    if cache.len() > 1_000 {
                        cache.clear();
                    }
                    cache.insert(n.step_id, f.clone());
                    f
                }
            }
        };
        let now = crate::store::now();
        // A contact whose language is not known (or not one we write) gets the tenant's.
        let language = language
            .and_then(|l| l.parse().ok())
            .unwrap_or(facts.default_language);
        let key = TextKey {
            step_id: n.step_id,
            channel: n.channel,
            language,
            facilities: n.facilities,
            hour: now / 3600,
        };
        if let Some(t) = self.texts.lock().await.get(&key) {
            return Ok((t.clone(), facts));
        }
        let group = StepGroup::of(facts.kind);
        let own = self
            .store
            .templates(facts.tenant_id, Some(facts.service.as_str()))
            .await?
            .into_iter()
            .find(|t| {
                t.step_group == group.as_str()
                    && t.language == language.as_str()
                    && t.channel == n.channel.as_str()
            });
        let local_text = facts.texts.get(language.as_str()).map(String::as_str);
        let ended = facts
            .ended_at
            .or_else(|| (group == StepGroup::End).then_some(facts.at));
        let tf = TextFacts {
            tenant: &facts.tenant_name,
            service: facts.service,
            kind: facts.kind,
            started_at: facts.started_at,
            etr: facts.etr,
            ended_at: ended,
            cause: facts.cause.get(&language).map(String::as_str),
            text: local_text,
            facilities: n.facilities,
            time_zone: &facts.time_zone,
            now,
        };
        let custom = own.as_ref().map(|t| Custom {
            subject: t.subject.as_deref(),
            body: &t.body,
        });
        let text: Text = Arc::new(texts::compose(&tf, custom, n.channel, language));
        let mut cache = self.texts.lock().await;
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, text.clone());
        Ok((text, facts))
    }

    async fn send_one(
        &self,
        n: &ClaimedNotice,
        recipient: &crate::store::SealedRecipient,
        text: &Text,
        (sender_id, tenant_name): (&str, &str),
    ) -> SendResult {
        if let Some(tenant) = recipient.sealed.tenant()
            && let Err(e) = self.store.ensure_tenant_key(&self.keyring, tenant).await
        {
            tracing::error!(notice = n.id, tenant, error = %e,
                "the tenant's data key cannot be read; the notice waits");
            return self.retry(n.attempts, "contact cannot be opened (tenant data key)");
        }
        let address = match self.keyring.open(recipient.field, &recipient.sealed) {
            Ok(a) => a,
            Err(e) => {
                // Not dropped: it stays due (and visible) until the key file is put right
                // or the time budget runs out.
                tracing::error!(notice = n.id, facility = n.facility_id, error = %e,
                    "a contact cannot be opened with the data keys; the notice waits");
                return self.retry(n.attempts, "contact cannot be opened (data key)");
            }
        };
        match n.channel {
            Channel::Sms => {
                let Ok(to) = PhoneNumber::from_stored(&address) else {
                    tracing::error!(
                        notice = n.id,
                        facility = n.facility_id,
                        "a stored number is not a valid mobile"
                    );
                    return SendResult::Failed {
                        error: "the stored number is not a valid mobile".into(),
                    };
                };
                let provider = match self.pick(Channel::Sms, crate::store::now()) {
                    Ok(i) => &self.sms[i],
                    Err(until) => return SendResult::Deferred { at: until },
                };
                self.sms_rate.acquire().await;
                match provider.provider.send(sender_id, &to, &text.1).await {
                    Ok(accepted) => {
                        self.answered(&provider.name).await;
                        SendResult::Sent {
                            provider: accepted.provider.to_string(),
                            provider_id: accepted.id,
                        }
                    }
                    Err(failure) => {
                        self.failed(
                            ("notice", n.id, n.attempts),
                            Channel::Sms,
                            &provider.name,
                            failure,
                        )
                        .await
                    }
                }
            }
            Channel::Email => {
                let Ok(to) = Email::parse(&address) else {
                    tracing::error!(
                        notice = n.id,
                        facility = n.facility_id,
                        "a stored e-mail is not valid"
                    );
                    return SendResult::Failed {
                        error: "the stored e-mail is not valid".into(),
                    };
                };
                if let Err(until) = self.pick(Channel::Email, crate::store::now()) {
                    return SendResult::Deferred { at: until };
                }
                let mail = OutgoingMail {
                    to: &to,
                    subject: text.0.clone().unwrap_or_else(|| tenant_name.to_string()),
                    body: text.1.clone(),
                };
                match self.mailer.send(mail).await {
                    Ok(()) => {
                        self.answered(MAIL).await;
                        SendResult::Sent {
                            provider: "email".into(),
                            provider_id: None,
                        }
                    }
                    Err(failure) => {
                        self.failed(("notice", n.id, n.attempts), Channel::Email, MAIL, failure)
                            .await
                    }
                }
            }
        }
    }

    /// What a failed send means for its message (a notice or a direct message, sent for
    /// the `attempts`th time) and its sender. Refusals of this message fail it (the sender
    /// did answer). Throttling and temporary failures pause an SMS provider, whose trouble
    /// is every message's, but only retry the one e-mail, whose 4xx is usually about one
    /// mailbox. Refused credentials pause either: a wrong password must not fail a storm's
    /// notices.
    async fn failed(
        &self,
        (what, id, attempts): (&'static str, i64, i64),
        channel: Channel,
        sender: &str,
        failure: Failure,
    ) -> SendResult {
        match failure.class {
            FailureClass::InvalidRecipient | FailureClass::Permanent => {
                self.answered(sender).await;
                tracing::info!(kind = what, id, error = %failure, "refused for good");
                SendResult::Failed {
                    error: failure.to_string(),
                }
            }
            FailureClass::Temporary | FailureClass::Throttled if channel == Channel::Email => {
                // Not a refused login: whatever paused the mail is over (this may have been
                // its probe).
                self.answered(sender).await;
                tracing::warn!(
                    kind = what,
                    id,
                    error = %failure,
                    "the mail server did not take it; retrying"
                );
                self.retry(attempts, &failure.to_string())
            }
            FailureClass::Temporary | FailureClass::Throttled | FailureClass::Auth => {
                let at = self.pause(channel, sender, &failure).await;
                SendResult::Retry {
                    at,
                    error: failure.to_string(),
                }
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
