//! Telecom directory adapters: the mobile numbers listed at an address. The numbers serve
//! one outage's notices and are kept nowhere else: sealed, once per outage and address, in
//! `directory_contacts` (see `store/fanout.rs`). A directory that fails or is slow yields
//! nothing for the addresses it did not answer; it is asked after every registered contact
//! of the step is written, so registered recipients are never held up.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::{DirectoryConfig, DirectoryKind};
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::recipients::AddressKey;

pub type Numbers = HashMap<AddressKey, Vec<PhoneNumber>>;

pub trait Directory: Send + Sync {
    fn lookup<'a>(
        &'a self,
        addresses: &'a [AddressKey],
    ) -> Pin<Box<dyn Future<Output = Numbers> + Send + 'a>>;
}

pub fn from_config(cfg: &DirectoryConfig) -> anyhow::Result<Box<dyn Directory>> {
    match cfg.kind {
        DirectoryKind::File => {
            let path = cfg.file.as_deref().context("directory.file is not set")?;
            Ok(Box::new(FileDirectory::load(path)?))
        }
        DirectoryKind::Http => Ok(Box::new(HttpDirectory::new(cfg)?)),
    }
}

/// A file the utility receives from the operators: `street,house_number,postcode,phone`
/// (comma or semicolon, header row). Rows with a number that is not a mobile are skipped and
/// counted.
pub struct FileDirectory {
    numbers: Numbers,
}

impl FileDirectory {
    /// A directory from numbers already in memory (tests, benchmarks).
    pub fn from_numbers(numbers: Numbers) -> Self {
        Self { numbers }
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the directory file {}", path.display()))?;
        let (numbers, skipped) =
            Self::parse(&bytes).with_context(|| format!("directory file {}", path.display()))?;
        if skipped > 0 {
            tracing::warn!(skipped, path = %path.display(), "directory rows without a valid mobile number were skipped");
        }
        Ok(Self { numbers })
    }

    /// The numbers per address, and how many rows were skipped.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<(Numbers, usize)> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let delimiter = if first.contains(&b';') { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(bytes);
        let headers: Vec<String> = reader
            .headers()
            .context("cannot read the header row")?
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let col = |name: &str| {
            headers.iter().position(|h| h == name).with_context(|| {
                format!("the header row lacks {name} (needs street, house_number, postcode, phone)")
            })
        };
        let (street, number, postcode, phone) = (
            col("street")?,
            col("house_number")?,
            col("postcode")?,
            col("phone")?,
        );
        let mut numbers: Numbers = HashMap::new();
        let mut skipped = 0;
        for record in reader.records() {
            let Ok(r) = record else {
                skipped += 1;
                continue;
            };
            let field = |i: usize| r.get(i).unwrap_or_default();
            match PhoneNumber::parse(field(phone), Region::Se) {
                Ok(p) => {
                    let list = numbers
                        .entry(AddressKey::new(
                            field(street),
                            field(number),
                            field(postcode),
                        ))
                        .or_default();
                    if !list.contains(&p) {
                        list.push(p);
                    }
                }
                Err(_) => skipped += 1,
            }
        }
        Ok((numbers, skipped))
    }
}

impl Directory for FileDirectory {
    fn lookup<'a>(
        &'a self,
        addresses: &'a [AddressKey],
    ) -> Pin<Box<dyn Future<Output = Numbers> + Send + 'a>> {
        Box::pin(async move {
            addresses
                .iter()
                .filter_map(|a| self.numbers.get(a).map(|n| (a.clone(), n.clone())))
                .collect()
        })
    }
}

/// A generic HTTP JSON directory: `POST url` with `{"addresses": [{"street", "house_number",
/// "postcode"}]}` in batches; the answer is `{"results": [{"street", "house_number",
/// "postcode", "numbers": ["+4670..."]}]}`.
#[derive(Clone)]
pub struct HttpDirectory {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    batch_size: usize,
    /// The whole lookup's budget: an outage's notices wait for the directory at most this long.
    deadline: Duration,
}

#[derive(Serialize)]
struct Query<'a> {
    addresses: Vec<AddressOut<'a>>,
}

#[derive(Serialize)]
struct AddressOut<'a> {
    street: &'a str,
    house_number: &'a str,
    postcode: &'a str,
}

#[derive(Deserialize)]
struct Answer {
    results: Vec<AnswerRow>,
}

#[derive(Deserialize)]
struct AnswerRow {
    street: String,
    house_number: String,
    postcode: String,
    #[serde(default)]
    numbers: Vec<String>,
}

impl HttpDirectory {
    pub fn new(cfg: &DirectoryConfig) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(cfg.timeout_ms))
                .build()
                .context("cannot build the directory HTTP client")?,
            url: cfg.url.clone().context("directory.url is not set")?,
            token: cfg.token.as_ref().map(|t| t.expose().to_string()),
            batch_size: cfg.batch_size.max(1),
            deadline: Duration::from_millis(cfg.timeout_ms),
        })
    }

    async fn batch(&self, addresses: &[AddressKey]) -> anyhow::Result<Numbers> {
        let parts: Vec<Vec<&str>> = addresses
            .iter()
            .map(|a| a.as_str().split('|').collect())
            .collect();
        let query = Query {
            addresses: parts
                .iter()
                .map(|p| AddressOut {
                    street: p.first().copied().unwrap_or_default(),
                    house_number: p.get(1).copied().unwrap_or_default(),
                    postcode: p.get(2).copied().unwrap_or_default(),
                })
                .collect(),
        };
        let mut req = self.client.post(&self.url).json(&query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        // Without the URL: a directory's URL may carry its credentials, and the error is logged.
        let answer: Answer = async { req.send().await?.error_for_status()?.json().await }
            .await
            .map_err(reqwest::Error::without_url)?;
        let mut out: Numbers = HashMap::new();
        for row in answer.results {
            let key = AddressKey::new(&row.street, &row.house_number, &row.postcode);
            for n in row.numbers {
                if let Ok(p) = PhoneNumber::parse(&n, Region::Se) {
                    out.entry(key.clone()).or_default().push(p);
                }
            }
        }
        Ok(out)
    }
}

impl Directory for HttpDirectory {
    fn lookup<'a>(
        &'a self,
        addresses: &'a [AddressKey],
    ) -> Pin<Box<dyn Future<Output = Numbers> + Send + 'a>> {
        Box::pin(async move {
            // Batches run side by side (at most four in flight, to be a polite client) under
            // one deadline, so a slow directory delays the step, and with it the registered
            // recipients, by at most `timeout_ms` in all rather than per batch.
            let mut set = tokio::task::JoinSet::new();
            let started = tokio::time::Instant::now();
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
            for chunk in addresses.chunks(self.batch_size) {
                let this = self.clone();
                let chunk = chunk.to_vec();
                let slots = slots.clone();
                set.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    (chunk.len(), this.batch(&chunk).await)
                });
            }
            let mut out = HashMap::new();
            loop {
                match tokio::time::timeout_at(started + self.deadline, set.join_next()).await {
                    Ok(Some(Ok((_, Ok(n))))) => out.extend(n),
                    Ok(Some(Ok((len, Err(e))))) => tracing::warn!(
                        error = format!("{e:#}"),
                        addresses = len,
                        "directory lookup failed; those addresses get no directory numbers"
                    ),
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "a directory lookup task failed")
                    }
                    Ok(None) => break,
                    Err(_) => {
                        tracing::warn!(
                            unanswered = set.len(),
                            "the directory did not answer in time; going on without the rest"
                        );
                        set.abort_all();
                        break;
                    }
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_adapter_reads_numbers_per_address_and_skips_bad_rows() {
        let csv = "street;house_number;postcode;phone\nStorgatan;1;123 45;070-111 22 33\nstorgatan;1;12345;+46701112234\nStorgatan;1;12345;08-123 456 78\nStorgatan;2;12345;nonsense\n";
        let (numbers, skipped) = FileDirectory::parse(csv.as_bytes()).unwrap();
        assert_eq!(skipped, 2);
        let at = &numbers[&AddressKey::new("Storgatan", "1", "12345")];
        assert_eq!(
            at.iter().map(|p| p.e164()).collect::<Vec<_>>(),
            vec!["+46701112233", "+46701112234"]
        );
        assert!(
            FileDirectory::parse(b"street,phone\n")
                .unwrap_err()
                .to_string()
                .contains("house_number")
        );
    }
}
