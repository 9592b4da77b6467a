//! The KillrVideo catalog API, one file per resource: users, videos, ratings
//! (reads; writes go through the gateway), comments, the activity feed, lists,
//! search, recommendations, flags and moderation. `shared` holds what several of
//! them read the same way (a video as KillrVideo shows it, visibility).

pub mod activity;
pub mod comments;
pub mod lists;
pub mod moderation;
pub mod ratings;
pub mod recommendations;
pub mod search;
pub mod shared;
pub mod users;
pub mod videos;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(users::register))
        .routes(routes!(users::login))
        .routes(routes!(users::me, users::update_me))
        .routes(routes!(users::profile))
        .routes(routes!(activity::activity))
        .routes(routes!(videos::submit))
        .routes(routes!(videos::preview))
        .routes(routes!(videos::get_video, videos::edit))
        .routes(routes!(videos::status))
        .routes(routes!(ratings::summary))
        .routes(routes!(ratings::legacy))
        .routes(routes!(comments::video_comments, comments::post_comment))
        .routes(routes!(comments::user_comments))
        .routes(routes!(lists::latest))
        .routes(routes!(lists::by_tag))
        .routes(routes!(lists::by_uploader))
        .routes(routes!(lists::trending_videos))
        .routes(routes!(search::search_videos))
        .routes(routes!(search::suggest_tags))
        .routes(routes!(recommendations::related))
        .routes(routes!(recommendations::for_you))
        .routes(routes!(moderation::create_flag))
        .routes(routes!(moderation::list_flags))
        .routes(routes!(moderation::get_flag))
        .routes(routes!(moderation::act))
        .routes(routes!(moderation::search_users))
        .routes(routes!(moderation::assign))
        .routes(routes!(moderation::revoke))
        .routes(routes!(moderation::restore_video))
        .routes(routes!(moderation::restore_comment))
        .routes(routes!(moderation::audit_log))
}
