//! The counts API: counts of each event type per video over any range (from the
//! rollups the aggregator writes), as a total, a series or statistics; trending
//! by event type; playback statistics; distinct viewers and who viewed. It reads
//! `store::rollups` and `store::viewers` (and the `videos` row, to answer 404 for
//! playback stats of an unknown video and to know a video's owner).

pub mod playback;
pub mod trending;
pub mod viewers;
pub mod views;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(views::views))
        .routes(routes!(views::counts))
        .routes(routes!(views::stats))
        .routes(routes!(trending::trending))
        .routes(routes!(playback::playback_stats))
        .routes(routes!(playback::playback_stats_many))
        .routes(routes!(viewers::viewers))
        .routes(routes!(viewers::viewer_list))
}
