//! Strict mode (KillrVideo's): views, events and ratings of videos the catalog has
//! never announced get 404, so random ids cannot inflate trending reads or fill the
//! rollup tables.
//!
//! The gateway still reads no database. It learns videos from the `VideoAdded`
//! events the query service publishes on the catalog topic: at start-up it reads
//! the topic from the beginning (every partition, no consumer group, nothing
//! committed) and answers 503 with `Retry-After` until it has caught up with the
//! end offsets it saw at start, then keeps following the topic. A video added a
//! moment ago may be refused for as long as the event takes to arrive (the
//! producer's linger plus a poll, milliseconds).
//!
//! Memory: one 16-byte id per video in a `HashSet`, about 40 bytes per video with
//! the table's spare capacity (10M videos ≈ 400 MB), bounded by `strict.max_videos`:
//! past it new videos are not learned and counted in
//! `gateway_strict_videos_dropped_total`, and their views are refused, which is
//! noticed at once rather than as a slow leak.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use platform::http::Problem;
use platform::kafka::KafkaConfig;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::catalog::CatalogEvent;
use schemas::catalog::catalog_event::Change;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::StrictConfig;

/// The videos strict mode accepts; with strict mode off, every id.
#[derive(Clone, Default)]
pub struct KnownVideos {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    videos: RwLock<HashSet<Uuid>>,
    max: usize,
    caught_up: AtomicBool,
}

impl KnownVideos {
    /// Strict mode off: everything passes.
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Starts following the catalog topic from its beginning (on a blocking thread,
    /// until `stop`).
    pub fn follow(kafka: &KafkaConfig, cfg: &StrictConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner {
            videos: RwLock::new(HashSet::new()),
            max: cfg.max_videos,
            caught_up: AtomicBool::new(false),
        });
        let topic = kafka.catalog_topic();
        let consumer: BaseConsumer = kafka
            .client_config()
            // Required by librdkafka, but never joined: partitions are assigned by hand.
            .set("group.id", format!("gateway-strict-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .context("creating the catalog consumer")?;
        let partitions = platform::kafka::partition_count(kafka, &topic, Duration::from_secs(10))
            .with_context(|| format!("reading the partitions of {topic}"))?;
        let mut ends = Vec::with_capacity(partitions);
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            // Nothing to catch up on where the log is empty.
            ends.push(if high > low { high } else { 0 });
            tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl).context("assigning the catalog partitions")?;
        let me = inner.clone();
        tokio::task::spawn_blocking(move || me.run(consumer, ends, stop));
        Ok(Self { inner: Some(inner) })
    }

    /// Ok for a known video (or with strict mode off); 404 naming `field` for an
    /// unknown one; 503 while the catalog is still being read at start-up.
    pub fn check(&self, field: &str, video: &Uuid) -> Result<(), Problem> {
        let Some(inner) = &self.inner else { return Ok(()) };
        if !inner.caught_up.load(Ordering::Acquire) {
            return Err(Problem::unavailable("strict mode is still reading the catalog; retry shortly", 1));
        }
        if inner.videos.read().expect("not poisoned").contains(video) {
            return Ok(());
        }
        crate::metrics::STRICT_REFUSED.counter().increment(1);
        let mut p = Problem::not_found(format!("{field}: no video {video} in the catalog"));
        p.field = Some(field.to_owned());
        Err(p)
    }

    /// For `/readyz`: strict mode is ready once it has caught up.
    pub fn ready(&self) -> Result<(), String> {
        match &self.inner {
            Some(i) if !i.caught_up.load(Ordering::Acquire) => Err("strict mode: still reading the catalog".into()),
            _ => Ok(()),
        }
    }

    /// Videos known (0 with strict mode off).
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.videos.read().expect("not poisoned").len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn run(&self, consumer: BaseConsumer, mut ends: Vec<i64>, stop: CancellationToken) {
        self.check_caught_up(&ends);
        while !stop.is_cancelled() {
            let Some(polled) = consumer.poll(Duration::from_millis(200)) else { continue };
            let msg = match polled {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "catalog consumer error");
                    continue;
                }
            };
            if let Some(end) = usize::try_from(msg.partition()).ok().and_then(|p| ends.get_mut(p))
                && msg.offset() + 1 >= *end
            {
                *end = 0;
            }
            // Other catalog events, and anything undecodable, are not ours to judge:
            // the topic's consumers that own them dead-letter what they cannot read.
            if let Ok(CatalogEvent { change: Some(Change::VideoAdded(v)), .. }) =
                CatalogEvent::decode(msg.payload().unwrap_or_default())
                && let Ok(id) = Uuid::from_slice(&v.video_id)
            {
                self.learn(id);
            }
            self.check_caught_up(&ends);
        }
    }

    fn learn(&self, id: Uuid) {
        let mut videos = self.videos.write().expect("not poisoned");
        if videos.len() >= self.max && !videos.contains(&id) {
            crate::metrics::STRICT_DROPPED.counter().increment(1);
            return;
        }
        videos.insert(id);
        crate::metrics::STRICT_VIDEOS.gauge().set(videos.len() as f64);
    }

    fn check_caught_up(&self, ends: &[i64]) {
        if !self.caught_up.load(Ordering::Relaxed) && ends.iter().all(|e| *e == 0) {
            tracing::info!(
                videos = self.videos.read().expect("not poisoned").len(),
                "strict mode caught up with the catalog"
            );
            self.caught_up.store(true, Ordering::Release);
        }
    }
}
