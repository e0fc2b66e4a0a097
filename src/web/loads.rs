//! The body of a bulk load (`PUT /facilities`, `PUT /grid-nodes`), read as it arrives: a
//! reader from `crate::import` pulls the request's chunks through a buffer on a thread of
//! the blocking pool and keeps only the rows, so a load of 64 MiB never holds its body (nor
//! a JSON value of all of it). The handler writes nothing until the reader reached the end.

use std::io::{BufReader, Read};

use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::edge::IMPORT_BODY;
use super::error::ApiError;
use crate::import::{Format, ReadError};

/// What a reader reads a body from: a buffer over the chunks still to come.
pub type BodyInput = BufReader<Box<dyn Read + Send>>;

/// A buffer as large as the chunks a client typically sends, so most reads copy one chunk.
const BUFFER: usize = 64 * 1024;

/// The body went past `IMPORT_BODY` while it was read.
#[derive(Debug, thiserror::Error)]
#[error("the body is larger than {} MiB", IMPORT_BODY / (1024 * 1024))]
struct TooLarge;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("{TooLarge}; nothing was loaded"),
    )
}

/// The format a load's `Content-Type` names (a JSON array when it names none); `None` for
/// one no load comes in.
pub fn format(headers: &HeaderMap) -> Option<Format> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
    ]
    .iter()
    .any(|t| content_type.starts_with(t))
    {
        Some(Format::Ndjson)
    } else if content_type.starts_with("application/json") {
        Some(Format::JsonArray)
    } else if content_type.starts_with("text/csv") {
        Some(Format::Csv)
    } else {
        None
    }
}

/// Runs `read` over `body` on the blocking pool and answers what it returns, or the refusal:
/// 413 once the body passes `IMPORT_BODY` (at once when its `Content-Length` says so), 400
/// when it is not in its format or breaks off. Either way the reader's rows are dropped.
pub async fn read<T: Send + 'static>(
    body: Body,
    read: impl FnOnce(BodyInput) -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ApiError> {
    if body.size_hint().lower() > IMPORT_BODY as u64 {
        return Err(too_large());
    }
    let mut received = 0;
    let chunks = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        received += chunk.len();
        if received > IMPORT_BODY {
            return Err(std::io::Error::other(TooLarge));
        }
        Ok(chunk)
    });
    let input: Box<dyn Read + Send> = Box::new(SyncIoBridge::new(StreamReader::new(chunks)));
    let outcome =
        tokio::task::spawn_blocking(move || read(BufReader::with_capacity(BUFFER, input))).await;
    match outcome {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(ReadError::Refused(reason))) => Err(ApiError::bad_request(reason)),
        Ok(Err(ReadError::Io(e))) if e.get_ref().is_some_and(|e| e.is::<TooLarge>()) => {
            Err(too_large())
        }
        Ok(Err(ReadError::Io(e))) => Err(ApiError::bad_request(format!(
            "the body broke off before its end: {e}; nothing was loaded"
        ))),
        Err(e) => Err(anyhow::Error::new(e).context("reading a load").into()),
    }
}
