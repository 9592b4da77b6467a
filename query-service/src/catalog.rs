//! The catalog's denormalised indexes (migration 006) and the plain lists built on
//! them: latest videos, videos by tag, videos by uploader.
//!
//! The indexes hold ids only; a page's titles, views and ratings are read from their
//! owners ([`summaries`]) so that editing a title never chases copies. They are
//! written by [`on_video_added`] and [`on_video_edited`], always *before* the
//! `videos` row: a submit that fails leaves no video a list can show (lists skip ids
//! without a row), and an edit that fails leaves the row as it was, so its retry
//! computes the same index changes again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use futures::future::{BoxFuture, try_join_all};
use futures::{FutureExt, StreamExt, TryStreamExt};
use platform::cassandra::prepare;
use platform::http::{Problem, parse_uuid};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::serialize::value::SerializeValue;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use crate::paging::{Page, PageRequest};
use crate::routes::{AppState, only_params};
use crate::search::index_words;
use crate::users::respond;
use crate::videos::{VideoSummary, summaries};

/// Index writes of one video run at most this many at a time.
const WRITE_CONCURRENCY: usize = 16;

pub struct Catalog {
    session: Arc<Session>,
    add_latest: PreparedStatement,
    count_day: PreparedStatement,
    set_day_count: PreparedStatement,
    add_by_user: PreparedStatement,
    add_by_tag: PreparedStatement,
    del_by_tag: PreparedStatement,
    add_prefix: PreparedStatement,
    del_prefix: PreparedStatement,
    put_word: PreparedStatement,
    del_word: PreparedStatement,
    days: PreparedStatement,
    latest_head: PreparedStatement,
    user_count: PreparedStatement,
    user_head: PreparedStatement,
    tag_count: PreparedStatement,
    tag_head: PreparedStatement,
    word: PreparedStatement,
    prefix_slice: PreparedStatement,
    rated_by: PreparedStatement,
}

/// What the indexes know of a video: enough to add it, or to compare two states of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'a> {
    pub id: Uuid,
    pub user: Option<Uuid>,
    pub submitted_ms: i64,
    pub title: &'a str,
    pub description: &'a str,
    pub tags: &'a BTreeSet<String>,
}

/// A user's rating of a video, from `ratings_by_user`.
pub(crate) struct Rated {
    pub video: Uuid,
    pub rating: i32,
    pub updated_ms: i64,
}

impl Catalog {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let ks = keyspace;
        // Every statement here is idempotent (plain upserts, deletes and reads; the day
        // count's timestamp is the count itself), so the driver may retry them all.
        let prep = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, true).await }
        };
        Ok(Self {
            add_latest: prep(format!("INSERT INTO {ks}.latest_videos (yyyymmdd, videoid) VALUES (?, ?)")).await?,
            count_day: prep(format!("SELECT COUNT(*) FROM {ks}.latest_videos WHERE yyyymmdd = ?")).await?,
            set_day_count: prep(format!(
                "INSERT INTO {ks}.latest_video_days (shard, yyyymmdd, videos) VALUES (0, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            add_by_user: prep(format!("INSERT INTO {ks}.videos_by_user (userid, videoid) VALUES (?, ?)")).await?,
            add_by_tag: prep(format!("INSERT INTO {ks}.videos_by_tag (tag, videoid) VALUES (?, ?)")).await?,
            del_by_tag: prep(format!("DELETE FROM {ks}.videos_by_tag WHERE tag = ? AND videoid = ?")).await?,
            add_prefix: prep(format!("INSERT INTO {ks}.tags_by_prefix (prefix, tag) VALUES (?, ?)")).await?,
            del_prefix: prep(format!("DELETE FROM {ks}.tags_by_prefix WHERE prefix = ? AND tag = ?")).await?,
            put_word: prep(format!("INSERT INTO {ks}.videos_by_word (word, videoid, hits) VALUES (?, ?, ?)")).await?,
            del_word: prep(format!("DELETE FROM {ks}.videos_by_word WHERE word = ? AND videoid = ?")).await?,
            days: prep(format!("SELECT yyyymmdd, videos FROM {ks}.latest_video_days WHERE shard = 0")).await?,
            latest_head: prep(format!("SELECT videoid FROM {ks}.latest_videos WHERE yyyymmdd = ? LIMIT ?")).await?,
            user_count: prep(format!("SELECT COUNT(*) FROM {ks}.videos_by_user WHERE userid = ?")).await?,
            user_head: prep(format!("SELECT videoid FROM {ks}.videos_by_user WHERE userid = ? LIMIT ?")).await?,
            tag_count: prep(format!("SELECT COUNT(*) FROM {ks}.videos_by_tag WHERE tag = ?")).await?,
            tag_head: prep(format!("SELECT videoid FROM {ks}.videos_by_tag WHERE tag = ? LIMIT ?")).await?,
            word: prep(format!("SELECT videoid, hits FROM {ks}.videos_by_word WHERE word = ?")).await?,
            prefix_slice: prep(format!("SELECT tag FROM {ks}.tags_by_prefix WHERE prefix = ? AND tag >= ? LIMIT ?"))
                .await?,
            rated_by: prep(format!("SELECT videoid, rating, updated_at FROM {ks}.ratings_by_user WHERE userid = ?"))
                .await?,
            session,
        })
    }

    async fn run(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<(), Problem> {
        self.session.execute_unpaged(stmt, values).await.map(drop).map_err(store_error)
    }

    /// Every row of a read, all pages.
    async fn rows<R>(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<R>, Problem>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let pager = self.session.execute_iter(stmt.clone(), values).await.map_err(store_error)?;
        pager.rows_stream::<R>().map_err(store_error)?.try_collect().await.map_err(store_error)
    }

    async fn ids(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<Uuid>, Problem> {
        Ok(self.rows::<(Uuid,)>(stmt, values).await?.into_iter().map(|(id,)| id).collect())
    }

    async fn count(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<u64, Problem> {
        let rows = self.rows::<(i64,)>(stmt, values).await?;
        Ok(rows.first().map_or(0, |(n,)| (*n).max(0) as u64))
    }

    /// A page of a partition of ids (newest first) and the partition's exact size.
    async fn counted_page<K: SerializeValue>(
        &self,
        count: &PreparedStatement,
        head: &PreparedStatement,
        key: K,
        req: PageRequest,
    ) -> Result<(Vec<Uuid>, u64), Problem> {
        let total = self.count(count, (&key,)).await?;
        if req.offset() as u64 >= total {
            return Ok((Vec::new(), total));
        }
        let ids = self.ids(head, (&key, limit(req.end()))).await?;
        Ok((ids.into_iter().skip(req.offset()).take(req.page_size as usize).collect(), total))
    }

    /// A page of the newest videos across days, and their exact number.
    pub(crate) async fn latest(&self, req: PageRequest) -> Result<(Vec<Uuid>, u64), Problem> {
        let days: Vec<(String, Option<i64>)> = self.rows(&self.days, ()).await?;
        let days: Vec<(String, u64)> = days.into_iter().map(|(d, n)| (d, n.unwrap_or(0).max(0) as u64)).collect();
        let total = days.iter().map(|(_, n)| n).sum();
        let reads =
            plan_days(&days, req.offset(), req.page_size as usize).into_iter().map(|(day, skip, take)| async move {
                let ids = self.ids(&self.latest_head, (day, limit(skip + take))).await?;
                Ok::<_, Problem>(ids.into_iter().skip(skip).take(take).collect::<Vec<_>>())
            });
        Ok((try_join_all(reads).await?.concat(), total))
    }

    pub(crate) async fn by_user(&self, user: Uuid, req: PageRequest) -> Result<(Vec<Uuid>, u64), Problem> {
        self.counted_page(&self.user_count, &self.user_head, user, req).await
    }

    pub(crate) async fn by_tag(&self, tag: &str, req: PageRequest) -> Result<(Vec<Uuid>, u64), Problem> {
        self.counted_page(&self.tag_count, &self.tag_head, tag, req).await
    }

    /// The newest `n` videos carrying `tag`.
    pub(crate) async fn tag_head(&self, tag: &str, n: usize) -> Result<Vec<Uuid>, Problem> {
        self.ids(&self.tag_head, (tag, limit(n))).await
    }

    /// Every upload of `user`, newest first.
    pub(crate) async fn uploads(&self, user: Uuid) -> Result<Vec<Uuid>, Problem> {
        self.ids(&self.user_head, (user, i32::MAX)).await
    }

    /// Every rating `user` has given (written by the aggregator).
    pub(crate) async fn rated_by(&self, user: Uuid) -> Result<Vec<Rated>, Problem> {
        let rows: Vec<(Uuid, Option<i32>, Option<CqlTimestamp>)> = self.rows(&self.rated_by, (user,)).await?;
        Ok(rows
            .into_iter()
            .map(|(video, rating, at)| Rated { video, rating: rating.unwrap_or(0), updated_ms: at.map_or(0, |t| t.0) })
            .collect())
    }

    /// `(videoId, hits)` of every video whose text holds `word`.
    pub(crate) async fn word(&self, word: &str) -> Result<Vec<(Uuid, i32)>, Problem> {
        let rows: Vec<(Uuid, Option<i32>)> = self.rows(&self.word, (word,)).await?;
        Ok(rows.into_iter().map(|(id, hits)| (id, hits.unwrap_or(1))).collect())
    }

    /// Up to `n` tags in use that start with `prefix` (lower-cased, not empty), in order.
    pub(crate) async fn tags_starting(&self, prefix: &str, n: usize) -> Result<Vec<String>, Problem> {
        let partition: String = prefix.chars().take(PREFIX_CHARS).collect();
        let rows: Vec<(String,)> = self.rows(&self.prefix_slice, (partition, prefix, limit(n))).await?;
        // Tags that start with `prefix` sort together from `prefix` on, so the first
        // one that does not ends the match.
        Ok(rows.into_iter().map(|(t,)| t).take_while(|t| t.starts_with(prefix)).collect())
    }

    /// Recounts a day of `latest_videos` into `latest_video_days`. The count is also
    /// the write's timestamp: the day only grows, so the largest recount wins even
    /// when an older, smaller one lands last.
    async fn recount_day(&self, day: &str) -> Result<(), Problem> {
        let n = self.count(&self.count_day, (day,)).await? as i64;
        self.run(&self.set_day_count, (day, n, n)).await
    }

    /// Adds `tag`'s rows: the by-tag row of `video` and the tag's suggestion rows.
    fn add_tag<'a>(&'a self, tag: &'a str, video: Uuid) -> Vec<BoxFuture<'a, Result<(), Problem>>> {
        let mut writes = vec![self.run(&self.add_by_tag, (tag, video)).boxed()];
        writes.extend(prefixes(tag).map(|p| self.run(&self.add_prefix, (p, tag)).boxed()));
        writes
    }

    /// Removes `video` from `tag`, and the tag from the suggestions once no video
    /// carries it. (A video tagged in between can lose its suggestion rows; they
    /// come back with the next video that carries the tag.)
    async fn remove_tag(&self, tag: &str, video: Uuid) -> Result<(), Problem> {
        self.run(&self.del_by_tag, (tag, video)).await?;
        if self.tag_head(tag, 1).await?.is_empty() {
            try_join_all(prefixes(tag).map(|p| self.run(&self.del_prefix, (p, tag)))).await?;
        }
        Ok(())
    }
}

fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "catalog store request failed");
    Problem::unavailable("the catalog store is not answering; retry later", 1)
}

/// A CQL `LIMIT` for `n` rows.
fn limit(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// Suggestion partitions are a tag's first 1, 2 and 3 characters.
const PREFIX_CHARS: usize = 3;

/// The suggestion partitions a tag is stored under.
fn prefixes(tag: &str) -> impl Iterator<Item = String> + '_ {
    let ends: Vec<usize> = tag.char_indices().map(|(i, _)| i).skip(1).chain([tag.len()]).take(PREFIX_CHARS).collect();
    ends.into_iter().map(move |end| tag[..end].to_owned())
}

/// The UTC day of `ms` as KillrVideo names its `latest_videos` partitions.
fn yyyymmdd(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y%m%d").to_string()
}

/// Which day partitions hold items `[offset, offset + len)` of the newest-first list,
/// given each day's count (newest day first): `(day, skip, take)` per day read.
fn plan_days(days: &[(String, u64)], offset: usize, len: usize) -> Vec<(&str, usize, usize)> {
    let (start, end) = (offset as u64, offset as u64 + len as u64);
    let mut at = 0u64;
    let mut plan = Vec::new();
    for (day, n) in days {
        let (from, to) = (at.max(start), (at + n).min(end));
        if from < to {
            plan.push((day.as_str(), (from - at) as usize, (to - from) as usize));
        }
        at += n;
        if at >= end {
            break;
        }
    }
    plan
}

/// Runs index writes, a bounded number at a time.
async fn run_all(writes: Vec<BoxFuture<'_, Result<(), Problem>>>) -> Result<(), Problem> {
    futures::stream::iter(writes).buffer_unordered(WRITE_CONCURRENCY).try_collect().await
}

/// Indexes a new video: latest (and its day's count), its uploader, its tags and
/// their suggestions, the words of its text. Runs before the `videos` row is written.
pub(crate) async fn on_video_added(st: &AppState, e: &Entry<'_>) -> Result<(), Problem> {
    let c = &st.catalog;
    let day = yyyymmdd(e.submitted_ms);
    let mut writes: Vec<BoxFuture<'_, Result<(), Problem>>> = vec![
        async {
            c.run(&c.add_latest, (&day, e.id)).await?;
            c.recount_day(&day).await
        }
        .boxed(),
    ];
    if let Some(user) = e.user {
        writes.push(c.run(&c.add_by_user, (user, e.id)).boxed());
    }
    for tag in e.tags {
        writes.extend(c.add_tag(tag, e.id));
    }
    for (word, hits) in index_words(e.title, e.description, e.tags) {
        writes.push(c.run(&c.put_word, (word, e.id, hits)).boxed());
    }
    run_all(writes).await
}

/// Moves a video's tag and word rows from `before` to `after`, before the row is
/// updated. Removals go first: if the edit then fails, the row still says `before`,
/// and the retry computes (and completes) the same changes.
pub(crate) async fn on_video_edited(st: &AppState, before: &Entry<'_>, after: &Entry<'_>) -> Result<(), Problem> {
    let c = &st.catalog;
    let id = after.id;
    let (old_words, new_words) = (
        index_words(before.title, before.description, before.tags),
        index_words(after.title, after.description, after.tags),
    );
    let mut removals: Vec<BoxFuture<'_, Result<(), Problem>>> = Vec::new();
    for tag in before.tags.difference(after.tags) {
        removals.push(c.remove_tag(tag, id).boxed());
    }
    for word in old_words.keys().filter(|w| !new_words.contains_key(*w)) {
        removals.push(c.run(&c.del_word, (word, id)).boxed());
    }
    run_all(removals).await?;
    let mut additions: Vec<BoxFuture<'_, Result<(), Problem>>> = Vec::new();
    for tag in after.tags.difference(before.tags) {
        additions.extend(c.add_tag(tag, id));
    }
    for (word, hits) in changed(&old_words, &new_words) {
        additions.push(c.run(&c.put_word, (word, id, hits)).boxed());
    }
    run_all(additions).await
}

/// Words whose hits are new or different in `new`.
fn changed<'a>(old: &BTreeMap<String, i32>, new: &'a BTreeMap<String, i32>) -> Vec<(&'a str, i32)> {
    new.iter().filter(|(w, h)| old.get(*w) != Some(h)).map(|(w, h)| (w.as_str(), *h)).collect()
}

/// A video's tags; `None` when there is no such video.
pub(crate) async fn tags_of(st: &AppState, id: Uuid) -> Result<Option<BTreeSet<String>>, Problem> {
    Ok(st.videos.row(id).await?.map(|row| row.4.unwrap_or_default()))
}

/// Summaries of the first `n` of `ranked` that still have a video row (an index may
/// name a video whose submit failed), read a chunk of `n` at a time.
pub(crate) async fn first_summaries(st: &AppState, ranked: &[Uuid], n: usize) -> Result<Vec<VideoSummary>, Problem> {
    let mut out = Vec::with_capacity(n);
    for chunk in ranked.chunks(n.max(1)) {
        if out.len() >= n {
            break;
        }
        out.extend(summaries(st, chunk).await?);
    }
    out.truncate(n);
    Ok(out)
}

/// A page of ids turned into a page of summaries.
pub(crate) async fn summary_page(
    st: &AppState,
    req: PageRequest,
    (ids, total): (Vec<Uuid>, u64),
) -> Result<Page<VideoSummary>, Problem> {
    Ok(Page::new(req, summaries(st, &ids).await?, total))
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/latest", get(latest))
        .route("/api/v1/videos/by-tag/{tag}", get(by_tag))
        .route("/api/v1/videos/by-uploader/{user_id}", get(by_uploader))
        .with_state(state)
}

type St = State<Arc<AppState>>;
type Params = Query<HashMap<String, String>>;

fn page_request(q: &HashMap<String, String>) -> Result<PageRequest, Problem> {
    only_params(q, &["page", "pageSize"])?;
    PageRequest::from_query(q)
}

/// GET /api/v1/videos/latest?page&pageSize: newest first, across days.
async fn latest(State(st): St, Query(q): Params) -> Response {
    let result = async {
        let req = page_request(&q)?;
        summary_page(&st, req, st.catalog.latest(req).await?).await
    };
    respond(StatusCode::OK, result.await)
}

/// A tag as stored: trimmed and lower-cased, 1 to 50 characters.
pub(crate) fn normal_tag(field: &str, raw: &str) -> Result<String, Problem> {
    let tag = raw.trim().to_lowercase();
    if tag.is_empty() || tag.chars().count() > 50 {
        return Err(Problem::invalid(field, "must be 1 to 50 characters"));
    }
    Ok(tag)
}

/// GET /api/v1/videos/by-tag/{tag}?page&pageSize: newest first; an unused tag is an empty list.
async fn by_tag(State(st): St, Path(tag): Path<String>, Query(q): Params) -> Response {
    let result = async {
        let req = page_request(&q)?;
        let tag = normal_tag("tag", &tag)?;
        summary_page(&st, req, st.catalog.by_tag(&tag, req).await?).await
    };
    respond(StatusCode::OK, result.await)
}

/// GET /api/v1/videos/by-uploader/{userId}?page&pageSize: newest first; 404 for an unknown user.
async fn by_uploader(State(st): St, Path(user): Path<String>, Query(q): Params) -> Response {
    let result = async {
        let req = page_request(&q)?;
        let user = parse_uuid("userId", &user)?;
        let (found, page) = futures::try_join!(st.users.user(user), st.catalog.by_user(user, req))?;
        if found.is_none() {
            return Err(Problem::not_found("no such user"));
        }
        summary_page(&st, req, page).await
    };
    respond(StatusCode::OK, result.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(counts: &[(&str, u64)]) -> Vec<(String, u64)> {
        counts.iter().map(|(d, n)| (d.to_string(), *n)).collect()
    }

    #[test]
    fn pages_span_days_and_skip_whole_ones() {
        let d = days(&[("20261123", 3), ("20261122", 0), ("20261120", 4), ("20261101", 2)]);
        assert_eq!(plan_days(&d, 0, 2), vec![("20261123", 0, 2)]);
        assert_eq!(plan_days(&d, 2, 3), vec![("20261123", 2, 1), ("20261120", 0, 2)]);
        assert_eq!(plan_days(&d, 3, 4), vec![("20261120", 0, 4)]);
        assert_eq!(plan_days(&d, 6, 10), vec![("20261120", 3, 1), ("20261101", 0, 2)]);
        assert!(plan_days(&d, 9, 10).is_empty());
        assert!(plan_days(&[], 0, 10).is_empty());
    }

    #[test]
    fn tags_are_stored_under_their_first_three_characters() {
        assert_eq!(prefixes("music").collect::<Vec<_>>(), ["m", "mu", "mus"]);
        assert_eq!(prefixes("80s").collect::<Vec<_>>(), ["8", "80", "80s"]);
        assert_eq!(prefixes("ok").collect::<Vec<_>>(), ["o", "ok"]);
        assert_eq!(prefixes("été d'or").collect::<Vec<_>>(), ["é", "ét", "été"]);
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(yyyymmdd(1_710_028_800_000 - 1), "20240309");
        assert_eq!(yyyymmdd(1_710_028_800_000), "20240310");
    }

    #[test]
    fn only_new_or_different_words_are_rewritten() {
        let old: BTreeMap<String, i32> = [("a".into(), 1), ("b".into(), 2)].into();
        let new: BTreeMap<String, i32> = [("a".into(), 1), ("b".into(), 1), ("c".into(), 3)].into();
        assert_eq!(changed(&old, &new), vec![("b", 1), ("c", 3)]);
    }
}
