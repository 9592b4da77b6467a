//! The OpenAPI 3.1 document of the whole `/api/v1` surface (the query service's
//! routes and the gateway's, which share one origin), served at
//! `/api/v1/openapi.json`.
//!
//! It is built here, next to the code, from a table of operations. Two tests keep
//! it honest: `tests/openapi.rs` checks that every route the three routers declare
//! is documented and every documented operation is routed, and the user-journey
//! test (`e2e/tests/journey.rs`) validates every answer it gets
//! against the schema documented for that operation and status.

use std::sync::OnceLock;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

/// One operation: method, path template, summary, whether it needs a token,
/// query parameters, request body schema and answers (status, schema).
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    tag: &'static str,
    auth: Auth,
    query: &'static [(&'static str, &'static str, bool)],
    body: Option<Value>,
    answers: Vec<(u16, Option<Value>)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    Public,
    Optional,
    Required,
    Moderator,
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn paged(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "pagination"],
        "properties": { "data": { "type": "array", "items": r(item) }, "pagination": r("Pagination") },
    })
}

fn array(item: Value) -> Value {
    json!({ "type": "array", "items": item })
}

fn object(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

const UUID: &str = "uuid";
const TIME: &str = "date-time";

fn s(format: &str) -> Value {
    json!({ "type": "string", "format": format })
}

fn nullable(v: Value) -> Value {
    let mut v = v;
    if let Some(t) = v.get("type").cloned() {
        v["type"] = json!([t, "null"]);
        return v;
    }
    json!({ "oneOf": [v, { "type": "null" }] })
}

const PAGE: &[(&str, &str, bool)] =
    &[("page", "1-based page number (default 1)", false), ("pageSize", "1 to 100 (default 10)", false)];
const RANGE: &[(&str, &str, bool)] =
    &[("from", "RFC 3339 start, inclusive (omit both for all time)", false), ("to", "RFC 3339 end, exclusive", false)];

fn schemas() -> Value {
    let str_ = json!({ "type": "string" });
    let int = json!({ "type": "integer" });
    let num = json!({ "type": "number" });
    json!({
        "Problem": object(&["type", "title", "status", "detail"], json!({
            "type": str_, "title": str_, "status": int, "detail": str_, "instance": str_,
            "field": { "type": "string", "description": "The request field at fault (validation errors)" },
        })),
        "Pagination": object(&["currentPage", "pageSize", "totalItems", "totalPages"], json!({
            "currentPage": int, "pageSize": int, "totalItems": int, "totalPages": int,
        })),
        "Registered": object(&["firstName", "lastName", "email", "userId"], json!({
            "firstName": str_, "lastName": str_, "email": str_, "userId": s(UUID),
        })),
        "User": object(&["userId", "firstName", "lastName", "email", "accountStatus", "roles"], json!({
            "userId": s(UUID), "firstName": str_, "lastName": str_, "email": str_,
            "createdDate": nullable(s(TIME)), "accountStatus": str_, "lastLoginDate": nullable(s(TIME)),
            "roles": array(str_.clone()),
        })),
        "Login": object(&["token", "user"], json!({ "token": str_, "user": r("User") })),
        "VideoDetail": object(&["videoId", "title", "status", "views", "averageRating", "totalRatingsCount"], json!({
            "videoId": s(UUID), "userId": nullable(s(UUID)), "title": str_, "description": str_,
            "tags": array(str_.clone()), "submittedAt": nullable(s(TIME)), "updatedAt": nullable(s(TIME)),
            "thumbnailUrl": nullable(str_.clone()), "location": nullable(str_.clone()), "location_type": int,
            "youtubeVideoId": nullable(str_.clone()), "category": nullable(str_.clone()),
            "language": nullable(str_.clone()), "content_rating": nullable(str_.clone()),
            "status": { "enum": ["PENDING", "PROCESSING", "READY", "ERROR"] },
            "views": int, "averageRating": num, "totalRatingsCount": int,
        })),
        "VideoSummary": object(&["videoId", "title", "views", "averageRating"], json!({
            "videoId": s(UUID), "title": str_, "thumbnailUrl": nullable(str_.clone()), "userId": nullable(s(UUID)),
            "submittedAt": nullable(s(TIME)), "content_rating": nullable(str_.clone()),
            "category": nullable(str_.clone()), "views": int, "averageRating": num,
        })),
        "VideoStatus": object(&["videoId", "status"], json!({ "videoId": s(UUID), "status": str_ })),
        "Preview": object(&["youtubeVideoId", "title", "thumbnailUrl"], json!({
            "youtubeVideoId": str_, "title": str_, "thumbnailUrl": str_,
        })),
        "Rated": object(&["rating", "videoid", "userid", "created_at", "updated_at"], json!({
            "rating": int, "videoid": s(UUID), "userid": s(UUID), "created_at": s(TIME), "updated_at": s(TIME),
        })),
        "RatingSummary": object(&["videoId", "averageRating", "totalRatingsCount", "currentUserRating"], json!({
            "videoId": s(UUID), "averageRating": num, "totalRatingsCount": int,
            "currentUserRating": { "type": ["integer", "null"], "description": "With a token: the caller's rating" },
        })),
        "RatingLegacy": object(&["videoId", "averageRating", "ratingCount"], json!({
            "videoId": s(UUID), "averageRating": num, "ratingCount": int,
        })),
        "ViewsCount": object(&["videoId", "from", "to", "views", "granularity"], json!({
            "videoId": s(UUID), "from": nullable(s(TIME)), "to": nullable(s(TIME)), "views": int,
            "granularity": { "type": "string", "description": "The rollups that answered, e.g. `day+hour+minute`" },
        })),
        "Count": object(&["videoId", "eventType", "from", "to", "count", "granularity"], json!({
            "videoId": s(UUID), "eventType": r("EventType"), "from": nullable(s(TIME)), "to": nullable(s(TIME)),
            "count": int, "granularity": str_,
            "step": { "enum": ["minute", "hour", "day"], "description": "With ?step= only" },
            "series": {
                "description": "With ?step= only: every bucket of the range, empty ones as 0",
                "type": "array",
                "items": object(&["start", "count"], json!({ "start": s(TIME), "count": int })),
            },
        })),
        "Stats": object(&["videoId", "eventType", "function", "from", "to", "step", "buckets", "value"], json!({
            "videoId": s(UUID), "eventType": r("EventType"),
            "function": { "enum": ["count", "sum", "min", "max", "avg"] },
            "from": s(TIME), "to": s(TIME), "step": { "enum": ["minute", "hour", "day"] },
            "buckets": int, "value": num,
        })),
        "EventType": { "enum": ["view", "play", "like", "share", "complete"] },
        "EventIn": {
            "type": "object", "required": ["videoId"], "additionalProperties": false,
            "properties": {
                "videoId": s(UUID), "eventType": r("EventType"),
                "value": { "type": "integer", "minimum": 1, "description": "Amount added (default 1)" },
                "userId": s(UUID),
                "eventId": { "type": "string", "format": "uuid", "description": "Client-chosen: a retry counts once" },
                "occurredAt": { "type": "string", "format": "date-time", "description": "Default: when received" },
            },
        },
        "Accepted": object(&["eventId"], json!({ "eventId": s(UUID) })),
        "Related": object(&["videoId", "title", "thumbnailUrl", "score"], json!({
            "videoId": s(UUID), "title": str_, "thumbnailUrl": nullable(str_.clone()),
            "score": { "type": "integer", "description": "Tags shared with the video" },
        })),
        "TagSuggestion": object(&["tag"], json!({ "tag": str_ })),
        "Comment": object(&["commentid", "videoid", "userid", "comment", "firstName", "lastName"], json!({
            "commentid": s(UUID), "videoid": s(UUID), "userid": s(UUID), "comment": str_,
            "firstName": str_, "lastName": str_, "createdAt": nullable(s(TIME)),
        })),
        "Activity": object(&["userId", "activityType", "activityId", "activityTimestamp"], json!({
            "userId": s(UUID), "activityType": { "enum": ["view", "comment", "rate"] },
            "activityId": nullable(s(UUID)), "activityTimestamp": nullable(s(TIME)),
        })),
        "FlagStatus": { "enum": ["open", "under_review", "approved", "rejected"] },
        "Flag": object(&["flagId", "contentType", "contentId", "reasonCode", "status"], json!({
            "flagId": s(UUID), "contentType": { "enum": ["video", "comment"] }, "contentId": nullable(s(UUID)),
            "reasonCode": { "enum": ["spam", "inappropriate", "harassment", "copyright", "other"] },
            "reasonText": nullable(str_.clone()), "userId": nullable(s(UUID)),
            "createdAt": nullable(s(TIME)), "updatedAt": nullable(s(TIME)), "status": r("FlagStatus"),
            "moderatorId": nullable(s(UUID)), "moderatorNotes": nullable(str_.clone()),
            "resolvedAt": nullable(s(TIME)),
        })),
        "Restored": object(&["content_id", "content_type", "status_message"], json!({
            "content_id": s(UUID), "content_type": { "enum": ["video", "comment"] }, "status_message": str_,
        })),
        "PlaybackStats": object(&["videoId", "views"], json!({ "videoId": s(UUID), "views": int })),
        "Trending": object(&["window", "eventType", "granularity", "from", "to", "items"], json!({
            "window": { "enum": ["1h", "24h", "7d"] }, "eventType": r("EventType"),
            "granularity": { "enum": ["hour", "day"] },
            "from": { "type": "string", "format": "date-time", "description": "Start of the first bucket read" },
            "to": { "type": "string", "format": "date-time", "description": "End of the last bucket read" },
            "items": array(object(&["videoId", "count"], json!({ "videoId": s(UUID), "count": int }))),
        })),
        "BatchAccepted": object(&["accepted", "rejected"], json!({
            "accepted": int,
            "rejected": array(object(&["index", "detail"], json!({ "index": int, "field": nullable(str_.clone()), "detail": str_ }))),
        })),
    })
}

fn ops() -> Vec<Op> {
    use Auth::{Moderator, Optional, Public, Required};
    let problem = || Some(r("Problem"));
    let err = |codes: &[u16]| codes.iter().map(|&c| (c, problem())).collect::<Vec<_>>();
    let with = |mut ok: Vec<(u16, Option<Value>)>, codes: &[u16]| {
        ok.extend(err(codes));
        ok
    };
    let op = |method, path, summary, tag, auth, query, body: Option<Value>, answers| Op {
        method,
        path,
        summary,
        tag,
        auth,
        query,
        body,
        answers,
    };
    let str_ = json!({ "type": "string" });
    vec![
        // Users
        op(
            "post",
            "/api/v1/users/register",
            "Register",
            "users",
            Public,
            &[],
            Some(object(
                &["firstName", "lastName", "email", "password"],
                json!({
                    "firstName": str_, "lastName": str_, "email": str_,
                    "password": { "type": "string", "minLength": 8 },
                }),
            )),
            with(vec![(201, Some(r("Registered")))], &[409, 422]),
        ),
        op(
            "post",
            "/api/v1/users/login",
            "Log in: a JWT for 30 minutes",
            "users",
            Public,
            &[],
            Some(object(&["email", "password"], json!({ "email": str_, "password": str_ }))),
            with(vec![(200, Some(r("Login")))], &[401, 422]),
        ),
        op(
            "get",
            "/api/v1/users/me",
            "The signed-in user",
            "users",
            Required,
            &[],
            None,
            with(vec![(200, Some(r("User")))], &[401]),
        ),
        op(
            "put",
            "/api/v1/users/me",
            "Update the signed-in user's names",
            "users",
            Required,
            &[],
            Some(json!({ "type": "object", "properties": { "firstName": str_, "lastName": str_ } })),
            with(vec![(200, Some(r("User")))], &[401, 422]),
        ),
        op(
            "get",
            "/api/v1/users/{userId}",
            "A public profile",
            "users",
            Public,
            &[],
            None,
            with(vec![(200, Some(r("User")))], &[404, 422]),
        ),
        // Videos
        op(
            "post",
            "/api/v1/videos",
            "Submit a YouTube video: PENDING, then READY",
            "videos",
            Required,
            &[],
            Some(object(
                &["youtubeUrl"],
                json!({
                    "youtubeUrl": str_, "title": str_, "description": str_, "tags": array(str_.clone()),
                }),
            )),
            with(vec![(202, Some(r("VideoDetail")))], &[401, 422]),
        ),
        op(
            "post",
            "/api/v1/videos/preview",
            "Title and thumbnail guessed from the URL alone",
            "videos",
            Public,
            &[],
            Some(object(&["youtubeUrl"], json!({ "youtubeUrl": str_ }))),
            with(vec![(200, Some(r("Preview")))], &[422]),
        ),
        op(
            "get",
            "/api/v1/videos/id/{videoId}",
            "A video, with views and ratings from the pipeline",
            "videos",
            Public,
            &[],
            None,
            with(vec![(200, Some(r("VideoDetail")))], &[404, 422]),
        ),
        op(
            "put",
            "/api/v1/videos/id/{videoId}",
            "Edit a video (its uploader only)",
            "videos",
            Required,
            &[],
            Some(json!({ "type": "object", "properties": {
                "title": str_, "description": str_, "tags": array(str_.clone()),
            } })),
            with(vec![(200, Some(r("VideoDetail")))], &[401, 403, 404, 422]),
        ),
        op(
            "get",
            "/api/v1/videos/id/{videoId}/status",
            "Processing status",
            "videos",
            Required,
            &[],
            None,
            with(vec![(200, Some(r("VideoStatus")))], &[401, 404, 422]),
        ),
        // Views and ratings (the gateway's routes)
        op(
            "post",
            "/api/v1/videos/id/{videoId}/view",
            "Record a view (anonymous; no body)",
            "counting",
            Public,
            &[],
            None,
            with(vec![(204, None)], &[422, 503]),
        ),
        op(
            "post",
            "/api/v1/videos/{videoId}/ratings",
            "Rate 1 to 5; re-rating replaces",
            "ratings",
            Required,
            &[],
            Some(object(&["rating"], json!({ "rating": { "type": "integer", "minimum": 1, "maximum": 5 } }))),
            with(vec![(200, Some(r("Rated")))], &[401, 422, 503]),
        ),
        op(
            "get",
            "/api/v1/videos/{videoId}/ratings",
            "Average, count and (with a token) your rating",
            "ratings",
            Optional,
            &[],
            None,
            with(vec![(200, Some(r("RatingSummary")))], &[401, 404, 422]),
        ),
        op(
            "post",
            "/api/v1/videos/id/{videoId}/rating",
            "Rate (KillrVideo's older shape)",
            "ratings",
            Required,
            &[],
            Some(object(&["rating"], json!({ "rating": { "type": "integer", "minimum": 1, "maximum": 5 } }))),
            with(vec![(204, None)], &[401, 422, 503]),
        ),
        op(
            "get",
            "/api/v1/videos/id/{videoId}/rating",
            "Average and count (KillrVideo's older shape)",
            "ratings",
            Public,
            &[],
            None,
            with(vec![(200, Some(r("RatingLegacy")))], &[404, 422]),
        ),
        // Counting API
        op(
            "post",
            "/api/v1/events",
            "One typed event: 202 once durable in Kafka",
            "counting",
            Public,
            &[],
            Some(r("EventIn")),
            with(vec![(202, Some(r("Accepted")))], &[413, 422, 503]),
        ),
        op(
            "post",
            "/api/v1/events:batch",
            "Up to 1000 events, JSON array or application/x-protobuf EventBatch; per-item rejects",
            "counting",
            Public,
            &[],
            Some(array(r("EventIn"))),
            with(vec![(202, Some(r("BatchAccepted")))], &[413, 422, 503]),
        ),
        op(
            "get",
            "/api/v1/videos/{videoId}/views",
            "getViewsCount over a time range",
            "counting",
            Public,
            RANGE,
            None,
            with(vec![(200, Some(r("ViewsCount")))], &[422, 503]),
        ),
        op(
            "get",
            "/api/v1/videos/{videoId}/counts/{eventType}",
            "getCount of one event type over a range; with `step`, as a series of buckets",
            "counting",
            Public,
            &[
                ("from", "RFC 3339 start, inclusive (required with step)", false),
                ("to", "RFC 3339 end, exclusive (required with step)", false),
                ("step", "minute, hour or day: answer a series too (at most 1440 buckets)", false),
            ],
            None,
            with(vec![(200, Some(r("Count")))], &[422, 503]),
        ),
        // Catalog lists, search, recommendations
        op(
            "get",
            "/api/v1/videos/latest",
            "Newest videos first, across days",
            "videos",
            Public,
            PAGE,
            None,
            with(vec![(200, Some(paged("VideoSummary")))], &[422]),
        ),
        op(
            "get",
            "/api/v1/videos/by-tag/{tag}",
            "Videos with a tag, newest first",
            "videos",
            Public,
            PAGE,
            None,
            with(vec![(200, Some(paged("VideoSummary")))], &[422]),
        ),
        op(
            "get",
            "/api/v1/videos/by-uploader/{userId}",
            "A user's videos, newest first",
            "videos",
            Public,
            PAGE,
            None,
            with(vec![(200, Some(paged("VideoSummary")))], &[422]),
        ),
        op(
            "get",
            "/api/v1/videos/id/{videoId}/related",
            "Videos sharing tags, most shared first",
            "videos",
            Public,
            &[("limit", "1 to 20 (default 5)", false)],
            None,
            with(vec![(200, Some(array(r("Related"))))], &[404, 422]),
        ),
        op(
            "get",
            "/api/v1/search/videos",
            "Videos whose title, description or tags hold every word of the query",
            "search",
            Public,
            &[
                ("query", "words to find", true),
                ("page", "1-based page number (default 1)", false),
                ("pageSize", "1 to 100 (default 10)", false),
            ],
            None,
            with(vec![(200, Some(paged("VideoSummary")))], &[422]),
        ),
        op(
            "get",
            "/api/v1/search/tags/suggest",
            "Tags in use starting with the query",
            "search",
            Public,
            &[("query", "a tag prefix", true), ("limit", "1 to 50 (default 10)", false)],
            None,
            with(vec![(200, Some(array(r("TagSuggestion"))))], &[422]),
        ),
        op(
            "get",
            "/api/v1/recommendations/foryou",
            "Videos for the signed-in user, from the tags of what they rated and uploaded",
            "videos",
            Required,
            PAGE,
            None,
            with(vec![(200, Some(paged("VideoSummary")))], &[401, 422]),
        ),
        op(
            "get",
            "/api/v1/videos/trending",
            "Most viewed videos in the last 1, 7 or 30 days",
            "videos",
            Public,
            &[("intervalDays", "1, 7 or 30 (default 1)", false), ("limit", "1 to 10 (default 10)", false)],
            None,
            with(vec![(200, Some(array(r("VideoSummary"))))], &[422, 503]),
        ),
        op(
            "get",
            "/api/v1/trending",
            "Top videos by an event type over the hour or day buckets overlapping a window",
            "counting",
            Public,
            &[
                ("window", "1h, 24h or 7d (default 24h)", false),
                ("eventType", "view, play, like, share or complete (default view)", false),
                ("limit", "1 to 100 (default 10)", false),
            ],
            None,
            with(vec![(200, Some(r("Trending")))], &[422, 503]),
        ),
        op(
            "get",
            "/api/v1/videos/{videoId}/playback-stats",
            "All-time views of a video (seed 002 GetNumberOfPlays)",
            "counting",
            Public,
            &[],
            None,
            with(vec![(200, Some(r("PlaybackStats")))], &[404, 422, 503]),
        ),
        op(
            "get",
            "/api/v1/videos/playback-stats",
            "All-time views of many videos at once, in the order asked",
            "counting",
            Public,
            &[("videoIds", "1 to 100 comma-separated video ids", true)],
            None,
            with(vec![(200, Some(array(r("PlaybackStats"))))], &[422, 503]),
        ),
        // Comments and activity
        op(
            "post",
            "/api/v1/videos/{videoId}/comments",
            "Comment on a video",
            "comments",
            Required,
            &[],
            Some(object(&["text"], json!({ "text": { "type": "string", "minLength": 1, "maxLength": 1000 } }))),
            with(vec![(201, Some(r("Comment")))], &[401, 404, 422]),
        ),
        op(
            "get",
            "/api/v1/videos/{videoId}/comments",
            "A video's comments, newest first",
            "comments",
            Public,
            PAGE,
            None,
            with(vec![(200, Some(paged("Comment")))], &[404, 422]),
        ),
        op(
            "get",
            "/api/v1/users/{userId}/comments",
            "A user's comments, newest first",
            "comments",
            Public,
            PAGE,
            None,
            with(vec![(200, Some(paged("Comment")))], &[404, 422]),
        ),
        op(
            "get",
            "/api/v1/users/{userId}/activity",
            "A user's views (signed in), ratings and comments, newest first",
            "users",
            Public,
            PAGE,
            None,
            with(vec![(200, Some(paged("Activity")))], &[404, 422]),
        ),
        // Flags and moderation
        op(
            "post",
            "/api/v1/flags",
            "Flag a video or a comment",
            "moderation",
            Required,
            &[],
            Some(object(
                &["contentType", "contentId", "reasonCode"],
                json!({
                    "contentType": { "enum": ["video", "comment"] }, "contentId": s(UUID),
                    "reasonCode": { "enum": ["spam", "inappropriate", "harassment", "copyright", "other"] },
                    "reasonText": str_,
                }),
            )),
            with(vec![(201, Some(r("Flag")))], &[401, 404, 422]),
        ),
        op(
            "get",
            "/api/v1/moderation/flags",
            "Flags, optionally by status",
            "moderation",
            Moderator,
            &[
                ("status", "open, under_review, approved or rejected (default: all)", false),
                ("page", "1-based page number (default 1)", false),
                ("pageSize", "1 to 100 (default 10)", false),
            ],
            None,
            with(vec![(200, Some(paged("Flag")))], &[401, 403, 422]),
        ),
        op(
            "get",
            "/api/v1/moderation/flags/{flagId}",
            "One flag",
            "moderation",
            Moderator,
            &[],
            None,
            with(vec![(200, Some(r("Flag")))], &[401, 403, 404, 422]),
        ),
        op(
            "post",
            "/api/v1/moderation/flags/{flagId}/action",
            "Act on a flag: approved hides the content, rejected leaves it",
            "moderation",
            Moderator,
            &[],
            Some(object(&["status"], json!({ "status": r("FlagStatus"), "moderatorNotes": str_ }))),
            with(vec![(200, Some(r("Flag")))], &[401, 403, 404, 409, 422]),
        ),
        op(
            "get",
            "/api/v1/moderation/users",
            "Users whose email or name contains q",
            "moderation",
            Moderator,
            &[("q", "text to look for", false)],
            None,
            with(vec![(200, Some(array(r("User"))))], &[401, 403, 422]),
        ),
        op(
            "post",
            "/api/v1/moderation/users/{userId}/assign-moderator",
            "Grant the moderator role",
            "moderation",
            Moderator,
            &[],
            None,
            with(vec![(200, Some(r("User")))], &[401, 403, 404, 422]),
        ),
        op(
            "post",
            "/api/v1/moderation/users/{userId}/revoke-moderator",
            "Take the moderator role away",
            "moderation",
            Moderator,
            &[],
            None,
            with(vec![(200, Some(r("User")))], &[401, 403, 404, 422]),
        ),
        op(
            "post",
            "/api/v1/moderation/videos/{videoId}/restore",
            "Undo the soft delete of a video",
            "moderation",
            Moderator,
            &[],
            None,
            with(vec![(200, Some(r("Restored")))], &[401, 403, 404, 422]),
        ),
        op(
            "post",
            "/api/v1/moderation/comments/{commentId}/restore",
            "Undo the soft delete of a comment",
            "moderation",
            Moderator,
            &[],
            None,
            with(vec![(200, Some(r("Restored")))], &[401, 403, 404, 422]),
        ),
        op(
            "get",
            "/api/v1/videos/{videoId}/stats/{eventType}",
            "getStats: count (non-empty buckets), sum, min, max or avg over a range's buckets",
            "counting",
            Public,
            &[
                ("function", "count, sum, min, max or avg", true),
                ("from", "RFC 3339 start, inclusive", true),
                ("to", "RFC 3339 end, exclusive", true),
                ("step", "minute, hour (default) or day", false),
            ],
            None,
            with(vec![(200, Some(r("Stats")))], &[422, 503]),
        ),
        op(
            "get",
            "/api/v1/openapi.json",
            "This document",
            "meta",
            Public,
            &[],
            None,
            vec![(200, Some(json!({ "type": "object" })))],
        ),
    ]
}

fn describe(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No content",
        401 => "Missing, invalid or expired token",
        403 => "Signed in, but not allowed",
        404 => "No such resource",
        409 => "Conflict",
        413 => "Body too large",
        422 => "Validation failed; `field` names the offending field",
        503 => "A dependency is unavailable; retry after `Retry-After` seconds",
        _ => "",
    }
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = match name {
                    "eventType" => r("EventType"),
                    "tag" => json!({ "type": "string" }),
                    _ => s(UUID),
                };
                json!({ "name": name, "in": "path", "required": true, "schema": schema })
            })
            .collect();
        for (name, about, required) in op.query {
            params.push(json!({
                "name": name, "in": "query", "required": required, "description": about,
                "schema": { "type": "string" },
            }));
        }
        let mut responses = Map::new();
        for (status, schema) in &op.answers {
            let mut answer = json!({ "description": describe(*status) });
            if let Some(schema) = schema {
                let media = if *status >= 400 { "application/problem+json" } else { "application/json" };
                answer["content"] = json!({ media: { "schema": schema } });
            }
            responses.insert(status.to_string(), answer);
        }
        let mut operation = json!({
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', ':', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        match op.auth {
            Auth::Public => {}
            Auth::Optional => operation["security"] = json!([{}, { "bearer": [] }]),
            Auth::Required => operation["security"] = json!([{ "bearer": [] }]),
            Auth::Moderator => {
                operation["security"] = json!([{ "bearer": [] }]);
                operation["description"] = json!("Needs the `moderator` role in the token.");
            }
        }
        if let Some(body) = op.body {
            operation["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "vcount: video counting and the KillrVideo catalog API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One origin: the query service answers reads and the catalog; the ingest gateway \
                answers views, ratings and counting events (forwarded by the query service when \
                `web.gateway_url` is set, or routed by a reverse proxy). Errors are application/problem+json.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
        },
    })
}

/// Every documented (method, path template) pair.
pub fn operations() -> Vec<(String, String)> {
    ops().into_iter().map(|o| (o.method.to_owned(), o.path.to_owned())).collect()
}

pub fn api() -> Router {
    Router::new().route("/api/v1/openapi.json", get(serve))
}

async fn serve() -> Response {
    axum::Json(document()).into_response()
}
