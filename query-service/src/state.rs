//! What every handler can reach, in two parts like the API: the counts (the
//! rollups the aggregator writes) and the catalog (its repositories, the catalog
//! events producer, sign-in tokens, password hashing and the sign-in limits).
//! Built once at start-up, where every statement is prepared; shared as
//! `Arc<AppState>`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use counting::Retention;
use platform::auth::Tokens;
use scylla::client::session::Session;

use crate::catalog_events::CatalogEvents;
use crate::config::QueryConfig;
use crate::limits::SignInLimits;
use crate::passwords::Passwords;
use crate::store::audit::Audit;
use crate::store::comments::Comments;
use crate::store::flags::Flags;
use crate::store::indexes::Indexes;
use crate::store::owners::Owners;
use crate::store::ratings::Ratings;
use crate::store::rollups::Rollups;
use crate::store::rows_cache::RowsCache;
use crate::store::users::Users;
use crate::store::videos::Videos;
use crate::store::viewers::ViewerStore;

pub struct AppState {
    pub config: QueryConfig,
    pub counts: CountsState,
    pub catalog: CatalogState,
}

/// The counts API's dependencies.
pub struct CountsState {
    pub rollups: Rollups,
    /// Viewer sketches and who viewed (migration 012).
    pub viewers: ViewerStore,
    /// The aggregator's TTLs: which rows an answer may still use.
    pub retention: Retention,
    /// Rows one trending request reads (`limits.trending_rows`).
    pub trending_rows: usize,
    /// `event_types` with the built-ins: the types an answer may name (others 422).
    pub event_types: counting::EventTypes,
}

/// The catalog API's dependencies.
pub struct CatalogState {
    pub users: Users,
    pub videos: Videos,
    pub ratings: Ratings,
    pub indexes: Indexes,
    pub comments: Comments,
    pub flags: Flags,
    pub audit: Audit,
    pub events: CatalogEvents,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub limits: SignInLimits,
    /// Rows one search reads per word (`limits.search_rows_per_word`).
    pub search_rows_per_word: usize,
}

impl AppState {
    /// Prepares every repository's statements on `session`.
    pub async fn build(config: QueryConfig, session: Arc<Session>, events: CatalogEvents) -> anyhow::Result<Self> {
        let ks = config.cassandra.keyspace.clone();
        let counts_ks = config.counts.keyspace_or(&ks)?.to_owned();
        let mut rollups = Rollups::new(session.clone(), &counts_ks).await?.with_cache(RowsCache::new(
            config.counts.rows_cache_rows,
            Duration::from_millis(config.counts.rows_cache_ms),
        ));
        if config.counts.owner_reads {
            let owners = Owners::new(
                session.clone(),
                &counts_ks,
                config.kafka.events_topic(),
                Duration::from_millis(config.counts.owner_timeout_ms),
                Duration::from_millis(config.counts.owner_cache_ms),
                Duration::from_millis(config.counts.owner_backoff_ms),
            )
            .await?;
            rollups = rollups.with_owners(owners);
        }
        let counts = CountsState {
            rollups,
            viewers: ViewerStore::new(session.clone(), &counts_ks).await?,
            retention: config.retention.clone(),
            trending_rows: config.limits.trending_rows,
            event_types: counting::EventTypes::new(&config.event_types).context("event_types")?,
        };
        let catalog = CatalogState {
            users: Users::new(session.clone(), &ks).await?,
            videos: Videos::new(session.clone(), &ks).await?,
            // Written by the aggregator, like the counts.
            ratings: Ratings::new(session.clone(), &counts_ks).await?,
            indexes: Indexes::new(session.clone(), &ks).await?,
            comments: Comments::new(session.clone(), &ks).await?,
            flags: Flags::new(session.clone(), &ks).await?,
            audit: Audit::new(session, &ks).await?,
            events,
            tokens: Tokens::new(&config.auth)?,
            passwords: Passwords::new(&config.passwords)?,
            limits: SignInLimits::new(&config.limits)?,
            search_rows_per_word: config.limits.search_rows_per_word,
        };
        Ok(Self { config, counts, catalog })
    }
}
