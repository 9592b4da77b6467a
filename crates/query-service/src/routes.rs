//! Counting read routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use counting::EventKind;
use platform::http::{Problem, parse_uuid};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::catalog_events::CatalogEvents;
use crate::comments::Comments;
use crate::config::QueryConfig;
use crate::counts::{CountStore, ViewsCount, resolve_range, store_error};
use crate::moderation::Moderation;
use crate::ratings::Ratings;
use crate::trending::Trending;
use crate::users::{HasUsers, Users};
use crate::videos::Videos;

pub struct AppState {
    pub config: QueryConfig,
    pub counts: CountStore,
    pub users: Users,
    pub videos: Videos,
    pub ratings: Ratings,
    pub catalog_events: CatalogEvents,
    pub catalog: Catalog,
    pub trending: Trending,
    pub comments: Comments,
    pub moderation: Moderation,
}

impl HasUsers for AppState {
    fn users(&self) -> &Users {
        &self.users
    }

    fn catalog_events(&self) -> &CatalogEvents {
        &self.catalog_events
    }
}

type St = State<Arc<AppState>>;

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/{video_id}/views", get(views))
        .route("/api/v1/videos/{video_id}/counts/{event_type}", get(counts))
        .with_state(state)
}

/// Rejects query parameters the route does not know: a misspelt `form=` must not
/// silently turn a ranged query into an all-time one.
pub(crate) fn only_params(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Problem> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Problem::invalid(k.clone(), format!("unknown query parameter; expected {allowed:?}"))),
        None => Ok(()),
    }
}

async fn count_of(
    st: &AppState,
    video: &str,
    kind: EventKind,
    q: &HashMap<String, String>,
) -> Result<ViewsCount, Problem> {
    only_params(q, &["from", "to"])?;
    let video = parse_uuid("videoId", video)?;
    let now = chrono::Utc::now().timestamp_millis();
    let range = resolve_range(
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
        now,
        st.config.retention.minute_secs,
    )?;
    let (views, spans) = st.counts.count(video, kind, range).await.map_err(store_error)?;
    Ok(ViewsCount::new(video, range, views, &spans))
}

/// GET /api/v1/videos/{id}/views?from&to — getViewsCount.
async fn views(State(st): St, Path(video): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    match count_of(&st, &video, EventKind::View, &q).await {
        Ok(c) => axum::Json(c).into_response(),
        Err(p) => p.into_response(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Count {
    video_id: Uuid,
    event_type: EventKind,
    from: Option<String>,
    to: Option<String>,
    count: i64,
    granularity: String,
}

/// GET /api/v1/videos/{id}/counts/{eventType}?from&to — getCount.
async fn counts(
    State(st): St,
    Path((video, event_type)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let kind: EventKind = event_type
            .parse()
            .map_err(|e: counting::kind::UnknownKind| Problem::invalid("eventType", e.to_string()))?;
        let c = count_of(&st, &video, kind, &q).await?;
        Ok::<_, Problem>(Count {
            video_id: c.video_id,
            event_type: kind,
            from: c.from,
            to: c.to,
            count: c.views,
            granularity: c.granularity,
        })
    };
    match result.await {
        Ok(c) => axum::Json(c).into_response(),
        Err(p) => p.into_response(),
    }
}
