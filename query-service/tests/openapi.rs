//! The generated OpenAPI document against the real routers and the code's limits.
//!
//! Routes and their documentation come from the same `routes!` calls
//! (`query_service::api::routes`, `ingest_gateway::routes::router`), so a route
//! cannot be answered without being documented. What is left to check is the
//! other way round (every documented operation is answered by the router the
//! service really runs, not "no route" or "method not allowed"), that the
//! document is well-formed OpenAPI 3.1, and that the limits it states are the
//! ones the code enforces.

mod common;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

fn doc() -> &'static Value {
    query_service::openapi::document()
}

fn schema<'a>(name: &str) -> &'a Value {
    let s = &doc()["components"]["schemas"][name];
    assert!(s.is_object(), "no schema {name}");
    s
}

/// The schema of query parameter `name` of `GET path`.
fn query_param<'a>(path: &str, name: &str) -> &'a Value {
    let params = doc()["paths"][path]["get"]["parameters"].as_array().unwrap_or_else(|| panic!("GET {path}"));
    let p = params.iter().find(|p| p["name"] == name && p["in"] == "query");
    &p.unwrap_or_else(|| panic!("GET {path} documents no `{name}`"))["schema"]
}

/// `(method, path)` of every documented operation.
fn operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push((method.clone(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_answered_by_the_running_router() {
    // The gateway's routes are forwarded; a gateway that is not there answers 503,
    // which still shows the route exists on this origin.
    let s = common::Service::start_with(common::SECRET, |c| c.web.gateway_url = "http://127.0.0.1:9".into()).await;
    let ops = operations();
    assert!(ops.len() >= 40, "only {} operations documented", ops.len());
    let id = uuid::Uuid::new_v4().to_string();
    for (method, template) in ops {
        let path: String = template
            .split('/')
            .map(|seg| match seg {
                "{event_type}" => "view",
                "{tag}" => "music",
                s if s.starts_with('{') => id.as_str(),
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = s.send(method.clone(), path.trim_start_matches("/api/v1"), None, None).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template}: {body}");
        let no_route = status == StatusCode::NOT_FOUND && body["detail"] == "no route for this path";
        assert!(!no_route, "{method} {template} is documented but not routed");
        // Whatever it answered is documented for it.
        let documented = &doc()["paths"][&template][method.as_str().to_lowercase()]["responses"][status.as_str()];
        assert!(documented.is_object(), "{method} {template} answered an undocumented {status}: {body}");
    }
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let s = common::Service::start(common::SECRET).await;
    let (status, served) = s.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&served, doc());
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    // Every $ref points at a schema that exists.
    let text = d.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(d["components"]["schemas"][name].is_object(), "dangling $ref to {name}");
    }
    for (path, item) in d["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            // Every path parameter in a template is declared, and nothing else is.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(declared, in_path, "{method} {path}");
            // Errors are problem+json; success is JSON (or nothing).
            for (status, answer) in op["responses"].as_object().unwrap() {
                let media: Vec<&String> = answer["content"].as_object().map(|c| c.keys().collect()).unwrap_or_default();
                let want = if status.starts_with('2') { "application/json" } else { "application/problem+json" };
                assert!(media.iter().all(|m| *m == want), "{method} {path} {status}: {media:?}");
            }
            // Whoever needs a token can be refused one.
            if op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some())) {
                assert!(op["responses"]["401"].is_object(), "{method} {path} takes a token but documents no 401");
            }
            if (method == "post" || method == "put") && op["requestBody"].is_object() {
                assert!(op["responses"]["413"].is_object(), "{method} {path} reads a body but documents no 413");
            }
        }
    }
}

#[test]
fn bodies_that_refuse_unknown_members_say_so() {
    for name in
        ["Register", "Credentials", "UpdateMe", "Submit", "Edit", "PreviewIn", "NewComment", "NewFlag", "Action"]
    {
        assert_eq!(schema(name)["additionalProperties"], false, "{name}");
    }
    for name in ["EventIn", "RateIn"] {
        assert_eq!(schema(name)["additionalProperties"], false, "{name}");
    }
    // Optional event members are refused as null, and documented as not nullable.
    for (member, v) in schema("EventIn")["properties"].as_object().unwrap() {
        assert!(!v.to_string().contains("null"), "EventIn.{member} is documented nullable: {v}");
    }
}

#[test]
fn the_documented_limits_are_the_enforced_ones() {
    use query_service::domain::{paging, recommend, search, trending, validate};
    let max = |s: &Value| s["maximum"].as_u64().unwrap_or_else(|| panic!("no maximum: {s}"));
    assert_eq!(max(query_param("/api/v1/videos/latest", "pageSize")), u64::from(paging::MAX_PAGE_SIZE));
    assert_eq!(max(query_param("/api/v1/videos/latest", "page_size")), u64::from(paging::MAX_PAGE_SIZE));
    assert_eq!(max(query_param("/api/v1/search/videos", "pageSize")), u64::from(paging::MAX_PAGE_SIZE));
    let viewers_list = "/api/v1/videos/{video_id}/viewers/list";
    assert_eq!(max(query_param(viewers_list, "pageSize")), u64::from(paging::MAX_PAGE_SIZE));
    let viewers = doc()["paths"]["/api/v1/videos/{video_id}/viewers"]["get"]["description"].as_str().unwrap();
    let cap = query_service::domain::viewers::MAX_SKETCHES;
    assert!(viewers.contains(&format!("more than {cap} sketches")), "the viewers range cap: {viewers}");
    assert_eq!(max(query_param("/api/v1/trending", "limit")), u64::from(trending::MAX_TOP));
    assert_eq!(max(query_param("/api/v1/videos/trending", "limit")), u64::from(trending::MAX_TRENDING_VIDEOS));
    assert_eq!(max(query_param("/api/v1/videos/id/{video_id}/related", "limit")), u64::from(recommend::MAX_RELATED));
    assert_eq!(max(query_param("/api/v1/search/tags/suggest", "limit")), u64::from(search::MAX_SUGGESTIONS));
    let q = query_param("/api/v1/search/videos", "query");
    assert_eq!(q["maxLength"].as_u64(), Some(search::MAX_QUERY_CHARS as u64));
    assert!(q["pattern"].as_str().unwrap().contains(&format!("{{0,{}}}", search::MAX_QUERY_WORDS - 1)));
    let ids = query_param("/api/v1/videos/playback-stats", "videoIds");
    assert!(ids["pattern"].as_str().unwrap().contains(&format!("{{0,{}}}", validate::MAX_STATS_IDS - 1)));
    let submit = &schema("Submit")["properties"];
    assert_eq!(submit["title"]["maxLength"].as_u64(), Some(validate::MAX_TITLE_CHARS as u64));
    assert_eq!(submit["description"]["maxLength"].as_u64(), Some(validate::MAX_DESCRIPTION_CHARS as u64));
    assert_eq!(submit["tags"]["maxItems"].as_u64(), Some(validate::MAX_TAGS as u64));
    assert_eq!(submit["youtubeUrl"]["pattern"], query_service::api::catalog::videos::YOUTUBE_URL);
    assert_eq!(
        schema("PreviewIn")["properties"]["youtubeUrl"]["pattern"],
        query_service::api::catalog::videos::YOUTUBE_URL
    );
    assert_eq!(
        schema("NewComment")["properties"]["text"]["maxLength"].as_u64(),
        Some(validate::MAX_COMMENT_CHARS as u64)
    );
    let reg = &schema("Register")["properties"];
    assert_eq!(reg["password"]["minLength"].as_u64(), Some(validate::MIN_PASSWORD_CHARS as u64));
    assert_eq!(reg["firstName"]["maxLength"].as_u64(), Some(validate::MAX_NAME_CHARS as u64));
    // The gateway's: event values and batch sizes as its defaults.
    let rules = ingest_gateway::config::GatewayConfig::default();
    assert_eq!(schema("EventIn")["properties"]["value"]["maximum"].as_i64(), Some(rules.events.max_value));
    let batch = &doc()["paths"]["/api/v1/events:batch"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let batch = if batch.get("$ref").is_some() { schema("JsonBatch") } else { batch };
    assert_eq!(batch["maxItems"].as_u64(), Some(rules.events.max_batch_events as u64), "{batch}");
    assert_eq!(batch["minItems"].as_u64(), Some(1));
    // Event types are open (config's `event_types`): a string of the code's pattern.
    let kind = schema("EventType");
    assert_eq!(kind["pattern"].as_str(), Some(counting::kind::NAME_PATTERN), "{kind}");
    assert_eq!(kind["maxLength"].as_u64(), Some(counting::kind::MAX_NAME_LEN as u64));
    assert!(kind.get("enum").is_none(), "a new type must not need a new document: {kind}");
    // The enums are the code's wire names.
    let statuses: Vec<&str> =
        schema("FlagStatus")["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let code: Vec<&str> = query_service::domain::moderation::FlagStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(statuses, code);
    // Search says how it answers `mode=semantic`.
    let search = &doc()["paths"]["/api/v1/search/videos"]["get"];
    assert!(search["description"].as_str().unwrap().contains("keyword results"), "{search}");
}

#[test]
fn range_answers_document_how_they_cover_the_range() {
    // Each answer over a range states its coverage, the edges that moved and the
    // rows that answered (members flattened in from `Resolution`).
    for name in ["ViewsCount", "Count", "Stats"] {
        let text = schema(name).to_string();
        assert!(text.contains("#/components/schemas/Resolution"), "{name}: {text}");
    }
    let resolution = schema("Resolution");
    let required: BTreeSet<&str> =
        resolution["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, BTreeSet::from(["coverage", "adjustments", "spans"]));
    let names = |schema_name: &str| -> Vec<String> {
        schema(schema_name)["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names("Coverage"), ["exact", "widened", "narrowed"]);
    assert_eq!(
        names("Reason"),
        ["minute_alignment", "step_alignment", "minute_rows_expired", "hour_rows_expired", "day_rows_expired"]
    );
    assert_eq!(names("Level"), ["minute", "hour", "day"]);
    let views = &doc()["paths"]["/api/v1/videos/{video_id}/views"]["get"]["description"];
    assert!(views.as_str().unwrap().contains("Never a silently short count"), "{views}");
}
