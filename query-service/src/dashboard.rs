//! The counts page at `/dashboard`: a small static page (built from `dashboard/`
//! by its own build step, committed under `assets/dashboard/`) that reads the
//! public API from the browser. The files are compiled into the binary, so the
//! page needs no file system, no Node and no CDN at run time.
//!
//! Caching: the page itself is always revalidated (`no-cache` with an ETag, so an
//! unchanged page costs a 304), while the script and the stylesheet are named by
//! the page with a content hash (`app.js?v=<hash>`) and may be cached for a year.
//! A Content-Security-Policy limits the page to its own origin, so nothing can be
//! fetched from anywhere else even by mistake.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform::http::Problem;

/// One embedded file.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    /// The page is revalidated; the hashed assets are immutable.
    cache_control: &'static str,
}

const PAGE: &str = "index.html";

const ASSETS: [Asset; 3] = [
    Asset {
        name: PAGE,
        body: include_bytes!("../assets/dashboard/index.html"),
        content_type: "text/html; charset=utf-8",
        cache_control: "no-cache",
    },
    Asset {
        name: "app.js",
        body: include_bytes!("../assets/dashboard/app.js"),
        content_type: "text/javascript; charset=utf-8",
        cache_control: "public, max-age=31536000, immutable",
    },
    Asset {
        name: "app.css",
        body: include_bytes!("../assets/dashboard/app.css"),
        content_type: "text/css; charset=utf-8",
        cache_control: "public, max-age=31536000, immutable",
    },
];

/// Only this origin, for scripts, styles, images and API calls; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A strong ETag per asset: FNV-1a over the bytes (stable across builds and Rust
/// versions, unlike `DefaultHasher`).
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let h =
                a.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
            format!("\"{h:016x}\"")
        })
        .collect()
});

pub fn routes() -> Router {
    Router::new().route("/dashboard", get(page)).route("/dashboard/", get(page)).route("/dashboard/{file}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(PAGE, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Problem::not_found(format!("the dashboard has no file {name:?}")).into_response();
    };
    let a = &ASSETS[i];
    let etag = HeaderValue::from_str(&ETAGS[i]).expect("an ETag is ASCII");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == ETAGS[i] || t.trim() == "*"));
    let mut res = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { a.body.into_response() };
    let h = res.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(a.cache_control));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    }
    if a.name == PAGE {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads exactly the embedded assets, and nothing from another origin.
    #[test]
    fn the_page_names_exactly_the_embedded_assets() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for a in &ASSETS[1..] {
            assert!(html.contains(&format!("\"/dashboard/{}?v=", a.name)), "the page does not load {}", a.name);
        }
        let names: Vec<&str> = html.match_indices("/dashboard/").map(|(i, _)| &html[i + 11..]).collect();
        for n in names {
            let file = n.split(['?', '"']).next().unwrap();
            assert!(ASSETS.iter().any(|a| a.name == file), "the page loads /dashboard/{file}, which is not embedded");
        }
        for scheme in ["http://", "https://", "//"] {
            assert!(!html.contains(&format!("=\"{scheme}")), "the page loads something from another origin");
        }
        assert_ne!(ETAGS[1], ETAGS[2]);
    }

    #[test]
    fn every_asset_has_a_content_type_and_a_policy() {
        let h = HeaderMap::new();
        for a in &ASSETS {
            let res = serve(a.name, &h);
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[header::CONTENT_TYPE], a.content_type);
            assert_eq!(res.headers()[header::CACHE_CONTROL], a.cache_control);
        }
        assert_eq!(serve("../Cargo.toml", &h).status(), StatusCode::NOT_FOUND);
        let mut cond = HeaderMap::new();
        cond.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&ETAGS[0]).unwrap());
        let res = serve(PAGE, &cond);
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers()[header::ETAG], ETAGS[0].as_str());
    }
}
