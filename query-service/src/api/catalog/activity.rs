//! A user's activity feed: views (signed in), ratings (both written by the
//! aggregator) and comments, newest first.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{Invalid, NotFound, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::comments::id_time;
use crate::api::common::params::PageParams;
use crate::api::common::{Params, St};
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

/// A user's views, ratings and comments, newest first; 404 for an unknown user.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/activity",
    tag = "users",
    params(("user_id" = Uuid, Path, description = "The user"), PageParams),
    responses(
        (status = 200, description = "A page of the feed", body = Page<Activity>),
        NotFound, Invalid, Unavailable
    )
)]
pub async fn activity(State(st): St, Path(user): Path<String>, q: Params) -> Result<Json<Page<Activity>>, Problem> {
    let user = parse_uuid("userId", &user)?;
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
