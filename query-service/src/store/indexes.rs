//! The catalog's denormalised indexes (migration 006): `latest_videos` and its day
//! counts, `videos_by_user`, `videos_by_tag`, `tags_by_prefix`, `videos_by_word`.
//!
//! They hold ids only; a page's titles, views and ratings are read from their
//! owners, so that editing a title never chases copies. [`Indexes::add_video`] and
//! [`Indexes::edit_video`] are called *before* the `videos` row is written: a submit
//! that fails leaves no video a list can show (lists skip ids without a row), and
//! an edit that fails leaves the row as it was, so its retry computes the same
//! index changes again. Every statement is idempotent (plain upserts, deletes and
//! reads; the day count's timestamp is the count itself), so the driver may retry.

use std::sync::Arc;

use futures::future::{BoxFuture, try_join_all};
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::serialize::value::SerializeValue;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::{CountRow, Result, prepare};
use crate::domain::indexes::{Entry, PREFIX_CHARS, changed, index_words, plan_days, prefixes, yyyymmdd};
use crate::domain::paging::PageRequest;

/// Index writes of one video run at most this many at a time.
const WRITE_CONCURRENCY: usize = 16;

pub struct Indexes {
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
}

#[derive(scylla::DeserializeRow)]
struct IdRow {
    #[scylla(rename = "videoid")]
    video_id: Uuid,
}

#[derive(scylla::DeserializeRow)]
struct DayRow {
    yyyymmdd: String,
    videos: Option<i64>,
}

#[derive(scylla::DeserializeRow)]
struct WordRow {
    #[scylla(rename = "videoid")]
    video_id: Uuid,
    hits: Option<i32>,
}

#[derive(scylla::DeserializeRow)]
struct TagRow {
    tag: String,
}

type Write<'a> = BoxFuture<'a, Result<()>>;

impl Indexes {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
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
            word: prep(format!("SELECT videoid, hits FROM {ks}.videos_by_word WHERE word = ? LIMIT ?")).await?,
            prefix_slice: prep(format!("SELECT tag FROM {ks}.tags_by_prefix WHERE prefix = ? AND tag >= ? LIMIT ?"))
                .await?,
            session,
        })
    }

    async fn run(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<()> {
        self.session.execute_unpaged(stmt, values).await?;
        Ok(())
    }

    /// Every row of a read, all pages.
    async fn rows<R>(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let pager = self.session.execute_iter(stmt.clone(), values).await?;
        Ok(pager.rows_stream::<R>()?.try_collect().await?)
    }

    async fn ids(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<Uuid>> {
        Ok(self.rows::<IdRow>(stmt, values).await?.into_iter().map(|r| r.video_id).collect())
    }

    async fn count(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<u64> {
        let rows = self.rows::<CountRow>(stmt, values).await?;
        Ok(rows.first().map_or(0, |r| r.count.max(0) as u64))
    }

    /// A page of a partition of ids (newest first) and the partition's exact size.
    async fn counted_page<K: SerializeValue>(
        &self,
        count: &PreparedStatement,
        head: &PreparedStatement,
        key: K,
        req: PageRequest,
    ) -> Result<(Vec<Uuid>, u64)> {
        let total = self.count(count, (&key,)).await?;
        if req.offset() as u64 >= total {
            return Ok((Vec::new(), total));
        }
        let ids = self.ids(head, (&key, limit(req.end()))).await?;
        Ok((ids.into_iter().skip(req.offset()).take(req.page_size as usize).collect(), total))
    }

    /// A page of the newest videos across days, and their exact number.
    pub async fn latest(&self, req: PageRequest) -> Result<(Vec<Uuid>, u64)> {
        let days: Vec<DayRow> = self.rows(&self.days, ()).await?;
        let days: Vec<(String, u64)> =
            days.into_iter().map(|d| (d.yyyymmdd, d.videos.unwrap_or(0).max(0) as u64)).collect();
        let total = days.iter().map(|(_, n)| n).sum();
        let reads =
            plan_days(&days, req.offset(), req.page_size as usize).into_iter().map(|(day, skip, take)| async move {
                let ids = self.ids(&self.latest_head, (day, limit(skip + take))).await?;
                Ok::<_, super::StoreError>(ids.into_iter().skip(skip).take(take).collect::<Vec<_>>())
            });
        Ok((try_join_all(reads).await?.concat(), total))
    }

    pub async fn by_user(&self, user: Uuid, req: PageRequest) -> Result<(Vec<Uuid>, u64)> {
        self.counted_page(&self.user_count, &self.user_head, user, req).await
    }

    pub async fn by_tag(&self, tag: &str, req: PageRequest) -> Result<(Vec<Uuid>, u64)> {
        self.counted_page(&self.tag_count, &self.tag_head, tag, req).await
    }

    /// The newest `n` videos carrying `tag`.
    pub async fn tag_head(&self, tag: &str, n: usize) -> Result<Vec<Uuid>> {
        self.ids(&self.tag_head, (tag, limit(n))).await
    }

    /// The newest `n` uploads of `user`.
    pub async fn uploads(&self, user: Uuid, n: usize) -> Result<Vec<Uuid>> {
        self.ids(&self.user_head, (user, limit(n))).await
    }

    /// `(videoId, hits)` of the newest `max` videos whose text holds `word`.
    pub async fn word(&self, word: &str, max: usize) -> Result<Vec<(Uuid, i32)>> {
        let rows: Vec<WordRow> = self.rows(&self.word, (word, limit(max))).await?;
        Ok(rows.into_iter().map(|r| (r.video_id, r.hits.unwrap_or(1))).collect())
    }

    /// Up to `n` tags in use that start with `prefix` (lower-cased, not empty), in order.
    pub async fn tags_starting(&self, prefix: &str, n: usize) -> Result<Vec<String>> {
        let partition: String = prefix.chars().take(PREFIX_CHARS).collect();
        let rows: Vec<TagRow> = self.rows(&self.prefix_slice, (partition, prefix, limit(n))).await?;
        // Tags that start with `prefix` sort together from `prefix` on, so the first
        // one that does not ends the match.
        Ok(rows.into_iter().map(|r| r.tag).take_while(|t| t.starts_with(prefix)).collect())
    }

    /// Recounts a day of `latest_videos` into `latest_video_days`. The count is also
    /// the write's timestamp: the day only grows, so the largest recount wins even
    /// when an older, smaller one lands last.
    async fn recount_day(&self, day: &str) -> Result<()> {
        let n = self.count(&self.count_day, (day,)).await? as i64;
        self.run(&self.set_day_count, (day, n, n)).await
    }

    /// Adds `tag`'s rows: the by-tag row of `video` and the tag's suggestion rows.
    fn add_tag<'a>(&'a self, tag: &'a str, video: Uuid) -> Vec<Write<'a>> {
        let mut writes = vec![self.run(&self.add_by_tag, (tag, video)).boxed()];
        writes.extend(prefixes(tag).map(|p| self.run(&self.add_prefix, (p, tag)).boxed()));
        writes
    }

    /// Removes `video` from `tag`, and the tag from the suggestions once no video
    /// carries it. (A video tagged in between can lose its suggestion rows; they
    /// come back with the next video that carries the tag.)
    async fn remove_tag(&self, tag: &str, video: Uuid) -> Result<()> {
        self.run(&self.del_by_tag, (tag, video)).await?;
        if self.tag_head(tag, 1).await?.is_empty() {
            try_join_all(prefixes(tag).map(|p| self.run(&self.del_prefix, (p, tag)))).await?;
        }
        Ok(())
    }

    /// Indexes a new video: latest (and its day's count), its uploader, its tags and
    /// their suggestions, the words of its text. Runs before the `videos` row is written.
    pub async fn add_video(&self, e: &Entry<'_>) -> Result<()> {
        let day = yyyymmdd(e.submitted_ms);
        let mut writes: Vec<Write<'_>> = vec![
            async {
                self.run(&self.add_latest, (&day, e.id)).await?;
                self.recount_day(&day).await
            }
            .boxed(),
        ];
        if let Some(user) = e.user {
            writes.push(self.run(&self.add_by_user, (user, e.id)).boxed());
        }
        for tag in e.tags {
            writes.extend(self.add_tag(tag, e.id));
        }
        for (word, hits) in index_words(e.title, e.description, e.tags) {
            writes.push(self.run(&self.put_word, (word, e.id, hits)).boxed());
        }
        run_all(writes).await
    }

    /// Moves a video's tag and word rows from `before` to `after`, before the row is
    /// updated. Removals go first: if the edit then fails, the row still says
    /// `before`, and the retry computes (and completes) the same changes.
    pub async fn edit_video(&self, before: &Entry<'_>, after: &Entry<'_>) -> Result<()> {
        let id = after.id;
        let (old_words, new_words) = (
            index_words(before.title, before.description, before.tags),
            index_words(after.title, after.description, after.tags),
        );
        let mut removals: Vec<Write<'_>> = Vec::new();
        for tag in before.tags.difference(after.tags) {
            removals.push(self.remove_tag(tag, id).boxed());
        }
        for word in old_words.keys().filter(|w| !new_words.contains_key(*w)) {
            removals.push(self.run(&self.del_word, (word, id)).boxed());
        }
        run_all(removals).await?;
        let mut additions: Vec<Write<'_>> = Vec::new();
        for tag in after.tags.difference(before.tags) {
            additions.extend(self.add_tag(tag, id));
        }
        for (word, hits) in changed(&old_words, &new_words) {
            additions.push(self.run(&self.put_word, (word, id, hits)).boxed());
        }
        run_all(additions).await
    }
}

/// Runs index writes, a bounded number at a time.
async fn run_all(writes: Vec<Write<'_>>) -> Result<()> {
    futures::stream::iter(writes).buffer_unordered(WRITE_CONCURRENCY).try_collect().await
}

/// A CQL `LIMIT` for `n` rows.
fn limit(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}
