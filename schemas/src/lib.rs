//! One definition of what crosses process boundaries: the protobuf event schema
//! (compiled by prost at build time) and the CQL schema with its migrations.

/// Generated from `proto/events.proto`.
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/vcount.events.v1.rs"));

    impl Event {
        /// The field number of `packed`, for code that writes or walks a pack's
        /// bytes without decoding its events.
        pub const PACKED_FIELD: u32 = 13;

        /// The events this message of the events topic carries: a pack's
        /// (`packed`), or itself. The aggregator checks what a pack may hold
        /// (`aggregator::decode::events`); this only opens it.
        pub fn into_events(self) -> Vec<Event> {
            if self.packed.is_empty() { vec![self] } else { self.packed }
        }
    }
}

pub mod kind;

/// Bounds every event on the events topic keeps, whoever produced it. The gateway
/// refuses more before producing (its `events.*` settings may be stricter, never
/// looser: it checks at start-up), and the aggregator re-checks what it decodes and
/// dead-letters what breaks them, since anything with access to the topic can
/// write to it. Sums of values this size cannot overflow a 64-bit count: 2^63 is
/// 9.2 trillion events of the largest value.
pub mod limits {
    /// Largest `value` of one event.
    pub const MAX_EVENT_VALUE: i64 = 1_000_000;
    /// Largest amount one compensating event (`correction`) may take away or add:
    /// a minute of a very hot video, with room to spare; still 9 million of them
    /// before a count could overflow.
    pub const MAX_CORRECTION_VALUE: i64 = 1_000_000_000_000;
    /// How far `occurred_at_ms` may lie before `received_at_ms`: 30 days.
    pub const MAX_EVENT_AGE_MS: i64 = 30 * 24 * 3_600_000;
    /// How far `occurred_at_ms` may lie after `received_at_ms` (clock skew): 1 hour.
    pub const MAX_EVENT_FUTURE_MS: i64 = 3_600_000;
    /// `received_at_ms` (and a rating's `occurred_at_ms`) lies in
    /// [`EARLIEST_MS`, `LATEST_MS`): 2020-01-01 to 2100-01-01 UTC. Fixed bounds, not
    /// the reader's clock: whether a message counts must not depend on when it is
    /// read, or a replay after a crash could count what the first reading refused.
    pub const EARLIEST_MS: i64 = 1_577_836_800_000;
    pub const LATEST_MS: i64 = 4_102_444_800_000;
}

/// Generated from `proto/catalog.proto`: catalog changes on the catalog topic.
pub mod catalog {
    include!(concat!(env!("OUT_DIR"), "/vcount.catalog.v1.rs"));
}

/// The CQL schema, as ordered migrations. Each statement is idempotent
/// (`IF NOT EXISTS`), so applying all of them on start-up is safe.
pub mod cql {
    /// A migration: a name recorded in `schema_migrations`, and its statements.
    pub struct Migration {
        pub version: u32,
        pub name: &'static str,
        source: &'static str,
    }

    /// Every migration, oldest first.
    pub const MIGRATIONS: &[Migration] = &[
        Migration { version: 1, name: "rollups", source: include_str!("../cql/001_rollups.cql") },
        Migration { version: 2, name: "users", source: include_str!("../cql/002_users.cql") },
        Migration { version: 3, name: "videos", source: include_str!("../cql/003_videos.cql") },
        Migration { version: 4, name: "ratings", source: include_str!("../cql/004_ratings.cql") },
        Migration { version: 5, name: "trending", source: include_str!("../cql/005_trending.cql") },
        Migration { version: 6, name: "catalog", source: include_str!("../cql/006_catalog.cql") },
        Migration { version: 7, name: "comments", source: include_str!("../cql/007_comments.cql") },
        Migration { version: 8, name: "flags", source: include_str!("../cql/008_flags.cql") },
        Migration { version: 9, name: "counts", source: include_str!("../cql/009_counts.cql") },
        Migration { version: 10, name: "halts", source: include_str!("../cql/010_halts.cql") },
        Migration { version: 11, name: "moderation_audit", source: include_str!("../cql/011_moderation_audit.cql") },
        Migration { version: 12, name: "viewers", source: include_str!("../cql/012_viewers.cql") },
        Migration { version: 13, name: "partition_owners", source: include_str!("../cql/013_partition_owners.cql") },
    ];

    impl Migration {
        /// The statements of this migration with `{keyspace}` filled in.
        pub fn statements(&self, keyspace: &str) -> Vec<String> {
            split_statements(self.source).into_iter().map(|s| s.replace("{keyspace}", keyspace)).collect()
        }
    }

    /// The keyspace itself. Replication is the caller's choice (SimpleStrategy with
    /// RF 1 for a laptop, NetworkTopologyStrategy in production).
    pub fn create_keyspace(keyspace: &str, replication: &str) -> String {
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
    }

    /// Table that records which migrations ran.
    pub fn create_migrations_table(keyspace: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
             (version int PRIMARY KEY, name text, applied_at timestamp)"
        )
    }

    /// Splits a CQL file into statements: strips `--` comments, splits on `;`.
    fn split_statements(source: &str) -> Vec<String> {
        let without_comments: String = source
            .lines()
            .map(|line| match line.find("--") {
                Some(i) => &line[..i],
                None => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        without_comments
            .split(';')
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn migrations_split_into_keyspace_qualified_statements() {
            let stmts = MIGRATIONS[0].statements("ks_test");
            assert_eq!(stmts.len(), 2);
            assert!(stmts[0].starts_with("CREATE TABLE IF NOT EXISTS ks_test.rollups ("));
            assert!(stmts[1].contains("ks_test.partition_state"));
            assert!(stmts.iter().all(|s| !s.contains("--") && !s.contains('{')));
        }

        #[test]
        fn counts_keep_a_series_in_one_partition() {
            let stmts = MIGRATIONS.iter().find(|m| m.name == "counts").unwrap().statements("ks_test");
            assert_eq!(stmts.len(), 1);
            assert!(stmts[0].contains("PRIMARY KEY ((video_id, event_type), granularity, bucket)"));
        }

        #[test]
        fn migration_versions_are_strictly_increasing() {
            assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::events::{Event, EventType};
    use prost::Message;

    #[test]
    fn event_round_trips_through_protobuf() {
        let e = Event {
            event_id: vec![1; 16],
            video_id: vec![2; 16],
            event_type: EventType::View as i32,
            occurred_at_ms: 1_700_000_000_000,
            received_at_ms: 1_700_000_000_123,
            value: 1,
            user_id: vec![],
            client_event_id: true,
            user_verified: false,
            correction: false,
            event_type_name: String::new(),
            correction_events: 0,
            packed: vec![],
        };
        let bytes = e.encode_to_vec();
        assert_eq!(Event::decode(bytes.as_slice()).unwrap(), e);
    }
}
