//! The urgent lane: direct messages to one household (verification links, one-time codes,
//! the notice to a replaced contact), which someone is waiting for. Its own worker claims
//! them from their own outbox (`store::direct`), so a storm's batches never hold them up,
//! and sends them through the same providers, pauses and retry policy as notices: a
//! provider or mail server that is down delays a message, it does not fail it. A message
//! whose link or code has expired is forgotten unsent; a sent one is forgotten at once.
//!
//! Guarantee: as for notices (see the module above), a crash between the provider's
//! acceptance and the record leaves the message leased, and it goes again when the lease
//! runs out: at most twice, and only for the messages in flight.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::{Dispatcher, MAIL};
use crate::domain::email::Email;
use crate::domain::phone::PhoneNumber;
use crate::domain::recipients::Channel;
use crate::mail::OutgoingMail;
use crate::store::direct::{body_field, recipient_field};
use crate::store::{ClaimedDirect, SendResult};

/// What a direct message says, as sealed in its row.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DirectBody {
    /// The e-mail subject; none for an SMS.
    pub subject: Option<String>,
    pub text: String,
}

/// Messages one pass claims: few are ever due at once.
const BATCH: i64 = 50;

impl Dispatcher {
    /// The urgent lane's loop, until `stopped` turns true.
    pub(super) async fn work_direct(
        self: Arc<Self>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *stopped.borrow() {
                return;
            }
            let sent = match self.send_due_direct().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the direct messages could not be sent; retrying shortly"
                    );
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            let now = crate::store::now();
            let due = self.store.next_direct_due().await.unwrap_or_else(|e| {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot read when direct messages are due"
                );
                None
            });
            let idle = super::idle_until(due, now);
            tokio::select! {
                _ = stopped.changed() => return,
                () = self.direct_wakeup.notified() => {},
                () = tokio::time::sleep(idle) => {},
            }
        }
    }

    /// Wakes the urgent lane: a request has just written a message.
    pub fn direct_written(&self) {
        self.direct_wakeup.notify_one();
    }

    /// One pass of the urgent lane: forgets expired messages, then claims the due ones,
    /// sends them and records the results. Returns how many were claimed. Safe beside any
    /// number of other passes, here or in other instances.
    pub async fn send_due_direct(self: &Arc<Self>) -> anyhow::Result<usize> {
        let now = crate::store::now();
        let (expired, _) = self.store.sweep_direct(now).await?;
        if expired > 0 {
            tracing::warn!(
                messages = expired,
                "direct messages were not sent before their link or code expired; forgotten"
            );
        }
        let claimed = self
            .store
            .claim_direct(BATCH, i64::from(self.cfg.lease_seconds))
            .await?;
        let n = claimed.len();
        if n == 0 {
            return Ok(0);
        }
        let mut set = JoinSet::new();
        for m in claimed {
            let this = self.clone();
            set.spawn(async move {
                let result = this.send_direct(&m).await;
                (m.id, result)
            });
        }
        let mut results = Vec::with_capacity(n);
        while let Some(done) = set.join_next().await {
            match done {
                Ok(r) => results.push(r),
                Err(e) => {
                    tracing::error!(error = %e, "a direct send failed; its lease will run out and it is retried")
                }
            }
        }
        // Not recorded: the leases run out and they go again (better twice than never).
        self.store.record_direct(&results).await?;
        Ok(n)
    }

    async fn send_direct(&self, m: &ClaimedDirect) -> SendResult {
        let what = ("direct message", m.id, m.attempts);
        if m.expires_at <= crate::store::now() {
            return SendResult::Expired;
        }
        if let Err(e) = self
            .store
            .ensure_tenant_key(&self.keyring, m.tenant_id)
            .await
        {
            tracing::error!(direct = m.id, tenant = m.tenant_id, error = %e,
                "the tenant's data key cannot be read; the message waits");
            return self.retry(m.attempts, "contact cannot be opened (tenant data key)");
        }
        let opened = self
            .keyring
            .open(recipient_field(m.id), &m.recipient)
            .and_then(|to| Ok((to, self.keyring.open(body_field(m.id), &m.body)?)));
        let (address, body) = match opened {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(direct = m.id, facility = m.facility_id, error = %e,
                    "a direct message cannot be opened with the data keys; it waits");
                return self.retry(m.attempts, "message cannot be opened (data key)");
            }
        };
        let Ok(body) = serde_json::from_str::<DirectBody>(&body) else {
            tracing::error!(direct = m.id, "a direct message body is not readable");
            return SendResult::Failed {
                error: "the stored message is not readable".into(),
            };
        };
        let result = match m.channel {
            Channel::Sms => {
                let Ok(to) = PhoneNumber::from_stored(&address) else {
                    return SendResult::Failed {
                        error: "the stored number is not a valid mobile".into(),
                    };
                };
                let provider = match self.pick(Channel::Sms, crate::store::now()) {
                    Ok(i) => &self.sms[i],
                    Err(until) => return SendResult::Deferred { at: until },
                };
                self.sms_rate.acquire().await;
                match provider.provider.send(&m.sender, &to, &body.text).await {
                    Ok(accepted) => {
                        self.answered(&provider.name).await;
                        tracing::info!(direct = m.id, kind = m.kind.as_str(), to = %to.masked(), "direct SMS sent");
                        SendResult::Sent {
                            provider: accepted.provider.to_string(),
                            provider_id: accepted.id,
                        }
                    }
                    Err(failure) => {
                        self.failed(what, Channel::Sms, &provider.name, failure)
                            .await
                    }
                }
            }
            Channel::Email => {
                let Ok(to) = Email::parse(&address) else {
                    return SendResult::Failed {
                        error: "the stored e-mail is not valid".into(),
                    };
                };
                // Every writer gives an e-mail its subject; one without is a fault to show, not
                // a mail to send blank.
                let Some(subject) = body.subject else {
                    tracing::error!(
                        direct = m.id,
                        kind = m.kind.as_str(),
                        "a stored e-mail message has no subject"
                    );
                    return SendResult::Failed {
                        error: "the stored e-mail message has no subject".into(),
                    };
                };
                if let Err(until) = self.pick(Channel::Email, crate::store::now()) {
                    return SendResult::Deferred { at: until };
                }
                let mail = OutgoingMail {
                    to: &to,
                    subject,
                    body: body.text,
                };
                match self.mailer.send(mail).await {
                    Ok(()) => {
                        self.answered(MAIL).await;
                        tracing::info!(direct = m.id, kind = m.kind.as_str(), to = %to.masked(), "direct e-mail sent");
                        SendResult::Sent {
                            provider: "email".into(),
                            provider_id: None,
                        }
                    }
                    Err(failure) => self.failed(what, Channel::Email, MAIL, failure).await,
                }
            }
        };
        if let SendResult::Retry { error, .. } | SendResult::Failed { error } = &result {
            tracing::warn!(
                direct = m.id,
                kind = m.kind.as_str(),
                attempts = m.attempts,
                error,
                "a direct message did not go"
            );
        }
        result
    }
}
