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

#[cfg(test)]
// figment::Jail's closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Cfg {
        http: Http,
        name: String,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Http {
        listen: String,
        max: u32,
    }

    impl Default for Http {
        fn default() -> Self {
            Self { listen: "127.0.0.1:1".into(), max: 7 }
        }
    }

    #[test]
    fn file_then_environment_override_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "name = \"from-file\"\n[http]\nmax = 9\n")?;
            jail.set_env("SVC__HTTP__LISTEN", "0.0.0.0:80");
            jail.set_env("SVC__HTTP__MAX", "11");
            let cfg: Cfg = load("SVC", Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.name, "from-file");
            assert_eq!(cfg.http, Http { listen: "0.0.0.0:80".into(), max: 11 });
            assert!(describe("SVC", &cfg).contains("http.max = 11    # SVC__HTTP__MAX"));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SVC__HTTP__LISTN", "typo");
            let err = load::<Cfg>("SVC", None).unwrap_err().to_string();
            assert!(err.contains("listn"), "{err}");
            Ok(())
        });
        assert!(load::<Cfg>("SVC_NONE", Some(Path::new("/nonexistent.toml"))).is_err());
    }
}
