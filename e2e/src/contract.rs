//! The OpenAPI document as a contract for tests: every answer a test receives is
//! checked against the schema documented for its operation and status (JSON Schema
//! 2020-12, as OpenAPI 3.1 uses). An answer the document does not describe (an
//! undocumented status, a missing field, a wrong type) fails the test.

use serde_json::{Value, json};

pub struct Contract {
    doc: Value,
}

impl Contract {
    pub fn new(doc: Value) -> Self {
        assert_eq!(doc["openapi"], "3.1.0");
        Self { doc }
    }

    /// Sends `method path` (relative to `base`) with an optional bearer token and
    /// JSON body, and checks the answer against the document.
    pub async fn call(
        &self,
        http: &reqwest::Client,
        base: &str,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = http.request(method.clone(), format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        self.check(method.as_str(), path, status, &body);
        (status, body)
    }

    /// The documented path template a concrete path (no query string) matches:
    /// the one with the most literal segments wins (`/videos/latest` over
    /// `/videos/{videoId}`).
    pub fn template(&self, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, String)> = None;
        for template in self.doc["paths"].as_object()?.keys() {
            let t: Vec<&str> = template.split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let fits = t.iter().zip(&segs).all(|(t, s)| {
                if t.starts_with('{') {
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if fits && best.as_ref().is_none_or(|(n, _)| literal > *n) {
                best = Some((literal, template.clone()));
            }
        }
        best.map(|(_, t)| t)
    }

    /// Checks one answer; panics with what is wrong.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let path = path.split('?').next().unwrap_or(path);
        let template = self.template(path).unwrap_or_else(|| panic!("{method} {path}: no documented path"));
        let op = &self.doc["paths"][&template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template}: not documented");
        let answer = &op["responses"][status.to_string()];
        assert!(answer.is_object(), "{method} {template}: status {status} is not documented (body: {body})");
        let Some(content) = answer["content"].as_object() else {
            assert!(
                body.is_null() || body == &json!(""),
                "{method} {template} {status}: documented without a body, got {body}"
            );
            return;
        };
        let schema = &content.values().next().expect("one media type")["schema"];
        // Refs point into the document's components: validate with them at hand.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&root).expect("the documented schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the answer breaks the document:\n{}\n{body}",
            errors.join("\n")
        );
    }
}
