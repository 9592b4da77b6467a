//! The census of a replay region (step R2 of `counting::rounds`), for the events
//! topic. After a claim, offsets `committed..=attempted` may span many rounds of
//! the previous owner, each of which wrote different series. The new owner reads
//! that part of the log once (with the dedup priming, `priming`) for the series
//! in it, then each series' *floor*: its all-time row's `last_offset`, written last
//! in every round (in the series' last, atomic batch), so every row of the series
//! holds its events up to there. The
//! fold then skips what the floors cover (R3), and the first round is the fenced
//! one at exactly `attempted` (R4).
//!
//! The floors are one single-row read per series, which the first round needs
//! anyway: they go into the owner's row cache.

use std::collections::{HashMap, HashSet};

use counting::{Census, RangeRead, RowCache, SeriesKey, StoredRow};
use futures::StreamExt;

use crate::halt::{Halt, Reason};
use crate::metrics::{CENSUS_IN_DOUBT, CENSUS_ROUNDS, CENSUS_SERIES, op};
use crate::owner::Shared;

/// The census of partition `p`'s region `start..=through` over `series`, and the
/// cache that knows their all-time rows. `None`: shutdown came first. A row
/// written from another Kafka partition halts (the topic grew).
pub(crate) fn take(
    shared: &Shared,
    p: i32,
    series: HashSet<SeriesKey>,
    start: i64,
    through: i64,
) -> Option<Result<(Census, RowCache), Halt>> {
    let started = std::time::Instant::now();
    let (store, retry) = (&*shared.store, &shared.retry);
    let reads = series.into_iter().map(|key| {
        let read = RangeRead { part: key.total_row().part(), from: 0, until: None };
        async move { retry.cassandra(op::READ, || store.read_range(&read, p)).await.map(|rows| (key, read, rows)) }
    });
    let answers: Vec<_> = shared
        .rt
        .block_on(futures::stream::iter(reads).buffer_unordered(shared.cfg.concurrency.max(1)).collect::<Vec<_>>());
    let mut cache = RowCache::default();
    let mut floors = HashMap::with_capacity(answers.len());
    for answer in answers {
        let (key, read, (rows, foreign)) = answer?;
        if let Some(f) = foreign {
            return Some(Err(Halt::new(Reason::Overlap, f.to_string(), Some(start))));
        }
        let floor = rows.first().map_or(-1, |(_, r): &(i64, StoredRow)| r.last_offset);
        cache.learn(&read, rows);
        floors.insert(key, floor);
    }
    // Rounds of the previous owner that completed inside the region: each wrote
    // some series' all-time rows at its own offset. A floor at `through` is the
    // round in doubt's: a series it wrote whole (its last batch landed).
    let rounds: HashSet<i64> = floors.values().copied().filter(|f| (start..through).contains(f)).collect();
    let in_doubt = floors.values().filter(|&&f| f == through).count();
    let labels = [("topic", shared.topic.clone())];
    CENSUS_SERIES.counter_with(&labels).increment(floors.len() as u64);
    CENSUS_ROUNDS.counter_with(&labels).increment(rounds.len() as u64);
    CENSUS_IN_DOUBT.counter_with(&labels).increment(in_doubt as u64);
    tracing::info!(
        topic = %shared.topic,
        partition = p,
        start,
        attempted = through,
        series = floors.len(),
        rounds_in_region = rounds.len(),
        in_doubt_series = in_doubt,
        ms = started.elapsed().as_millis() as u64,
        "census of the replay region"
    );
    Some(Ok((Census { through, floors }, cache)))
}
