//! Async client for the vcount ingest gateway.
//!
//! Every event carries an `eventId`: the caller's, or a UUIDv7 the client picks
//! before the first attempt. Retries resend the very same bytes, so a retry after
//! a lost answer is dropped by the aggregator's dedup window instead of counted
//! twice. That is what makes it safe to retry on timeouts and broken connections,
//! where the first attempt may well have been counted.
//!
//! Retries are only for answers that may succeed later: 5xx, 429, timeouts and
//! connection errors, with exponential backoff and full jitter, or the server's
//! `Retry-After`. A circuit breaker stops sending to a gateway that keeps failing.
//! [`Batcher`] groups single events into batch requests bounded in size and time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vcount_client::Error> {
//! use vcount_client::{BatcherConfig, Client, ClientConfig, Event, EventKind};
//! let client = Client::new(ClientConfig::new("http://127.0.0.1:18080"))?;
//! let video = uuid::Uuid::new_v4();
//! let id = client.send(Event::view(video)).await?;
//! let outcome = client.send_batch(vec![Event::view(video), Event::new(video, EventKind::Like)]).await?;
//! assert_eq!(outcome.accepted(), 2);
//! let batcher = client.batcher(BatcherConfig::default());
//! let id = batcher.submit(Event::view(video)).await?;
//! # Ok(()) }
//! ```

mod batcher;
mod breaker;
mod error;
mod event;
mod retry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;

pub use batcher::{Batcher, BatcherConfig, Ticket};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use error::{Error, Failure};
pub use event::{Event, EventKind};
pub use retry::{RetryPolicy, parse_retry_after};

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:18080`.
    pub base_url: String,
    /// Whole-request deadline per attempt (connect, send, answer, body).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// Idle keep-alive connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// A producer API key, sent as `X-Api-Key` on every request. The gateway needs
    /// one (or a signed-in user) for batches and for values other than 1.
    pub api_key: Option<String>,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            pool_max_idle_per_host: usize::MAX,
            api_key: None,
        }
    }
}

/// A per-item rejection in a batch answer (`rejected[{index, field, detail}]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Rejection {
    pub index: usize,
    /// The field at fault as the gateway names it, e.g. `[3].occurredAt`.
    pub field: Option<String>,
    pub detail: String,
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        // The event is known: name its field without the batch index.
        let field =
            r.field.map(|f| f.strip_prefix(&format!("[{}]", r.index)).unwrap_or(&f).trim_start_matches('.').to_owned());
        Error::Rejected { status: 422, field: field.filter(|f| !f.is_empty()), detail: r.detail }
    }
}

/// The answer to a batch: for each event, in order, its id or its rejection.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOutcome {
    pub results: Vec<Result<Uuid, Rejection>>,
}

impl BatchOutcome {
    pub fn accepted(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// Counters since the client was built (all clones share them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent, retries included.
    pub attempts: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Calls refused by the open breaker.
    pub breaker_refusals: u64,
    /// Times the breaker opened.
    pub breaker_trips: u64,
}

/// A cheap-to-clone handle; clones share connections, breaker and counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    events_url: String,
    batch_url: String,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    attempts: AtomicU64,
    retries: AtomicU64,
    refusals: AtomicU64,
}

#[derive(Deserialize)]
struct BatchAnswer {
    accepted: usize,
    rejected: Vec<Rejection>,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

/// How one attempt ended.
enum Attempt {
    Answered(Bytes),
    Fatal(Error),
    Retry(Failure),
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        if cfg.retry.max_attempts == 0 {
            return Err(Error::Config("retry.max_attempts must be at least 1".into()));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            let mut v = reqwest::header::HeaderValue::from_str(key)
                .map_err(|_| Error::Config("api_key is not a header value".into()))?;
            v.set_sensitive(true);
            headers.insert("x-api-key", v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let base = cfg.base_url.trim_end_matches('/');
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                events_url: format!("{base}/api/v1/events"),
                batch_url: format!("{base}/api/v1/events:batch"),
                retry: cfg.retry,
                breaker: CircuitBreaker::new(cfg.breaker),
                attempts: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                refusals: AtomicU64::new(0),
            }),
        })
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    pub fn stats(&self) -> ClientStats {
        let i = &self.inner;
        ClientStats {
            attempts: i.attempts.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
            breaker_refusals: i.refusals.load(Ordering::Relaxed),
            breaker_trips: i.breaker.trips(),
        }
    }

    /// Sends one event (`POST /api/v1/events`); its id once the gateway has made it
    /// durable (202).
    pub async fn send(&self, mut event: Event) -> Result<Uuid, Error> {
        let id = event.ensure_id();
        let body = serde_json::to_vec(&event).map_err(|e| Error::Config(e.to_string()))?;
        self.post(&self.inner.events_url, body.into()).await?;
        Ok(id)
    }

    /// Sends events as one batch (`POST /api/v1/events:batch`, 1..=1000 events).
    /// Items the gateway rejects are reported in place and never retried; a
    /// failure of the whole request is the `Err`.
    pub async fn send_batch(&self, mut events: Vec<Event>) -> Result<BatchOutcome, Error> {
        if events.is_empty() {
            return Ok(BatchOutcome { results: Vec::new() });
        }
        let ids: Vec<Uuid> = events.iter_mut().map(Event::ensure_id).collect();
        let body = serde_json::to_vec(&events).map_err(|e| Error::Config(e.to_string()))?;
        let answer = self.post(&self.inner.batch_url, body.into()).await?;
        let answer: BatchAnswer =
            serde_json::from_slice(&answer).map_err(|e| Error::Protocol(format!("batch answer: {e}")))?;
        let mut results: Vec<Result<Uuid, Rejection>> = ids.into_iter().map(Ok).collect();
        for r in answer.rejected {
            let slot =
                results.get_mut(r.index).ok_or_else(|| Error::Protocol(format!("rejected index {}", r.index)))?;
            *slot = Err(r);
        }
        let outcome = BatchOutcome { results };
        if outcome.accepted() != answer.accepted {
            return Err(Error::Protocol(format!(
                "{} accepted of {} events but {} rejected",
                answer.accepted,
                outcome.results.len(),
                outcome.results.len() - outcome.accepted()
            )));
        }
        Ok(outcome)
    }

    /// Starts a [`Batcher`] on the current tokio runtime.
    pub fn batcher(&self, cfg: BatcherConfig) -> Batcher {
        Batcher::start(self.clone(), cfg)
    }

    /// POSTs `body` until a 2xx (its body), a refusal, or the policy gives up.
    async fn post(&self, url: &str, body: Bytes) -> Result<Bytes, Error> {
        let i = &self.inner;
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let permit = match i.breaker.acquire() {
                Ok(p) => p,
                Err(retry_in) => {
                    i.refusals.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::CircuitOpen { attempts, retry_in });
                }
            };
            i.attempts.fetch_add(1, Ordering::Relaxed);
            if attempts > 0 {
                i.retries.fetch_add(1, Ordering::Relaxed);
            }
            attempts += 1;
            let failure = match self.attempt(url, body.clone()).await {
                Attempt::Answered(b) => {
                    permit.record(true);
                    return Ok(b);
                }
                Attempt::Fatal(e) => {
                    permit.record(true);
                    return Err(e);
                }
                Attempt::Retry(f) => {
                    permit.record(false);
                    f
                }
            };
            let retry_after = match &failure {
                Failure::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let delay = i.retry.delay(attempts - 1, retry_after, &mut rand::rng());
            let gave_up = || Error::GaveUp { attempts, last: failure.clone() };
            let Some(delay) = delay else { return Err(gave_up()) };
            if attempts >= i.retry.max_attempts || started.elapsed() + delay > i.retry.max_elapsed {
                return Err(gave_up());
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &str, body: Bytes) -> Attempt {
        let res = self.inner.http.post(url).header("content-type", "application/json").body(body).send().await;
        let res = match res {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(transport_failure(&e)),
        };
        let status = res.status();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        // A body cut off is a lost answer like any other: retry.
        let bytes = match res.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(transport_failure(&e)),
        };
        let code = status.as_u16();
        if status.is_success() {
            Attempt::Answered(bytes)
        } else if status.is_server_error() || code == 429 {
            Attempt::Retry(Failure::Status { status: code, retry_after })
        } else if status.is_client_error() {
            let problem: Option<ProblemBody> = serde_json::from_slice(&bytes).ok();
            let (field, detail) = match problem {
                Some(p) => (p.field, p.detail.or(p.title).unwrap_or_default()),
                None => (None, String::from_utf8_lossy(&bytes).chars().take(200).collect()),
            };
            Attempt::Fatal(Error::Rejected { status: code, field, detail })
        } else {
            Attempt::Fatal(Error::Protocol(format!("HTTP {code}")))
        }
    }
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    // The chain holds the useful part ("connection refused", "incomplete message").
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect(msg)
    } else {
        Failure::Transport(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_rejection_names_the_field_without_the_index() {
        let r = Rejection { index: 3, field: Some("[3].occurredAt".into()), detail: "too old".into() };
        assert_eq!(
            Error::from(r),
            Error::Rejected { status: 422, field: Some("occurredAt".into()), detail: "too old".into() }
        );
        let whole = Rejection { index: 4, field: Some("[4]".into()), detail: "not an object".into() };
        assert!(matches!(Error::from(whole), Error::Rejected { field: None, .. }));
    }
}
