//! Distinct viewers and who viewed, written in protocol step P8 beside the
//! activity entries, from the same signed-in views (`counting::ViewerLog`).
//!
//! Per flush, for each (video, hour) and (video, UTC day) the views touch: read
//! the stored sketch, union in the flush's users (`counting::viewers`), write the
//! union back whole at the owner's fenced timestamp `write_timestamp(epoch,
//! through)`, with the TTL of that granularity's rollup retention. Then one
//! who-viewed row per (video, user) at the time of the user's latest view.
//!
//! Who counts: signed-in users only (the gateway verified the user's token). An
//! anonymous view is counted as a view in the rollups but is no viewer: there is
//! no identity the server can trust, and a client-chosen anonymous id would let
//! anyone inflate the figure by sending fresh ids.
//!
//! Why the sketches are exact in the only sense a sketch can be (every viewer in
//! the log up to the committed offset is in the stored union, and no one else):
//!
//! - **Replays cannot inflate it.** Adding a user already in a sketch, or taking
//!   the union of a sketch with itself, changes nothing (DataSketches' HLL keeps
//!   the maximum per register, or the set of hashes while small). A flush replayed
//!   after a crash unions the same users again: the stored bytes stay the same.
//! - **Nothing is lost.** A sketch's events are all in one Kafka partition (the
//!   topic is keyed by video), so one owner at a time does the read-modify-write.
//!   Within an owner, flushes of a partition run one after another, so each read
//!   sees the previous flush's write, which landed before the commit (P9). A
//!   crash between a sketch's write and the commit replays the flush: a union
//!   again. A flush that dies before writing some sketch leaves it without those
//!   users until the successor replays the flush from the committed offset (P2
//!   fences it at the same offsets). A grown topic (one video in two partitions)
//!   halts at P6 on the rollup rows (`ForeignRow`), before this step runs.
//! - **A stale owner loses.** Its writes carry its older epoch in the timestamp's
//!   high bits, so they lose to any write of its successor whatever the order of
//!   arrival. What a stale owner wrote before its successor read the sketch is
//!   only viewers from the log, which the successor replays anyway; what it
//!   writes after is discarded by the timestamp and replayed by the successor.
//! - **Successive writes of one owner never tie.** Cassandra breaks a timestamp
//!   tie by comparing values, so an earlier, smaller union could beat a later one
//!   at an equal timestamp. The timestamp's low bits are the flush's last offset
//!   (`through`), and every flush of an owner covers offsets after the previous
//!   one's, so two flushes that carry views never share a timestamp. (Under
//!   `counting::rounds`, rounds may repeat `through` when nothing was folded in
//!   between, but then the log has no new views and this step writes nothing.)
//!   The only equal-timestamp writes are retries of one write, with the same bytes.
//!   Being a superset is not enough on its own: the later union must win, and
//!   the distinct timestamps are what make it win.
//!
//! Who viewed: `video_viewers` rows are written `USING TIMESTAMP` = the view's
//! `occurred_at` in microseconds, not the fenced timestamp. The row's only value
//! is that same time, so whichever write carries the latest view wins in any
//! order, equal timestamps carry equal values, and a replay, or a stale owner,
//! writes nothing new. Its TTL ends `viewers.list_ttl_secs` after the view.

use counting::SignedInView;
use counting::viewers::{SketchKey, Viewers, latest_views, sketch_additions};
use futures::StreamExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::metrics::{UNREADABLE_SKETCHES, WRITE_REQUESTS, op};
use crate::owner::Shared;

/// Who-viewed rows per write request: a single-partition unlogged batch (a row is
/// about 50 bytes), well under Cassandra's batch warning threshold.
const MAX_BATCH_ROWS: usize = 50;

/// Writes the viewer sketches and the who-viewed rows of `views` (one flush's
/// signed-in views) for the owner in `epoch` of a flush ending at `through`.
/// `false`: abandoned at shutdown (nothing is committed; the flush is replayed).
pub(crate) async fn write_viewers(
    shared: &Shared,
    permits: &Semaphore,
    views: &[SignedInView],
    through: i64,
    epoch: i64,
) -> bool {
    if views.is_empty() {
        return true;
    }
    let timestamp = counting::write_timestamp(epoch, through);
    let additions = sketch_additions(views);
    let sketches: Vec<bool> = futures::stream::iter(additions.iter())
        .map(|(key, users)| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            union_into(shared, key, users, timestamp).await
        })
        .buffer_unordered(shared.cfg.concurrency.max(1))
        .collect()
        .await;
    if !sketches.into_iter().all(|ok| ok) {
        return false;
    }
    let latest = latest_views(views);
    let store = &*shared.store;
    let batches = latest.chunk_by(|a, b| a.video_id == b.video_id).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    let written: Vec<bool> = futures::stream::iter(batches)
        .map(|rows| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            WRITE_REQUESTS.counter().increment(1);
            shared.retry.cassandra(op::WRITE_VIEWERS, || store.write_viewers(rows)).await.is_some()
        })
        .buffer_unordered(shared.cfg.concurrency.max(1))
        .collect()
        .await;
    if !written.into_iter().all(|ok| ok) {
        return false;
    }
    crate::fault::pause_after_viewers(&shared.cfg).await;
    true
}

/// Read, union, write one sketch. `false`: abandoned at shutdown.
async fn union_into(shared: &Shared, key: &SketchKey, users: &[Uuid], timestamp: i64) -> bool {
    let (store, retry) = (&*shared.store, &shared.retry);
    let Some(stored) = retry.cassandra(op::READ_SKETCH, || store.read_sketch(key)).await else { return false };
    let mut sketch = match stored.as_deref().map(Viewers::from_bytes) {
        None => Viewers::new(),
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            // Only a hand-written row can be unreadable: say so and start over
            // rather than stop the partition for an estimate.
            UNREADABLE_SKETCHES.counter().increment(1);
            tracing::error!(video_id = %key.video_id, granularity = key.granularity.as_str(), bucket_ms = key.bucket_ms, error = %e, "stored viewer sketch unreadable; replacing it");
            Viewers::new()
        }
    };
    users.iter().for_each(|u| sketch.add(u));
    let bytes = sketch.to_bytes();
    if stored.as_deref() == Some(bytes.as_slice()) {
        // A replay, or every user already in it: the stored sketch is the union.
        return true;
    }
    crate::fault::pause_mid_viewers(&shared.cfg, &shared.fault_paused).await;
    WRITE_REQUESTS.counter().increment(1);
    retry.cassandra(op::WRITE_SKETCH, || store.write_sketch(key, &bytes, timestamp)).await.is_some()
}
