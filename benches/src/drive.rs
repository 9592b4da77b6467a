//! How one unit of load is sent, and what it came to.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use uuid::Uuid;
use vcount_client::{Batcher, Client, Event, EventKind};

use crate::Mode;
use crate::workload::{Record, Workload};

/// What one request (or, for the batcher, one event) came to.
#[derive(Default)]
pub struct Sent {
    /// The gateway said 2xx.
    pub ok: bool,
    /// Events acknowledged.
    pub acked: Vec<Record>,
    /// Events of a request that failed without an answer saying they were not
    /// written (a timeout, a refused or reset connection, a 5xx): each may or may
    /// not be in the log, so each may or may not be counted.
    pub unconfirmed: Vec<Record>,
    /// One label per failed request or rejected event.
    pub errors: Vec<String>,
    pub rejected: u64,
}

impl Sent {
    fn failed(kind: String) -> Self {
        Self { errors: vec![kind], ..Self::default() }
    }

    /// Failed; unless surely not written (refused, or never sent), perhaps
    /// written anyway.
    fn failed_with(kind: String, not_written: bool, records: Vec<Record>) -> Self {
        let unconfirmed = if not_written { Vec::new() } else { records };
        Self { unconfirmed, ..Self::failed(kind) }
    }
}

/// The client says the events were not sent, or refused: they are not in the log.
fn surely_not_written(e: &vcount_client::Error) -> bool {
    use vcount_client::Error;
    matches!(e, Error::Rejected { .. } | Error::CircuitOpen { attempts: 0, .. } | Error::Config(_))
}

/// Labels a raw HTTP failure like the client library labels its failures.
pub fn http_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

pub enum Driver {
    /// KillrVideo's body-less `POST /api/v1/videos/id/{id}/view`, what the peers
    /// implement too. No event id: a retry could count twice, so none is made.
    View(ViewConns),
    /// The client library: `/api/v1/events`, `/api/v1/events:batch`, the batcher.
    Client { client: Client, batcher: Option<Batcher> },
}

impl Driver {
    pub async fn send(&self, mode: Mode, batch_size: usize, work: &Workload) -> Sent {
        let now = chrono::Utc::now().timestamp_millis();
        match (self, mode) {
            (Driver::View(_), _) => {
                let video = work.popularity.pick(&mut rand::rng());
                let record = Record { video, kind: EventKind::View, at_ms: None };
                match self.view(video).await {
                    Ok(()) => Sent { ok: true, acked: vec![record], ..Sent::default() },
                    Err(kind) => {
                        let refused = kind.starts_with("status_4");
                        Sent::failed_with(kind, refused, vec![record])
                    }
                }
            }
            (Driver::Client { client, .. }, Mode::Single) => {
                let (event, record) = work.event(&mut rand::rng(), now);
                match client.send(event).await {
                    Ok(_) => Sent { ok: true, acked: vec![record], ..Sent::default() },
                    Err(e) => Sent {
                        rejected: u64::from(e.is_rejected()),
                        ..Sent::failed_with(e.kind(), surely_not_written(&e), vec![record])
                    },
                }
            }
            (Driver::Client { client, .. }, Mode::Batch) => {
                let (events, records): (Vec<Event>, Vec<Record>) = {
                    let mut rng = rand::rng();
                    (0..batch_size).map(|_| work.event(&mut rng, now)).unzip()
                };
                match client.send_batch(events).await {
                    Ok(outcome) => {
                        let mut sent = Sent { ok: true, ..Sent::default() };
                        for (r, record) in outcome.results.into_iter().zip(records) {
                            match r {
                                Ok(_) => sent.acked.push(record),
                                Err(_) => {
                                    sent.rejected += 1;
                                    sent.errors.push("rejected_422".into());
                                }
                            }
                        }
                        sent
                    }
                    Err(e) => Sent::failed_with(e.kind(), surely_not_written(&e), records),
                }
            }
            (Driver::Client { client, batcher }, Mode::Batcher) => {
                let (event, record) = work.event(&mut rand::rng(), now);
                let result = match batcher {
                    Some(b) => b.submit(event).await,
                    None => client.send(event).await,
                };
                match result {
                    Ok(_) => Sent { ok: true, acked: vec![record], ..Sent::default() },
                    Err(e) => Sent {
                        rejected: u64::from(e.is_rejected()),
                        ..Sent::failed_with(e.kind(), surely_not_written(&e), vec![record])
                    },
                }
            }
        }
    }

    async fn view(&self, video: Uuid) -> Result<(), String> {
        let Driver::View(conns) = self else { unreachable!("only the view driver posts views") };
        conns.post(&format!("/api/v1/videos/id/{video}/view")).await
    }

    /// One view of a probe video, through the same endpoint as the load.
    pub async fn probe(&self, video: Uuid) -> Result<(), String> {
        match self {
            Driver::View(_) => self.view(video).await,
            Driver::Client { client, .. } => client.send(Event::view(video)).await.map(|_| ()).map_err(|e| e.kind()),
        }
    }
}

/// A plain HTTP client for views and reads; with `api_key`, every request carries it.
pub fn http(connections: usize, timeout: Duration, api_key: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = api_key {
        headers.insert("x-api-key", HeaderValue::from_str(key)?);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(connections)
        .timeout(timeout)
        .build()?)
}

/// Body-less POSTs on plain HTTP/1.1 keep-alive connections of its own, one
/// request at a time on each. The caller bounds the requests in flight, so the
/// connections never outnumber them; an idle one is reused, a failed one dropped.
pub struct ViewConns {
    addr: String,
    host: HeaderValue,
    /// Sent as `X-Api-Key` on every request when set (else the gateway's
    /// per-IP anonymous limit applies).
    api_key: Option<HeaderValue>,
    timeout: Duration,
    idle: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
}

impl ViewConns {
    /// `base` is `http://host:port` (no TLS, no path).
    pub fn new(base: &str, timeout: Duration, api_key: Option<&str>) -> anyhow::Result<Self> {
        let uri: hyper::Uri = base.parse()?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "the view driver speaks plain http: {base}");
        let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("no host in {base}"))?;
        let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        let api_key = api_key.map(HeaderValue::from_str).transpose()?;
        Ok(Self {
            addr,
            host: HeaderValue::from_str(authority.as_str())?,
            api_key,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.addr).await.map_err(|_| "connect".to_owned())?;
        stream.set_nodelay(true).map_err(|_| "connect".to_owned())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| "connect".to_owned())?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// POSTs `path` with no body; `Ok` on a 2xx, else the error's label.
    pub async fn post(&self, path: &str) -> Result<(), String> {
        let idle = self.idle.lock().expect("idle connections").pop();
        let mut conn = match idle {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        let mut req = hyper::Request::post(path).header(HOST, self.host.clone());
        if let Some(key) = &self.api_key {
            req = req.header("x-api-key", key.clone());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|_| "transport".to_owned())?;
        let exchange = async {
            conn.ready().await?;
            let res = conn.send_request(req).await?;
            let status = res.status();
            res.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        let status = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err("timeout".into()),
            Ok(Err(_)) => return Err("transport".into()),
            Ok(Ok(status)) => status,
        };
        self.idle.lock().expect("idle connections").push(conn);
        if status.is_success() { Ok(()) } else { Err(format!("status_{}", status.as_u16())) }
    }
}
