//! The counts page (`/dashboard`) used as a person would, in headless Chromium,
//! against the real pipeline: a ledger of views, plays, likes, shares, completes
//! and ratings goes through the gateway, the aggregator flushes it, and every
//! number the page shows (totals, each chart bucket, every event type, the
//! average rating, the trending list, the distinct signed-in viewers) must equal
//! the ledger over the bounds the page shows. Also: the page loads nothing from another origin, auto-refresh makes
//! one request per panel per interval and pauses while the tab is hidden, and the
//! committed bundle is what the sources build.
//!
//! The browser is driven by `dashboard/test/browser.mjs` (playwright-core and
//! Debian's `/usr/bin/chromium`; `scripts/test` installs both). Without Node, the
//! npm packages or Chromium these tests fail, never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::observability::workspace_root;
use e2e::*;
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

const TYPES: [&str; 5] = ["view", "play", "like", "share", "complete"];

fn dashboard_dir() -> PathBuf {
    workspace_root().join("dashboard")
}

/// Node, the npm packages and Chromium, or a panic saying how to get them.
fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(node.is_ok_and(|o| o.status.success()), "node is not on PATH: the dashboard tests need Node.js 20+");
    let modules = dashboard_dir().join("node_modules");
    for pkg in ["playwright-core", "esbuild", "uplot"] {
        assert!(modules.join(pkg).exists(), "dashboard/node_modules/{pkg} is missing: run `npm ci` in dashboard/");
    }
    let chromium = std::env::var("VCOUNT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&chromium).exists(), "{chromium} is missing: run scripts/install-browser");
}

fn node(args: &[&str]) -> std::process::Output {
    require_browser_tools();
    Command::new("node").args(args).current_dir(dashboard_dir()).output().expect("node runs")
}

#[test]
fn the_committed_bundle_is_built_from_the_sources() {
    let out = node(&["build.mjs", "--check"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_page_logic_passes_its_unit_tests() {
    // Ranges and steps the counts API accepts; the refresh scheduler.
    let out = node(&["--test", "test/unit/"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("# fail 0") && !text.contains("# pass 0"), "{text}");
}

// --------------------------------------------------------------- the page ----

fn ms(s: &Value) -> i64 {
    let s = s.as_str().unwrap_or_else(|| panic!("not a time: {s}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).timestamp_millis()
}

/// A number as the page prints it (`1,234`), or a panic naming what it was.
fn int(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("no number on screen: {v}"));
    s.replace(',', "").parse().unwrap_or_else(|_| panic!("{s:?} is not a whole number"))
}

fn step_ms(step: &str) -> i64 {
    match step {
        "minute" => MINUTE,
        "hour" => HOUR,
        "day" => DAY,
        other => panic!("unknown step {other}"),
    }
}

struct Seeded {
    a: Uuid,
    b: Uuid,
    /// Counted, but no video of the catalog.
    unknown: Uuid,
    title_a: String,
    word: String,
    ledgers: BTreeMap<&'static str, Ledger>,
    /// Signed-in views (video, user, when), through the gateway with tokens.
    viewers: Vec<(Uuid, Uuid, i64)>,
    /// The average rating the page must print, and how many ratings.
    rating: (String, String),
}

/// What one read of the page must show, given the ledger.
struct Expect<'a> {
    name: &'a str,
    video: Uuid,
    event_type: &'a str,
    step: &'a str,
    points: usize,
}

fn check_read(s: &Seeded, read: &Value, e: &Expect<'_>) {
    let n = e.name;
    assert_eq!(read["errors"], json!([]), "{n}: the page shows errors");
    assert_eq!(read["videoId"], e.video.to_string(), "{n}");
    assert_eq!(read["title"], s.title_a, "{n}");
    let chart = &read["chart"];
    assert_eq!((chart["step"].as_str(), chart["eventType"].as_str()), (Some(e.step), Some(e.event_type)), "{n}");
    let (from, to, w) = (ms(&chart["from"]), ms(&chart["to"]), step_ms(e.step));
    assert_eq!((from % w, to % w), (0, 0), "{n}: bounds not aligned to the step");
    let ledger = &s.ledgers[e.event_type];

    // Every bucket of the chart's data, in order, equals the ledger.
    let series = read["series"].as_array().unwrap();
    assert_eq!(series.len(), e.points, "{n}: buckets");
    assert_eq!(to - from, e.points as i64 * w, "{n}: bounds vs buckets");
    let mut nonzero = 0;
    for (i, row) in series.iter().enumerate() {
        let start = ms(&row[0]);
        assert_eq!(start, from + i as i64 * w, "{n}: bucket {i} starts at {}", row[0]);
        let want = ledger.count(e.video, Some((start, start + w)));
        assert_eq!(int(&row[1]), want, "{n}: bucket {} ({}s)", row[0], e.event_type);
        nonzero += usize::from(want > 0);
    }
    assert!(nonzero > 0, "{n}: the ledger has nothing in this range, so the check would prove little");
    assert_eq!(read["chartCanvas"], true, "{n}: no chart drawn");

    // The totals.
    let in_range = ledger.count(e.video, Some((from, to)));
    assert_eq!(int(&read["inRange"]), in_range, "{n}: in-range total");
    assert_eq!(
        (read["inRangeCard"]["from"].clone(), read["inRangeCard"]["to"].clone()),
        (chart["from"].clone(), chart["to"].clone())
    );
    assert_eq!(int(&read["allTime"]), s.ledgers["view"].count(e.video, None), "{n}: all-time views");
    assert_eq!(
        (read["rating"].as_str(), read["ratingCount"].as_str()),
        (Some(&*s.rating.0), Some(&*s.rating.1)),
        "{n}"
    );
    // Unique viewers: the distinct signed-in users who viewed in the bounds the
    // card shows (the page's range rounded out to whole hours), counted exactly.
    let unique = &read["unique"];
    assert_eq!((unique["state"].as_str(), unique["exact"].as_str()), (Some("ready"), Some("true")), "{n}: {unique}");
    let (ufrom, uto) = (ms(&unique["from"]), ms(&unique["to"]));
    assert!(ufrom < uto && ufrom % HOUR == 0 && uto % HOUR == 0, "{n}: viewers over {unique}");
    let viewers: BTreeSet<Uuid> =
        s.viewers.iter().filter(|(v, _, at)| *v == e.video && (ufrom..uto).contains(at)).map(|(_, u, _)| *u).collect();
    assert_eq!(int(&unique["text"]), viewers.len() as i64, "{n}: unique viewers");

    // Every event type over the same bounds.
    assert_eq!((&read["typesPanel"]["from"], &read["typesPanel"]["to"]), (&chart["from"], &chart["to"]), "{n}");
    let types: Vec<(String, i64)> =
        read["types"].as_array().unwrap().iter().map(|r| (r[0].as_str().unwrap().to_owned(), int(&r[1]))).collect();
    let want: Vec<(String, i64)> =
        TYPES.iter().map(|t| ((*t).to_owned(), s.ledgers[t].count(e.video, Some((from, to))))).collect();
    assert_eq!(types, want, "{n}: events in range");

    check_trending(s, read, n);
    eprintln!("[dashboard] {n}: {} {} buckets, {in_range} {}s in range: exact", e.points, e.step, e.event_type);
}

/// The trending list equals the ledger's views over the window the panel shows,
/// most first, equal counts by id (this test's keyspace holds only its videos).
fn check_trending(s: &Seeded, read: &Value, n: &str) {
    let panel = &read["trendingPanel"];
    let (from, to) = (ms(&panel["from"]), ms(&panel["to"]));
    let mut want: Vec<(Uuid, i64)> = [s.a, s.b, s.unknown]
        .iter()
        .map(|v| (*v, s.ledgers["view"].count(*v, Some((from, to)))))
        .filter(|x| x.1 > 0)
        .collect();
    want.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let got: Vec<(Uuid, i64)> = read["trending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().parse().unwrap(), int(&r[1])))
        .collect();
    assert_eq!(got, want, "{n}: trending over {}..{} ({})", panel["from"], panel["to"], panel["window"]);
    assert!(!got.is_empty(), "{n}: an empty trending list proves nothing");
}

/// Checks the requests of auto-refresh: rounds of exactly one request per panel.
fn refresh_rounds(requests: &[Value], chart_type: &str) -> Vec<i64> {
    let mut rounds: Vec<(i64, Vec<String>)> = Vec::new();
    for r in requests {
        let path = r["path"].as_str().unwrap();
        let query = r["query"].as_str().unwrap();
        let kind = if path == "/api/v1/trending" {
            "trending".to_owned()
        } else if path.ends_with("/views") {
            "all-time".to_owned()
        } else if path.ends_with("/ratings") {
            "rating".to_owned()
        } else if path.ends_with("/viewers") {
            "viewers".to_owned()
        } else if let Some((_, t)) = path.split_once("/counts/") {
            if query.contains("step=") { format!("series {t}") } else { format!("count {t}") }
        } else {
            panic!("auto-refresh asked for {path}{query}, which no panel reads")
        };
        if kind == "trending" {
            rounds.push((r["at"].as_i64().unwrap(), Vec::new()));
        }
        rounds.last_mut().expect("a round starts with trending").1.push(kind);
    }
    let mut want: Vec<String> =
        vec!["trending".into(), "all-time".into(), "rating".into(), "viewers".into(), format!("series {chart_type}")];
    want.extend(TYPES.iter().filter(|t| **t != chart_type).map(|t| format!("count {t}")));
    want.sort();
    for (at, mut kinds) in rounds.clone() {
        kinds.sort();
        assert_eq!(kinds, want, "the refresh at {at} ms: one request per panel");
    }
    rounds.into_iter().map(|(at, _)| at).collect()
}

async fn seed(env: &TestEnv) -> Seeded {
    let http = &env.http;
    // A user and two videos whose titles share a word the search finds.
    let email = format!("{}@example.org", Uuid::new_v4().simple());
    let reg = json!({"firstName": "Dee", "lastName": "Ash", "email": email, "password": "correct horse"});
    let res = http.post(env.query_url("/api/v1/users/register")).json(&reg).send().await.unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let login: Value = http
        .post(env.query_url("/api/v1/users/login"))
        .json(&json!({"email": email, "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("a token").to_owned();
    let word = format!("dash{}", &Uuid::new_v4().simple().to_string()[..8]);
    let mut ids = Vec::new();
    for title in [format!("The {word} counter"), format!("The {word} sequel")] {
        let body = json!({"youtubeUrl": "https://youtu.be/dQw4w9WgXcQ", "title": title, "tags": ["dashboard"]});
        let res = http.post(env.query_url("/api/v1/videos")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.text().await);
        let v: Value = res.json().await.unwrap();
        ids.push(v["videoId"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let (a, b, unknown) = (ids[0], ids[1], Uuid::new_v4());

    // The ledger: every event type, over minutes, hours and days.
    let now = now_ms();
    let mut ledgers: BTreeMap<&'static str, Ledger> = TYPES.iter().map(|t| (*t, Ledger::default())).collect();
    // (video, type, how many, between these ages): the ages put events in every
    // range the browser reads, the custom one included.
    let plan: [(Uuid, &str, usize, i64, i64); 14] = [
        (a, "view", 45, 0, 55 * MINUTE),
        (a, "view", 12, 2 * HOUR + 10 * MINUTE, 4 * HOUR + 50 * MINUTE),
        (a, "view", 70, 0, 6 * DAY),
        (a, "play", 30, 0, 50 * MINUTE),
        (a, "play", 20, 0, 2 * DAY),
        (a, "like", 12, 0, 20 * HOUR),
        (a, "share", 5, 0, 40 * MINUTE),
        (a, "complete", 9, 0, 3 * DAY),
        (b, "view", 17, 0, 50 * MINUTE),
        (b, "view", 25, 0, 5 * DAY),
        (b, "like", 3, 0, 20 * HOUR),
        (b, "complete", 2, 0, 30 * MINUTE),
        (unknown, "view", 6, 0, 3 * DAY),
        (unknown, "like", 4, 0, 20 * HOUR),
    ];
    let mut events = Vec::new();
    let mut sent = Vec::new();
    {
        let mut rng = rand::rng();
        for (video, kind, n, young, old) in plan {
            for _ in 0..n {
                let at = now - rng.random_range(young..old);
                events.push(json!({"videoId": video, "eventType": kind, "occurredAt": rfc3339(at)}));
                sent.push((video, kind, at));
            }
        }
    }
    env.post_batch(&events).await;
    for (video, kind, at) in sent {
        ledgers.get_mut(kind).unwrap().record(video, at);
    }
    // Ratings of the first video: 5, 4, and 3 changed to 2 → 11/3 over 3 raters.
    let raters = uuids(3);
    for (user, stars) in [(raters[0], 5), (raters[1], 4), (raters[2], 3), (raters[2], 2)] {
        let res = http
            .post(env.gateway_url(&format!("/api/v1/videos/{a}/ratings")))
            .bearer_auth(token_for(user))
            .json(&json!({"rating": stars}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
    }

    // Signed-in views of the first video, now: 3 users, one of them twice, plus
    // the anonymous views above. Sent clear of a minute's end, so the minute the
    // ledger records is the one the gateway stamps.
    let left = MINUTE - now_ms().rem_euclid(MINUTE);
    if left < 3_000 {
        tokio::time::sleep(Duration::from_millis(left as u64 + 100)).await;
    }
    let mut viewers = Vec::new();
    let watchers = uuids(3);
    for user in [watchers[0], watchers[1], watchers[2], watchers[0]] {
        let at = now_ms();
        let res = http
            .post(env.gateway_url(&format!("/api/v1/videos/id/{a}/view")))
            .bearer_auth(token_for(user))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
        ledgers.get_mut("view").unwrap().record(a, at);
        viewers.push((a, user, at));
    }

    // Wait for the aggregator: every all-time count and the ratings equal the ledger.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut behind = Vec::new();
        for (kind, ledger) in &ledgers {
            for v in [a, b, unknown] {
                let url = env.query_url(&format!("/api/v1/videos/{v}/counts/{kind}"));
                let got = http.get(url).send().await.unwrap().json::<Value>().await.unwrap()["count"].as_i64();
                if got != Some(ledger.count(v, None)) {
                    behind.push(format!("{v} {kind}: {got:?} of {}", ledger.count(v, None)));
                }
            }
        }
        let r: Value =
            http.get(env.query_url(&format!("/api/v1/videos/{a}/ratings"))).send().await.unwrap().json().await.unwrap();
        if r["totalRatingsCount"] != 3 || (r["averageRating"].as_f64().unwrap_or(0.0) - 11.0 / 3.0).abs() > 1e-9 {
            behind.push(format!("ratings {r}"));
        }
        let (day, hour) = (now.div_euclid(DAY) * DAY, now_ms().div_euclid(HOUR) * HOUR + HOUR);
        let url = format!("/api/v1/videos/{a}/viewers?from={}&to={}", rfc3339(day - DAY), rfc3339(hour));
        let u: Value = http.get(env.query_url(&url)).send().await.unwrap().json().await.unwrap();
        if u["estimate"] != 3 {
            behind.push(format!("viewers {u}"));
        }
        // Counts come fresh from the owner, but trending reads the rows the
        // rounds write: wait for those too, over the windows the page shows.
        for window in ["1h", "24h"] {
            let url = env.query_url(&format!("/api/v1/trending?window={window}&eventType=view&limit=10"));
            let t: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let bounds = (ms(&t["from"]), ms(&t["to"]));
            let got: BTreeMap<String, i64> = t["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["videoId"].as_str().unwrap().to_owned(), i["count"].as_i64().unwrap()))
                .collect();
            let want: BTreeMap<String, i64> = [a, b, unknown]
                .iter()
                .map(|v| (v.to_string(), ledgers["view"].count(*v, Some(bounds))))
                .filter(|x| x.1 > 0)
                .collect();
            if got != want {
                behind.push(format!("trending {window}: {got:?} of {want:?}"));
            }
        }
        if behind.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the pipeline never caught up with the ledger: {behind:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("[dashboard] {} events and 4 ratings counted", ledgers.values().map(Ledger::total).sum::<usize>());
    Seeded {
        a,
        b,
        unknown,
        title_a: format!("The {word} counter"),
        word,
        ledgers,
        viewers,
        rating: ("3.67".into(), "3 ratings".into()),
    }
}

/// The page and its assets over HTTP: types, caching, the policy, a 304.
async fn check_served(env: &TestEnv) -> String {
    let http = &env.http;
    let res = http.get(env.query_url("/dashboard")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let etag = h["etag"].clone();
    let html = res.text().await.unwrap();
    let again = http.get(env.query_url("/dashboard")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "an unchanged page is not sent again");
    for (file, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let at = html.find(&format!("/dashboard/{file}?v=")).unwrap_or_else(|| panic!("the page does not load {file}"));
        let url = &html[at..at + html[at..].find('"').unwrap()];
        let res = http.get(env.query_url(url)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(res.headers()["content-type"], format!("{kind}; charset=utf-8").as_str(), "{url}");
        assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable", "{url}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{url}");
        assert!(res.bytes().await.unwrap().len() > 1000, "{url}");
    }
    let missing = http.get(env.query_url("/dashboard/secret.txt")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    html
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_shows_exactly_what_was_counted() {
    require_browser_tools();
    let mut env = TestEnv::start_one_origin("dashboard", 2).await;
    env.spawn_aggregator();
    check_served(&env).await;
    let s = seed(&env).await;

    // A ragged custom range, typed as a person would (the browser runs in UTC).
    let now = now_ms();
    let local = |t: i64| rfc3339(t)[..16].to_owned();
    let (custom_from, custom_to) = (now - 5 * HOUR + 17 * MINUTE, now - 2 * HOUR + 3 * MINUTE);
    let screenshot = target_dir().join("tmp").join("dashboard.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let cfg = json!({
        "origin": env.query_url(""),
        "search": s.word,
        "video": s.a,
        "unknown": s.unknown,
        "custom": {"from": local(custom_from), "to": local(custom_to)},
        "screenshot": screenshot,
    });
    let run = tokio::process::Command::new("node")
        .arg("test/browser.mjs")
        .arg(cfg.to_string())
        .current_dir(dashboard_dir())
        .env("TZ", "UTC")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run).await.expect("the browser run ends").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let reads = &report["reads"];

    // Nothing but this origin's page and API; no failed request, no script error.
    assert_eq!(report["foreign"], json!([]), "requests to other origins");
    assert_eq!(report["failed"], json!([]), "failed requests");
    assert_eq!(report["consoleErrors"], json!([]), "errors in the page");
    for r in report["requests"].as_array().unwrap() {
        let path = r["path"].as_str().unwrap();
        assert!(path.starts_with("/dashboard") || path.starts_with("/api/v1/"), "the page asked for {path}");
    }

    // Before a video is picked: the trending list only.
    assert_eq!(reads["initial"]["title"], "Pick a video");
    check_trending(&s, &reads["initial"], "initial");
    // The search found both videos; the first was picked.
    let found: Vec<&str> = report["searchResults"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(found.contains(&&*s.a.to_string()) && found.contains(&&*s.b.to_string()), "search results {found:?}");

    let e = |name, event_type, step, points| Expect { name, video: s.a, event_type, step, points };
    check_read(&s, &reads["selected"], &e("selected (24 h)", "view", "hour", 24));
    check_read(&s, &reads["1h"], &e("1h", "view", "minute", 60));
    check_read(&s, &reads["24h"], &e("24h", "view", "hour", 24));
    check_read(&s, &reads["7d"], &e("7d", "view", "hour", 168));
    check_read(&s, &reads["30d"], &e("30d", "view", "day", 30));
    let custom_minutes = ((custom_to - custom_to % MINUTE) - (custom_from - custom_from % MINUTE)) / MINUTE;
    check_read(&s, &reads["custom"], &e("custom", "view", "minute", custom_minutes as usize));
    assert_eq!(
        (ms(&reads["custom"]["chart"]["from"]), ms(&reads["custom"]["chart"]["to"])),
        (custom_from - custom_from % MINUTE, custom_to - custom_to % MINUTE),
        "the custom range is the typed one"
    );
    check_read(&s, &reads["like24h"], &e("likes 24h", "like", "hour", 24));
    assert_eq!(reads["trending24h"]["trendingPanel"]["window"], "24h");
    check_read(&s, &reads["trending24h"], &e("trending 24h", "like", "hour", 24));
    // A counted id the catalog does not know: its counts, and no rating or title.
    let unknown = &reads["unknown"];
    let (from, to) = (ms(&unknown["chart"]["from"]), ms(&unknown["chart"]["to"]));
    assert_eq!(unknown["videoId"], s.unknown.to_string());
    assert_eq!(unknown["title"], "Not in the catalog (counts only)");
    assert_eq!((unknown["rating"].as_str(), unknown["ratingCount"].as_str()), (Some("–"), Some("not in the catalog")));
    assert_eq!(int(&unknown["allTime"]), s.ledgers["view"].count(s.unknown, None));
    assert_eq!(int(&unknown["inRange"]), s.ledgers["like"].count(s.unknown, Some((from, to))));
    assert!(s.ledgers["like"].count(s.unknown, Some((from, to))) > 0);
    assert_eq!(unknown["errors"], json!([]), "a video outside the catalog is no error");
    let not_found: BTreeSet<String> =
        report["notFound"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    let expected =
        BTreeSet::from([format!("/api/v1/videos/id/{}", s.unknown), format!("/api/v1/videos/{}/ratings", s.unknown)]);
    assert_eq!(not_found, expected, "404s other than the unknown video's title and rating");
    check_read(&s, &reads["pasted"], &e("pasted id", "like", "hour", 24));
    assert!(report["hash"].as_str().unwrap().contains(&format!("video={}", s.a)), "{}", report["hash"]);

    // Auto-refresh every 5 s: two whole rounds, one request per panel, at least 5 s apart.
    let refresh = &report["refresh"];
    let visible = refresh_rounds(refresh["visible"].as_array().unwrap(), "like");
    assert_eq!(visible.len(), 2, "the browser hid the tab after the second refresh: {visible:?}");
    assert!(visible.windows(2).all(|w| w[1] - w[0] >= 4_900), "refreshes closer than the interval: {visible:?}");
    // Hidden for 7 s: nothing at all, and the page says it is paused.
    assert_eq!(refresh["hidden"], json!([]), "requests while the tab was hidden");
    assert_eq!(report["refreshStatusHidden"][0], "paused");
    // Shown again after more than an interval: one round at once.
    let shown = refresh_rounds(refresh["shown"].as_array().unwrap(), "like");
    assert_eq!(shown.len(), 1, "refreshes right after the tab showed again: {shown:?}");
    assert!(shown[0] - refresh["shownAt"].as_i64().unwrap() < 1_000, "the refresh on showing the tab was late");
    check_read(&s, &reads["final"], &e("after auto-refresh", "like", "hour", 24));

    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "the screenshot is not a real page");
    eprintln!("[dashboard] screenshot: {}", screenshot.display());
    env.terminate_aggregator(0);
}
