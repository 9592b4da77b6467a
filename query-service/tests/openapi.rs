//! The OpenAPI document matches the code: every route the routers declare is
//! documented, every documented operation is routed (the service answers it with
//! something other than "no route" or "method not allowed"), and it is served.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// `(method, path)` of every `.route("…", get(…).post(…))` in a source file, with
/// path parameters renamed `{}` (the code says `{video_id}`, the document `{videoId}`).
fn declared_routes(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The call's text, up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("balanced parentheses");
        let call = &rest[..end];
        let Some(path) = call.strip_prefix('"').and_then(|p| p.split('"').next()) else { continue };
        for method in ["get", "post", "put", "delete", "patch"] {
            let needle = format!("{method}(");
            let found = call.match_indices(&needle).any(|(i, _)| {
                let before = call[..i].chars().last();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if found {
                out.push((method.to_owned(), normalize(path)));
            }
        }
    }
    out
}

fn normalize(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "{}" } else { seg }).collect::<Vec<_>>().join("/")
}

fn sources(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(path).unwrap());
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_operation_is_routed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut code: BTreeSet<(String, String)> = BTreeSet::new();
    for dir in ["query-service/src", "ingest-gateway/src"] {
        for src in sources(&root.join(dir)) {
            code.extend(declared_routes(&src).into_iter().filter(|(_, p)| p.starts_with("/api/v1")));
        }
    }
    let documented: BTreeSet<(String, String)> =
        query_service::openapi::operations().into_iter().map(|(m, p)| (m, normalize(&p))).collect();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&code).collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    assert!(code.len() >= 20, "the scan found only {} routes: is the parser still right?", code.len());
    // The gateway's routes are exactly what the one origin forwards.
    let gateway: BTreeSet<String> = sources(&root.join("ingest-gateway/src"))
        .iter()
        .flat_map(|s| declared_routes(s))
        .map(|(_, p)| p)
        .filter(|p| p.starts_with("/api/v1"))
        .collect();
    let forwarded: BTreeSet<String> = query_service::forward::GATEWAY_ROUTES.iter().map(|p| normalize(p)).collect();
    assert_eq!(gateway, forwarded, "forward.rs GATEWAY_ROUTES vs the gateway's routes");
}

#[test]
fn the_route_scanner_reads_multi_line_calls() {
    let src = r#"Router::new()
        .route("/api/v1/a/{id}", get(x).put(
            y,
        ))
        .route(path, post(forward))
        .route("/api/v1/b", post(budget_post))"#;
    let found = declared_routes(src);
    assert_eq!(
        found,
        vec![
            ("get".to_owned(), "/api/v1/a/{}".to_owned()),
            ("put".to_owned(), "/api/v1/a/{}".to_owned()),
            ("post".to_owned(), "/api/v1/b".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_document_is_served_and_is_openapi_3_1() {
    let mut cfg = query_service::QueryConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.cassandra.keyspace = format!("t_openapi_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let app = query_service::Application::build(cfg).await.expect("query service starts (is Cassandra up?)");
    let url = format!("http://{}/api/v1/openapi.json", app.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let doc: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    stop.cancel();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(&doc, query_service::openapi::document());
    // Every $ref points at a schema that exists.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref to {name}");
    }
    // Every path parameter in a template is declared.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }
    }
}
