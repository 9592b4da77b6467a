//! The aggregator's Cassandra adapter on the real Cassandra, for requests that
//! carry several series (`flush.series_per_request`): one unlogged batch over
//! several partitions, one `video_id IN` read for several series, and the
//! replica grouping that keeps a request's series on the same nodes.

use std::time::Duration;

use aggregator::store::RollupStore;
use counting::{EventKind, Granularity, PartKey, RangeRead, Retention, RowKey, RowWrite};
use e2e::*;
use platform::cassandra::CassandraConfig;
use uuid::Uuid;

const MINUTE: i64 = 60_000;

/// A series' four rows (minute, hour, day, all-time) at `value`, offset `offset`.
fn series(video: Uuid, at_ms: i64, value: i64, offset: i64) -> Vec<RowWrite> {
    [Granularity::Minute, Granularity::Hour, Granularity::Day, Granularity::Total]
        .into_iter()
        .map(|g| RowWrite {
            key: RowKey { video_id: video, kind: EventKind::View, granularity: g, bucket_ms: g.bucket(at_ms) },
            value,
            last_offset: offset,
            tally: None,
        })
        .collect()
}

fn total_read(video: Uuid) -> RangeRead {
    let part = PartKey { video_id: video, kind: EventKind::View, granularity: Granularity::Total };
    RangeRead { part, from: 0, until: None }
}

#[tokio::test]
async fn several_series_per_request_write_and_read_back_exactly() {
    let tag: u32 = rand::random();
    let cfg = CassandraConfig {
        nodes: cassandra_nodes(),
        keyspace: format!("t_store_requests_{tag:08x}"),
        ..CassandraConfig::default()
    };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await.expect("Cassandra is up");
    platform::cassandra::migrate(&session, &cfg).await.expect("migrations");
    let store = RollupStore::new(session, &cfg.keyspace, "", Retention::default()).await.expect("statements");

    // Twenty series written eight to a request from Kafka partition 3, a
    // twenty-first from partition 5 (another owner's row).
    let now = now_ms();
    let videos: Vec<Uuid> = (0..21).map(|_| Uuid::new_v4()).collect();
    let rows: Vec<Vec<RowWrite>> = videos
        .iter()
        .enumerate()
        .map(|(i, v)| series(*v, now - i as i64 * MINUTE, 10 + i as i64, 100 + i as i64))
        .collect();
    let slices: Vec<&[RowWrite]> = rows[..20].iter().map(Vec::as_slice).collect();
    for request in slices.chunks(8) {
        store.write_series(request, 3, 1).await.expect("a batch over eight partitions");
    }
    store.write_series(&[&rows[20]], 5, 1).await.expect("one series");

    // On one node every series has the same replicas, and the driver knows them.
    let cluster = store.session().get_cluster_state();
    let replicas: Vec<u64> = videos.iter().map(|v| store.replicas_of(&cluster, *v, "view")).collect();
    assert!(replicas.iter().all(|r| *r == replicas[0] && *r != 0), "{replicas:?}");

    // One read of eleven all-time rows: eight written, the foreign one, two never.
    let unknown = [Uuid::new_v4(), Uuid::new_v4()];
    let asked: Vec<Uuid> = videos[12..].iter().chain(&unknown).copied().collect();
    let reads: Vec<RangeRead> = asked.iter().map(|v| total_read(*v)).collect();
    let answers = store.read_ranges(&reads, 3).await.expect("one IN read");
    assert_eq!(answers.len(), reads.len());
    for (i, (video, (rows, foreign))) in asked.iter().zip(&answers).enumerate() {
        let n = 12 + i;
        if n < 20 {
            assert_eq!(rows.len(), 1, "video {n}");
            let (bucket, row) = rows[0];
            assert_eq!((bucket, row.value, row.last_offset), (0, 10 + n as i64, 100 + n as i64), "video {n}");
            assert!(foreign.is_none(), "video {n}: {foreign:?}");
        } else if n == 20 {
            let f = foreign.expect("the row partition 5 wrote is another owner's");
            assert_eq!((f.written_by, f.reader), (5, 3));
        } else {
            assert!(rows.is_empty() && foreign.is_none(), "{video} was never written: {rows:?}");
        }
    }

    // A bounded range of minute rows, several series in one read: each gets its own.
    let minute_reads: Vec<RangeRead> = videos[..6]
        .iter()
        .map(|v| RangeRead {
            part: PartKey { video_id: *v, kind: EventKind::View, granularity: Granularity::Minute },
            from: Granularity::Minute.bucket(now - 3 * MINUTE),
            until: Some(Granularity::Minute.bucket(now - MINUTE)),
        })
        .collect();
    let answers = store.read_ranges(&minute_reads, 3).await.expect("one IN read of minutes");
    let found: Vec<usize> = answers.iter().map(|(rows, _)| rows.len()).collect();
    // Video i's minute is i minutes back: only 2 and 3 fall in [now-3, now-1).
    assert_eq!(found, vec![0, 0, 1, 1, 0, 0]);
    assert_eq!(answers[2].0[0].1.value, 12);
    assert_eq!(answers[3].0[0].1.value, 13);

    // The one-series read agrees with the many-series one.
    let (rows, foreign) = store.read_range(&total_read(videos[0]), 3).await.expect("read");
    assert_eq!((rows.len(), rows[0].1.value, foreign), (1, 10, None));
}
