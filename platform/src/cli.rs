//! The command line every service shares: `--config FILE`, `--print-config`, and a
//! `--help` that lists every key with the environment variable that sets it.

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses the command line and loads the config. Returns `None` when the
/// invocation was fully handled (`--print-config`).
pub fn load_config<T>(name: &'static str, prefix: &'static str, about: &'static str) -> anyhow::Result<Option<T>>
where
    T: Serialize + DeserializeOwned + Default,
{
    let keys = crate::config::describe(prefix, &T::default());
    let matches = Command::new(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML file overriding the defaults; environment variables override the file"),
        )
        .arg(
            Arg::new("print-config")
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the effective configuration and exit"),
        )
        .after_long_help(format!(
            "Configuration keys (default value, then the environment variable that sets it):\n\n{keys}"
        ))
        .get_matches();
    let cfg: T = crate::config::load(prefix, matches.get_one::<PathBuf>("config").map(PathBuf::as_path))?;
    if matches.get_flag("print-config") {
        print!("{}", crate::config::describe(prefix, &cfg));
        return Ok(None);
    }
    Ok(Some(cfg))
}

/// Everything a service's `main` does before building itself: parse the command
/// line, load the config, start logging, and turn SIGINT/SIGTERM into the
/// returned cancellation token. `None`: the invocation is already handled.
pub fn start<T>(
    name: &'static str,
    prefix: &'static str,
    about: &'static str,
    log: impl Fn(&T) -> &crate::telemetry::LogConfig,
) -> anyhow::Result<Option<(T, tokio_util::sync::CancellationToken)>>
where
    T: Serialize + DeserializeOwned + Default,
{
    let Some(config) = load_config::<T>(name, prefix, about)? else { return Ok(None) };
    crate::telemetry::init_logging(log(&config));
    let shutdown = tokio_util::sync::CancellationToken::new();
    crate::http::cancel_on_signal(shutdown.clone());
    Ok(Some((config, shutdown)))
}
