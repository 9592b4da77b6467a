//! A user's activity feed: views (signed in), ratings (both written by the
//! aggregator) and comments, newest first.
//!
//! Private: what someone watched is theirs, so the feed answers its owner only
//! (401 without a token, 403 for anyone else, moderators included). What others
//! may see of a user's activity is what they published: their comments
//! (`/users/{id}/comments`) and their uploads (`/videos/by-uploader/{id}`).

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{Forbidden, Invalid, NotFound, Unauthorized, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::comments::id_time;
use crate::api::common::params::PageParams;
use crate::api::common::{Params, SignedIn, St};
use crate::domain::paging::{Page, PageRequest};

/// What an activity is.
#[derive(ToSchema)]
#[allow(dead_code)] // the values `activityType` takes
pub enum ActivityType {
    #[schema(rename = "view")]
    View,
    #[schema(rename = "comment")]
    Comment,
    #[schema(rename = "rate")]
    Rate,
}

/// One entry of a user's activity feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    user_id: Uuid,
    #[schema(value_type = ActivityType)]
    activity_type: String,
    /// The video for `view` and `rate`, the comment for `comment`.
    #[schema(required = true)]
    activity_id: Option<Uuid>,
    #[schema(required = true)]
    activity_timestamp: Option<DateTime<Utc>>,
}

/// The signed-in user's own views, ratings and comments, newest first.
///
/// Only the user themself may read it: 401 without a token, 403 for anyone else.
/// Others see a user's comments at `/users/{user_id}/comments`.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/activity",
    tag = "users",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user: the signed-in user only"), PageParams),
    responses(
        (status = 200, description = "A page of the feed", body = Page<Activity>),
        Unauthorized, Forbidden, NotFound, Invalid, Unavailable
    )
)]
pub async fn activity(
    State(st): St,
    Path(user): Path<String>,
    SignedIn(claims): SignedIn,
    q: Params,
) -> Result<Json<Page<Activity>>, Problem> {
    let user = parse_uuid("userId", &user)?;
    if claims.sub != user {
        return Err(Problem::forbidden("a user's activity is visible to that user only"));
    }
    let req = PageRequest::from_query(&q)?;
    st.catalog.users.get(user).await?.ok_or_else(|| Problem::not_found("no such user"))?;
    let (rows, total) = st.catalog.comments.activity(user, req).await?;
    let data = rows
        .into_iter()
        .map(|r| Activity {
            user_id: user,
            activity_type: r.activity_type.unwrap_or_default(),
            activity_id: r.activity_id,
            activity_timestamp: id_time(r.activity_ts),
        })
        .collect();
    Ok(Json(Page::new(req, data, total)))
}
