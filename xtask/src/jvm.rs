//! JVM flags from `infra/*/jvm.options`, and config files from `infra/*/*.tmpl`.
//!
//! The options files follow Cassandra's `conf/jvm*.options`: one flag per line, `#`
//! starts a comment line, and a line may hold a flag with its value (`--add-opens
//! java.base/java.io=ALL-UNNAMED`), split on whitespace. They hold what a person tunes
//! (heap, GC, module flags). Flags that name a file or port the xtask itself renders or
//! chooses (config paths, the JMX port, the classpath) are added in code, so the
//! options file cannot drift from the layout under `VCOUNT_HOME`.

use std::fmt;

/// The flags of an options file, in order.
pub fn parse_options(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(String::from)
        .collect()
}

/// Extra flags from an environment variable: words, like the shell split them.
pub fn words(flags: Option<&str>) -> Vec<String> {
    flags.map(|f| f.split_whitespace().map(String::from).collect()).unwrap_or_default()
}

fn is_heap_flag(flag: &str) -> bool {
    flag.starts_with("-Xms") || flag.starts_with("-Xmx")
}

/// The file's flags with its heap lines replaced by `heap` when that is set and not
/// blank (an empty variable means "unset", as `${VAR:-default}` did). The override
/// goes first; the file's other flags keep their order.
pub fn with_heap(flags: Vec<String>, heap: Option<&str>) -> Vec<String> {
    let heap = words(heap);
    if heap.is_empty() {
        return flags;
    }
    heap.into_iter().chain(flags.into_iter().filter(|f| !is_heap_flag(f))).collect()
}

#[derive(Debug, PartialEq, Eq)]
pub struct MissingValue(pub String);

impl fmt::Display for MissingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no value for @{}@", self.0)
    }
}

impl std::error::Error for MissingValue {}

/// Fills `@NAME@` placeholders (NAME is `[A-Z_]+`). A placeholder without a value is
/// an error: a half-filled config must never be written. Any other `@` is kept.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, MissingValue> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_len = after.bytes().take_while(|b| b.is_ascii_uppercase() || *b == b'_').count();
        if name_len > 0 && after.as_bytes().get(name_len) == Some(&b'@') {
            let name = &after[..name_len];
            let value = vars.iter().find(|(k, _)| *k == name).ok_or_else(|| MissingValue(name.into()))?.1;
            out.push_str(value);
            rest = &after[name_len + 1..];
        } else {
            out.push('@');
            rest = after;
        }
    }
    out.push_str(rest);
    // One trailing newline, whatever the template ends with.
    let trimmed = out.trim_end_matches('\n').len();
    out.truncate(trimmed);
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_one_flag_a_line_with_comments_and_split_values() {
        let text = "# heap\n-Xms1g\n  -Xmx2g  \n\n### GC\n-XX:+UseG1GC\n\
                    --add-opens java.base/java.io=ALL-UNNAMED\n   # indented comment\n";
        assert_eq!(
            parse_options(text),
            ["-Xms1g", "-Xmx2g", "-XX:+UseG1GC", "--add-opens", "java.base/java.io=ALL-UNNAMED"]
        );
    }

    #[test]
    fn the_repository_options_files_parse_and_carry_a_heap() {
        for (name, text) in [
            ("kafka", include_str!("../../infra/kafka/jvm.options")),
            ("cassandra", include_str!("../../infra/cassandra/jvm.options")),
        ] {
            let flags = parse_options(text);
            assert!(flags.iter().any(|f| f.starts_with("-Xmx")), "{name}: no -Xmx");
            assert!(flags.iter().all(|f| !f.contains('@')), "{name}: placeholders are not filled in options files");
            // Every word is a flag or the value of the flag before it.
            for (i, f) in flags.iter().enumerate() {
                let value_of_previous = i > 0 && flags[i - 1].starts_with("--add-");
                assert!(f.starts_with('-') || value_of_previous, "{name}: stray word {f:?}");
            }
        }
        let cassandra = parse_options(include_str!("../../infra/cassandra/jvm.options"));
        assert!(cassandra.contains(&"-XX:+ExitOnOutOfMemoryError".to_string()));
        assert_eq!(cassandra.iter().filter(|f| *f == "--add-opens").count(), 14, "jvm17-server.options' opens");
    }

    #[test]
    fn a_heap_override_replaces_only_the_heap_lines() {
        let flags = parse_options("-Xms1g\n-Xmx2g\n-XX:+UseG1GC\n-XX:MaxGCPauseMillis=300\n");
        assert_eq!(with_heap(flags.clone(), None), flags);
        assert_eq!(with_heap(flags.clone(), Some("")), flags, "empty means unset");
        assert_eq!(with_heap(flags.clone(), Some("  ")), flags);
        assert_eq!(
            with_heap(flags, Some("-Xms256m -Xmx512m")),
            ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=300"]
        );
    }

    #[test]
    fn env_flags_split_on_whitespace() {
        assert_eq!(words(Some(" -Da=1  -agentlib:jdwp=x ")), ["-Da=1", "-agentlib:jdwp=x"]);
        assert!(words(None).is_empty());
    }

    #[test]
    fn render_fills_every_placeholder() {
        let got = render("port=@PORT@\ndir=@DATA_DIR@/x @PORT@\n\n", &[("PORT", "29092"), ("DATA_DIR", "/h/k")]);
        assert_eq!(got.unwrap(), "port=29092\ndir=/h/k/x 29092\n");
    }

    #[test]
    fn render_refuses_a_placeholder_without_a_value() {
        assert_eq!(render("a=@PORT@ b=@MISSING@", &[("PORT", "1")]), Err(MissingValue("MISSING".into())));
    }

    #[test]
    fn render_keeps_other_at_signs() {
        let t = "mail: a@b.org\n%d{HH:mm} @lower@ @ @@ x@1@";
        assert_eq!(render(t, &[]).unwrap(), format!("{t}\n"));
    }

    #[test]
    fn the_repository_templates_render_with_the_values_the_stack_passes() {
        let kafka = render(
            include_str!("../../infra/kafka/server.properties.tmpl"),
            &[("KAFKA_PORT", "29092"), ("KAFKA_CONTROLLER_PORT", "29093"), ("KAFKA_DATA_DIR", "/h/kafka/data")],
        )
        .unwrap();
        assert!(kafka.contains("127.0.0.1:29092") && kafka.contains("127.0.0.1:29093"), "{kafka}");
        assert!(kafka.contains("/h/kafka/data"));
        let cassandra = render(
            include_str!("../../infra/cassandra/cassandra.yaml.tmpl"),
            &[
                ("CASSANDRA_PORT", "29042"),
                ("CASSANDRA_STORAGE_PORT", "27000"),
                ("CASSANDRA_SSL_STORAGE_PORT", "27001"),
                ("CASSANDRA_DATA_DIR", "/h/cassandra/data"),
            ],
        )
        .unwrap();
        assert!(cassandra.contains("native_transport_port: 29042"), "{cassandra}");
        assert!(cassandra.contains("storage_port: 27000"));
        assert!(render(include_str!("../../infra/kafka/log4j2.properties.tmpl"), &[]).is_ok());
        assert!(render(include_str!("../../infra/cassandra/logback.xml.tmpl"), &[]).is_ok());
        // Dropping a value is caught, so the checks above can fail.
        assert!(render(include_str!("../../infra/kafka/server.properties.tmpl"), &[("KAFKA_PORT", "1")]).is_err());
    }
}
