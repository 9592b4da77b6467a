//! Layered configuration: defaults in code, then an optional TOML file, then
//! `PREFIX__SECTION__KEY` environment variables. Unknown keys are errors, so a typo
//! in an environment variable fails start-up instead of being silently ignored.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Loads `T` for a service whose environment variables start with `prefix`
/// (for example `GATEWAY` reads `GATEWAY__KAFKA__BROKERS` as `kafka.brokers`).
pub fn load<T>(prefix: &str, file: Option<&Path>) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed(&format!("{prefix}__")).split("__"));
    Ok(figment.extract()?)
}

/// Renders a config as TOML-like `key = value` lines with the environment variable
/// that sets each key, for `--print-config`.
pub fn describe<T: Serialize>(prefix: &str, config: &T) -> String {
    let value = serde_json::to_value(config).expect("config serializes");
    let mut out = String::new();
    walk(prefix, "", &value, &mut out);
    out
}

fn walk(prefix: &str, path: &str, value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(prefix, &p, v, out);
            }
        }
        v => {
            let env = format!("{prefix}__{}", path.replace('.', "__").to_uppercase());
            out.push_str(&format!("{path} = {v}    # {env}\n"));
        }
    }
}
