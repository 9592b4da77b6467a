//! Size- and time-bounded batching of single events.
//!
//! Callers hand in one event at a time and get its own outcome back; a worker
//! task groups events into batch requests of at most `max_batch` events, sent no
//! later than `linger` after the first event of the batch arrived. A full queue
//! makes [`Batcher::enqueue`] wait: backpressure, not unbounded memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{Client, Error, Event};

#[derive(Clone, Debug)]
pub struct BatcherConfig {
    /// Most events per batch request (the gateway takes up to 1000).
    pub max_batch: usize,
    /// Longest wait of the first event of a batch before the batch is sent.
    pub linger: Duration,
    /// Batch requests in flight at once.
    pub max_in_flight: usize,
    /// Events queued before `enqueue` waits.
    pub queue_capacity: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self { max_batch: 500, linger: Duration::from_millis(5), max_in_flight: 4, queue_capacity: 10_000 }
    }
}

type Reply = oneshot::Sender<Result<Uuid, Error>>;

/// A handle to a batching worker; clones feed the same worker. When the last
/// handle is dropped, the worker sends what it holds and stops.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(Event, Reply)>,
}

/// One queued event: its id now, its outcome when awaited.
#[must_use = "a ticket is how the caller learns whether the event was counted"]
pub struct Ticket {
    event_id: Uuid,
    rx: oneshot::Receiver<Result<Uuid, Error>>,
}

impl Ticket {
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }
}

impl Future for Ticket {
    type Output = Result<Uuid, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

impl Batcher {
    pub(crate) fn start(client: Client, cfg: BatcherConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        tokio::spawn(run(client, cfg, rx));
        Self { tx }
    }

    /// Queues an event (waiting while the queue is full) and returns its ticket.
    pub async fn enqueue(&self, mut event: Event) -> Result<Ticket, Error> {
        let event_id = event.ensure_id();
        let (reply, rx) = oneshot::channel();
        self.tx.send((event, reply)).await.map_err(|_| Error::Closed)?;
        Ok(Ticket { event_id, rx })
    }

    /// Queues an event and waits for its outcome.
    pub async fn submit(&self, event: Event) -> Result<Uuid, Error> {
        self.enqueue(event).await?.await
    }
}

async fn run(client: Client, cfg: BatcherConfig, mut rx: mpsc::Receiver<(Event, Reply)>) {
    let max = cfg.max_batch.max(1);
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    let mut batch: Vec<(Event, Reply)> = Vec::with_capacity(max);
    let mut deadline: Option<Instant> = None;
    loop {
        let full = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => {
                    if batch.is_empty() {
                        deadline = Some(Instant::now() + cfg.linger);
                    }
                    batch.push(item);
                    batch.len() >= max
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => true,
        };
        if full {
            deadline = None;
            let permit = in_flight.clone().acquire_owned().await.expect("never closed");
            let client = client.clone();
            let batch = std::mem::replace(&mut batch, Vec::with_capacity(max));
            tokio::spawn(async move {
                send(&client, batch).await;
                drop(permit);
            });
        }
    }
    if !batch.is_empty() {
        send(&client, batch).await;
    }
}

async fn send(client: &Client, batch: Vec<(Event, Reply)>) {
    let (events, replies): (Vec<Event>, Vec<Reply>) = batch.into_iter().unzip();
    match client.send_batch(events).await {
        Ok(outcome) => {
            for (reply, result) in replies.into_iter().zip(outcome.results) {
                let _ = reply.send(result.map_err(Error::from));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
