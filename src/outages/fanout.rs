//! Runs a committed step's fan-out: registered phones and e-mails chunk by chunk, then the
//! directory numbers, each chunk durable before the next is written, and wakes the
//! dispatcher after every chunk so the first notices go while the rest are written.
//!
//! Crash safety: every chunk commits with the record's cursor (`store/fanout.rs`), so a
//! fan-out cut short resumes where it stopped, with no notice missing or doubled; the
//! resume loop in every `varsel serve` picks up fan-outs whose lease ran out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::crypto::Keyring;
use crate::directory::Directory;
use crate::domain::recipients::AddressKey;
use crate::store::fanout::{
    NewDirectoryContact, PHASE_DIRECTORY, PHASE_EMAILS, PHASE_PHONES, directory_field,
};
use crate::store::{FanoutJob, Store};

/// One page of the directory phase, ready to write.
struct DirectoryPage {
    contacts: Vec<NewDirectoryContact>,
    /// The last facility id of the page: the cursor once it is written.
    last: i64,
}

pub struct FanOut {
    store: Store,
    keyring: Arc<Keyring>,
    directory: Option<Arc<dyn Directory>>,
    wakeup: Arc<Notify>,
    chunk: i64,
    /// Facilities per directory page: smaller than a chunk, as a page holds every number
    /// looked up, sealed, while the previous page is written.
    directory_page: i64,
    lease_secs: i64,
}

impl FanOut {
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        directory: Option<Arc<dyn Directory>>,
        wakeup: Arc<Notify>,
        chunk: u32,
        lease_secs: u32,
    ) -> Self {
        Self {
            store,
            keyring,
            directory,
            wakeup,
            chunk: i64::from(chunk),
            directory_page: i64::from(chunk / 4).max(1),
            lease_secs: i64::from(lease_secs),
        }
    }

    /// Writes the rest of the job's notices. Returns early, without error, when another
    /// worker has taken the job over.
    pub async fn run(&self, mut job: FanoutJob) -> anyhow::Result<()> {
        loop {
            let timer = std::time::Instant::now();
            let (phase, cursor) = (job.phase, job.cursor);
            let written = match job.phase {
                PHASE_PHONES | PHASE_EMAILS => {
                    self.store
                        .fanout_registered(&mut job, self.lease_secs)
                        .await?
                }
                PHASE_DIRECTORY if job.kind.asks_directory() => {
                    return match &self.directory {
                        None => self.finish(&mut job).await,
                        Some(directory) => self.directory_phase(job, directory.as_ref()).await,
                    };
                }
                PHASE_DIRECTORY => {
                    match self
                        .store
                        .fanout_directory_told(&mut job, self.chunk, self.lease_secs)
                        .await?
                    {
                        None => None,
                        Some((_, false)) => return self.finish(&mut job).await,
                        Some((n, true)) => Some(n),
                    }
                }
                _ => return Ok(()),
            };
            tracing::debug!(
                step = job.step_id,
                phase,
                cursor,
                notices = written,
                ms = timer.elapsed().as_millis() as u64,
                "fan-out chunk"
            );
            match written {
                None => {
                    tracing::info!(step = job.step_id, "another worker took this fan-out over");
                    return Ok(());
                }
                Some(n) if n > 0 => self.wakeup.notify_waiters(),
                Some(_) => {}
            }
        }
    }

    /// The directory phase of a start step: pages of facilities without a registered phone
    /// are read, looked up and sealed one page ahead of the page being written, so the
    /// directory's answer time and the sealing overlap the database writes.
    async fn directory_phase(
        &self,
        mut job: FanoutJob,
        directory: &dyn Directory,
    ) -> anyhow::Result<()> {
        let (pages, next) = tokio::sync::mpsc::channel::<anyhow::Result<DirectoryPage>>(1);
        let reading = job.clone();
        let read = async {
            let mut after = reading.cursor;
            loop {
                let page = self.directory_page(&reading, after, directory).await;
                let done = match &page {
                    Ok(Some(p)) => {
                        after = p.last;
                        false
                    }
                    _ => true,
                };
                let Some(page) = page.transpose() else { break };
                if pages.send(page).await.is_err() || done {
                    break;
                }
            }
            drop(pages);
        };
        // The receiver moves into the writer, so a writer that stops (an error, another
        // worker's takeover) stops the reader too: its next send fails.
        let write = async move {
            let mut next = next;
            while let Some(page) = next.recv().await {
                let page = page?;
                let timer = std::time::Instant::now();
                match self
                    .store
                    .fanout_directory_page(&mut job, &page.contacts, page.last, self.lease_secs)
                    .await?
                {
                    None => {
                        tracing::info!(step = job.step_id, "another worker took this fan-out over");
                        return Ok(());
                    }
                    Some(n) => {
                        tracing::debug!(
                            step = job.step_id,
                            cursor = page.last,
                            notices = n,
                            ms = timer.elapsed().as_millis() as u64,
                            "fan-out directory page written"
                        );
                        if n > 0 {
                            self.wakeup.notify_waiters();
                        }
                    }
                }
            }
            self.finish(&mut job).await
        };
        let ((), written) = tokio::join!(read, write);
        written
    }

    /// The next page of a start step's facilities without a registered phone after facility
    /// `after`, looked up in the directory and sealed; None when none are left.
    async fn directory_page(
        &self,
        job: &FanoutJob,
        after: i64,
        directory: &dyn Directory,
    ) -> anyhow::Result<Option<DirectoryPage>> {
        let timer = std::time::Instant::now();
        let Some((targets, last)) = self
            .store
            .directory_targets(job, after, self.directory_page)
            .await?
        else {
            return Ok(None);
        };
        let mut languages: HashMap<AddressKey, String> = HashMap::new();
        for t in targets {
            languages
                .entry(AddressKey::new(&t.street, &t.house_number, &t.postcode))
                .or_insert(t.language);
        }
        let keys: Vec<AddressKey> = languages.keys().cloned().collect();
        let found = directory.lookup(&keys).await;
        drop(keys);
        let contacts = self.seal(job.tenant_id, found, &languages).await?;
        tracing::debug!(
            step = job.step_id,
            cursor = last,
            numbers = contacts.len(),
            ms = timer.elapsed().as_millis() as u64,
            "fan-out directory page read, looked up and sealed"
        );
        Ok(Some(DirectoryPage { contacts, last }))
    }

    async fn finish(&self, job: &mut FanoutJob) -> anyhow::Result<()> {
        self.store.finish_fanout(job).await?;
        Ok(())
    }

    /// Seals the numbers the directory listed (on every core: at storm size this is the
    /// costliest part of the directory phase). Each number is sealed once per address.
    async fn seal(
        &self,
        tenant_id: i64,
        found: HashMap<AddressKey, Vec<crate::domain::phone::PhoneNumber>>,
        languages: &HashMap<AddressKey, String>,
    ) -> anyhow::Result<Vec<NewDirectoryContact>> {
        // Only addresses this page asked about: numbers a directory answers for any other
        // address belong to strangers to this outage.
        let pending: Vec<(String, String, String)> = found
            .into_iter()
            .filter_map(|(address, numbers)| {
                let language = languages.get(&address).cloned();
                if language.is_none() {
                    tracing::warn!(
                        "the directory answered for an address it was not asked about; ignored"
                    );
                }
                Some((address, numbers, language?))
            })
            .flat_map(|(address, numbers, language)| {
                numbers.into_iter().map(move |n| {
                    (
                        address.as_str().to_string(),
                        n.e164().to_string(),
                        language.clone(),
                    )
                })
            })
            .collect();
        self.store
            .ensure_tenant_key(&self.keyring, tenant_id)
            .await?;
        let keyring = self.keyring.clone();
        tokio::task::spawn_blocking(move || {
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8);
            let per = pending.len().div_ceil(threads).max(1);
            std::thread::scope(|s| {
                let handles: Vec<_> = pending
                    .chunks(per)
                    .map(|part| {
                        let keyring = &keyring;
                        s.spawn(move || {
                            part.iter()
                                .map(|(address, number, language)| {
                                    let bidx = keyring.blind_index(tenant_id, "phone", number);
                                    Ok(NewDirectoryContact {
                                        address_key: address.clone(),
                                        sealed: keyring.seal_for(
                                            tenant_id,
                                            directory_field(&bidx),
                                            number,
                                        )?,
                                        bidx,
                                        language: language.clone(),
                                    })
                                })
                                .collect::<Result<Vec<_>, crate::crypto::CryptoError>>()
                        })
                    })
                    .collect();
                let mut out = Vec::with_capacity(pending.len());
                for h in handles {
                    match h.join() {
                        Ok(part) => out.extend(part?),
                        Err(_) => anyhow::bail!("a sealing thread panicked"),
                    }
                }
                Ok(out)
            })
        })
        .await?
    }

    /// Resumes fan-outs cut short (a crash, a restart) until `stop` is notified. With
    /// `take_all_first`, the first round takes every unfinished fan-out at once: a single
    /// process on SQLite knows nobody else is writing them.
    pub async fn resume(self: Arc<Self>, stop: Arc<Notify>, take_all_first: bool) {
        let mut all = take_all_first;
        let every = Duration::from_secs((self.lease_secs as u64 / 2).clamp(1, 10));
        loop {
            match self.store.claim_fanouts(self.lease_secs, all).await {
                Ok(jobs) => {
                    for job in jobs {
                        tracing::info!(step = job.step_id, phase = job.phase, "resuming a fan-out");
                        if let Err(e) = self.run(job).await {
                            tracing::error!(
                                error = format!("{e:#}"),
                                "a fan-out failed; it is retried when its lease runs out"
                            );
                        }
                    }
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "cannot look for unfinished fan-outs"
                ),
            }
            all = false;
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(every) => {},
            }
        }
    }
}
