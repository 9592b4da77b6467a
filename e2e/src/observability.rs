//! Reading what the services export and what the dashboard asks for, shared by
//! `metrics_scrape.rs` (live) and `deploy.rs` (no servers):
//! - a parser for the Prometheus text exposition format (the subset
//!   `metrics-exporter-prometheus` writes: `# HELP`, `# TYPE`, samples with labels),
//!   strict enough that malformed output fails the test;
//! - the metric names a PromQL expression reads;
//! - the metrics every service declares (each crate's `metrics::ALL`), the one
//!   list the dashboard and the scrapes are checked against.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use platform::metrics::Metric;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's own name: `x_bucket`, `x_sum` and `x_count` for a histogram `x`.
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// One scrape, by metric family name.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| at("TYPE without a kind".into()))?;
                let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                if !known.contains(&kind) {
                    return Err(at(format!("unknown type {kind}")));
                }
                families.entry(name.to_owned()).or_default().kind = kind.to_owned();
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                families.entry(name.to_owned()).or_default().help = Some(help.to_owned());
            } else if line.starts_with('#') {
                continue;
            } else {
                let sample = parse_sample(line).map_err(at)?;
                let family = family_of(&families, &sample.name);
                families.entry(family).or_default().samples.push(sample);
            }
        }
        for (name, f) in &mut families {
            if f.kind.is_empty() {
                return Err(format!("{name} has samples but no # TYPE line"));
            }
        }
        Ok(Self { families })
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    pub fn kind(&self, name: &str) -> Option<&str> {
        self.family(name).map(|f| f.kind.as_str())
    }

    /// Samples named `sample` (a family name, or `x_count` etc.) whose labels
    /// include all of `with`.
    pub fn samples<'a>(&'a self, sample: &'a str, with: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        let family = family_of(&self.families, sample);
        self.families.get(&family).into_iter().flat_map(|f| &f.samples).filter(move |s| {
            s.name == sample && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum over the matching samples, `None` if there is none.
    pub fn value(&self, sample: &str, with: &[(&str, &str)]) -> Option<f64> {
        let mut it = self.samples(sample, with).peekable();
        it.peek()?;
        Some(it.map(|s| s.value).sum())
    }

    /// Checks every histogram: per label set, buckets with increasing `le` hold
    /// non-decreasing counts, end at `+Inf`, and `+Inf` equals `_count`; `_sum` exists.
    /// Also that no histogram is exported as a summary (the exporter's fallback
    /// when no buckets are configured).
    pub fn check_histograms(&self) -> Result<usize, String> {
        let mut checked = 0;
        for (name, f) in &self.families {
            if f.kind == "summary" {
                return Err(format!("{name} is a summary: configure buckets for it in platform::telemetry"));
            }
            if f.kind != "histogram" {
                continue;
            }
            let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for s in f.samples.iter().filter(|s| s.name == format!("{name}_bucket")) {
                let mut labels = s.labels.clone();
                let le = labels.remove("le").ok_or_else(|| format!("{name}_bucket without le"))?;
                let le: f64 = parse_value(&le).map_err(|e| format!("{name}: le {e}"))?;
                series.entry(labels).or_default().push((le, s.value));
            }
            if series.is_empty() {
                return Err(format!("{name}: a histogram without buckets"));
            }
            for (labels, mut buckets) in series {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                if buckets.len() < 5 {
                    return Err(format!("{name}{labels:?}: only {} buckets", buckets.len()));
                }
                if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                    return Err(format!("{name}{labels:?}: bucket counts decrease: {buckets:?}"));
                }
                let (last_le, inf) = *buckets.last().expect("not empty");
                if last_le != f64::INFINITY {
                    return Err(format!("{name}{labels:?}: no +Inf bucket"));
                }
                let with: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let exact = |s: &Sample| s.labels == labels;
                let count = self.samples(&format!("{name}_count"), &with).find(|s| exact(s)).map(|s| s.value);
                let sum = self.samples(&format!("{name}_sum"), &with).find(|s| exact(s)).map(|s| s.value);
                if count != Some(inf) {
                    return Err(format!("{name}{labels:?}: _count {count:?} differs from the +Inf bucket {inf}"));
                }
                if sum.is_none() {
                    return Err(format!("{name}{labels:?}: no _sum"));
                }
                checked += 1;
            }
        }
        Ok(checked)
    }
}

/// `x_bucket` belongs to the histogram `x` when `x` is declared one.
fn family_of(families: &BTreeMap<String, Family>, sample: &str) -> String {
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && families.get(base).is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
        {
            return base.to_owned();
        }
    }
    sample.to_owned()
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("{s:?} is not a number")),
    }
}

fn is_name_char(c: char, first: bool) -> bool {
    c == '_' || c == ':' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line.find(|c: char| !is_name_char(c, false)).unwrap_or(line.len());
    let name = &line[..end];
    if name.is_empty() || !name.starts_with(|c| is_name_char(c, true)) {
        return Err("no metric name".into());
    }
    let mut rest = &line[end..];
    let mut labels = Labels::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if r[start..].starts_with('}') {
                rest = &r[start + 1..];
                break;
            }
            let eq = r[start..].find('=').ok_or("label without =")? + start;
            let key = r[start..eq].trim_start_matches(',').trim();
            if key.is_empty() || !key.chars().enumerate().all(|(i, c)| is_name_char(c, i == 0) && c != ':') {
                return Err(format!("bad label name {key:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")? {
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '"') => break,
                    (_, c) => value.push(c),
                }
            }
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            if chars.peek().is_some_and(|(_, c)| *c == ',') {
                chars.next();
            }
        }
    }
    let mut parts = rest.split_whitespace();
    let value = parse_value(parts.next().ok_or("no value")?)?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample { name: name.to_owned(), labels, value })
}

/// PromQL words that are not metric names: aggregations, modifiers, operators.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// The metric names a PromQL expression selects (as written, e.g. `x_bucket`).
/// Skips strings, label matchers `{…}`, ranges `[…]`, grouping label lists
/// (`by (…)`), function names and numbers.
pub fn promql_metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_group_after: Option<usize> = None; // index where a `by`-like word ended
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            let mut in_str: Option<char> = None;
            i += 1;
            while i < chars.len() {
                match (in_str, chars[i]) {
                    (Some(q), ch) if ch == q => in_str = None,
                    (Some(_), '\\') => i += 1,
                    (None, '"' | '\'') => in_str = Some(chars[i]),
                    (None, ch) if ch == close => break,
                    _ => {}
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(format!("unclosed {c} in {expr:?}"));
            }
            i += 1;
        } else if c == '(' && skip_group_after.is_some() {
            let close = chars[i..].iter().position(|&ch| ch == ')').ok_or_else(|| format!("unclosed ( in {expr:?}"))?;
            i += close + 1;
            skip_group_after = None;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_name_char(c, true) || c == '$' {
            let start = i;
            while i < chars.len() && (is_name_char(chars[i], false) || chars[i] == '$') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let is_call = chars.get(j) == Some(&'(');
            let lower = word.to_ascii_lowercase();
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&lower.as_str()) {
                skip_group_after = Some(i);
            } else if word.starts_with('$') || is_call || PROMQL_WORDS.contains(&lower.as_str()) {
                // a Grafana variable, a function, or a keyword
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    Ok(names)
}

/// The values of `job="…"` matchers in an expression.
pub fn promql_jobs(expr: &str) -> BTreeSet<String> {
    let mut jobs = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("job=\"") {
        rest = &rest[at + 5..];
        if let Some(end) = rest.find('"') {
            jobs.insert(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    jobs
}

/// Every PromQL expression of a Grafana dashboard, with its panel title.
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                let title = map.get("title").and_then(|t| t.as_str()).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    out.push((title.to_owned(), expr.to_owned()));
                }
                for child in map.values() {
                    walk(child, title, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "", &mut out);
    out
}

/// The family a name in a query reads: `x_bucket` → `x` if `x` is a histogram.
/// `kind_of` says what a family is (from a scrape or the source).
pub fn queried_family(name: &str, kind_of: impl Fn(&str) -> Option<String>) -> Result<(String, String), String> {
    if let Some(kind) = kind_of(name) {
        return Ok((name.to_owned(), kind));
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(kind) = kind_of(base)
        {
            if kind != "histogram" {
                return Err(format!("{name}: {base} is a {kind}, not a histogram"));
            }
            return Ok((base.to_owned(), kind));
        }
    }
    Err(format!("{name} is not exported by any service"))
}

/// A metric as a crate declares it, and which service declares it.
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    /// `platform` (every service's HTTP middleware), `gateway`, `aggregator` or `query`.
    pub service: &'static str,
    pub metric: Metric,
}

/// Every metric the services declare, by name: `platform::metrics::ALL` and each
/// service's `metrics::ALL`. Panics if two declarations share a name.
pub fn declared_metrics() -> BTreeMap<&'static str, Declared> {
    let lists: [(&'static str, &[Metric]); 4] = [
        ("platform", platform::metrics::ALL),
        ("gateway", ingest_gateway::metrics::ALL),
        ("aggregator", aggregator::metrics::ALL),
        ("query", query_service::metrics::ALL),
    ];
    let mut out = BTreeMap::new();
    for (service, metrics) in lists {
        for &metric in metrics {
            let earlier = out.insert(metric.name, Declared { service, metric });
            assert!(earlier.is_none(), "{} is declared twice ({service} and {earlier:?})", metric.name);
        }
    }
    out
}

/// Checks one scrape of `services` (plus `platform`, whose middleware every
/// service runs) against the declarations: every family it exports is declared by
/// one of them, with that type, that help text and only the declared label keys.
/// Returns the families checked.
pub fn check_scrape_against_declarations(scrape: &Exposition, services: &[&str]) -> Result<usize, String> {
    let declared = declared_metrics();
    let mut wrong = Vec::new();
    for (name, family) in &scrape.families {
        let Some(d) = declared.get(name.as_str()) else {
            wrong.push(format!("{name} is exported but declared by no crate"));
            continue;
        };
        if d.service != "platform" && !services.contains(&d.service) {
            wrong.push(format!("{name} is declared by {}, not by {services:?}", d.service));
        }
        if family.kind != d.metric.kind.as_str() {
            wrong.push(format!("{name} is exported as a {}, declared a {}", family.kind, d.metric.kind.as_str()));
        }
        if family.help.as_deref() != Some(d.metric.help) {
            wrong.push(format!("{name}: HELP {:?} differs from the declaration {:?}", family.help, d.metric.help));
        }
        for sample in &family.samples {
            for key in sample.labels.keys() {
                let histogram_bucket = key == "le" && sample.name.ends_with("_bucket");
                if !histogram_bucket && !d.metric.labels.contains(&key.as_str()) {
                    wrong.push(format!("{name}: label {key} is not among the declared {:?}", d.metric.labels));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    if wrong.is_empty() { Ok(scrape.families.len()) } else { Err(wrong.join("\n")) }
}

/// The workspace root (this crate is `e2e/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace root")
}

pub fn load_dashboard(root: &Path) -> serde_json::Value {
    let path = root.join("deploy/grafana/dashboards/vcount.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_exposition_format() {
        let text = "# HELP a_total Things\n# TYPE a_total counter\na_total{route=\"/x/{id}\",q=\"a\\\"b\\\\c\\n\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.value("a_total", &[("route", "/x/{id}")]), Some(3.0));
        assert_eq!(e.family("a_total").unwrap().samples[0].labels["q"], "a\"b\\c\n");
        assert_eq!(e.value("h_count", &[]), Some(2.0));
        assert_eq!(e.family("h").unwrap().samples.len(), 4);
        assert!(e.check_histograms().unwrap_err().contains("only 2 buckets"));
        assert!(Exposition::parse("# TYPE a counter\na{x=1} 2\n").is_err());
        assert!(Exposition::parse("a 1\n").is_err(), "samples need a # TYPE");
        assert!(Exposition::parse("# TYPE a counter\na one\n").is_err());
    }

    #[test]
    fn a_scrape_is_checked_against_the_declarations() {
        let help = aggregator::metrics::DEAD_LETTERS.help;
        let good = format!(
            "# HELP aggregator_dead_letters_total {help}\n# TYPE aggregator_dead_letters_total counter\n\
             aggregator_dead_letters_total 1\n"
        );
        let e = Exposition::parse(&good).unwrap();
        assert_eq!(check_scrape_against_declarations(&e, &["aggregator"]), Ok(1));
        let wrong = |text: &str, services: &[&str]| {
            check_scrape_against_declarations(&Exposition::parse(text).unwrap(), services).unwrap_err()
        };
        assert!(wrong(&good, &["gateway"]).contains("declared by aggregator"));
        assert!(wrong("# TYPE made_up_total counter\nmade_up_total 1\n", &["aggregator"]).contains("declared by no"));
        let as_gauge = good.replace("counter", "gauge");
        assert!(wrong(&as_gauge, &["aggregator"]).contains("declared a counter"));
        let labelled = good.replace("_total 1", "_total{video=\"x\"} 1");
        assert!(wrong(&labelled, &["aggregator"]).contains("label video"));
        let other_help = good.replace(help, "something else");
        assert!(wrong(&other_help, &["aggregator"]).contains("HELP"));
    }

    #[test]
    fn finds_the_metric_names_in_promql() {
        let names = |e: &str| promql_metric_names(e).unwrap().into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket{job="gateway", status=~"[45].."}[$__rate_interval])))"#
            ),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names("sum(rate(a_total[5m])) / sum without (x) (b_total) and on (y) made_up_total offset 5m"),
            ["a_total", "b_total", "made_up_total"]
        );
        assert_eq!(
            promql_jobs(r#"x{job="gateway"} / y{job="query"}"#).into_iter().collect::<Vec<_>>(),
            ["gateway", "query"]
        );
        let kind = |n: &str| (n == "h").then(|| "histogram".to_owned()).or((n == "c").then(|| "counter".to_owned()));
        assert_eq!(queried_family("h_bucket", kind).unwrap(), ("h".into(), "histogram".into()));
        assert!(queried_family("c_bucket", kind).unwrap_err().contains("not a histogram"));
        assert!(queried_family("made_up_total", kind).unwrap_err().contains("not exported"));
    }
}
