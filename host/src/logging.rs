//! Logging setup for Sealplane's long-running processes: `tracing` events
//! go to stderr, one line each, as text for people (the default) or as
//! JSON for log pipelines, filtered by `SEALPLANE_LOG` (else `RUST_LOG`,
//! else `info`).
//!
//! Events carry their facts as fields (`request_id`, `store`, `uri`,
//! `error`...), so a JSON consumer need not parse sentences; the message
//! still reads as a sentence for the person tailing the text log.

use std::fmt;
use std::io::IsTerminal as _;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The environment variable that picks the format (`text` or `json`).
pub const FORMAT_ENV: &str = "SEALPLANE_LOG_FORMAT";

/// The environment variable that filters events (`RUST_LOG` syntax); `RUST_LOG` is read when it is unset.
pub const FILTER_ENV: &str = "SEALPLANE_LOG";

/// The filter when neither variable is set.
const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object a line, fields at the top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(LoggingError::UnknownFormat(s.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The format is neither `text` nor `json`.
    #[error("unknown log format {0:?}: use `text` or `json`")]
    UnknownFormat(String),
    /// A filter variable does not parse.
    #[error(
        "{var}={value:?} is not a log filter ({reason}); use a level such as `info` or `debug`, or e.g. `info,sealplane_reactors=debug`"
    )]
    BadFilter {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// Another logger was installed first.
    #[error("a logger is already installed in this process")]
    AlreadyInstalled,
}

/// Installs the process-wide logger: `format` lines on stderr, filtered by
/// [`FILTER_ENV`] or `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) -> Result<(), LoggingError> {
    let filter = filter(|var| std::env::var(var).ok())?;
    let ansi = std::io::stderr().is_terminal();
    subscriber(format, filter, std::io::stderr, ansi)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)
}

/// The filter the variables ask for; `lookup` reads one variable.
fn filter(lookup: impl Fn(&str) -> Option<String>) -> Result<EnvFilter, LoggingError> {
    for var in [FILTER_ENV, "RUST_LOG"] {
        if let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) {
            return EnvFilter::try_new(&value).map_err(|e| LoggingError::BadFilter {
                var,
                value,
                reason: e.to_string(),
            });
        }
    }
    Ok(EnvFilter::new(DEFAULT_FILTER))
}

/// A subscriber writing `format` lines to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // The target (module path) is noise for a person reading the
        // reactor's log; filters still use it.
        LogFormat::Text => Box::new(builder.with_ansi(ansi).with_target(false).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).with_ansi(false).finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps what was logged, for the assertions.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    fn log_one(format: LogFormat, filter: &str) -> String {
        let out = Captured::default();
        let subscriber = subscriber(format, EnvFilter::new(filter), out.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(store = "local", position = 7u64, "caught up at position 7");
            tracing::debug!("hidden at info");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let e = "yaml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(e.contains("\"yaml\"") && e.contains("`json`"), "{e}");
        assert_eq!(LogFormat::default(), LogFormat::Text);
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn text_lines_read_as_sentences_with_their_fields() {
        let text = log_one(LogFormat::Text, "info");
        let line = text.lines().next().expect("one line");
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("caught up at position 7"), "{line}");
        assert!(
            line.contains("store=\"local\"") && line.contains("position=7"),
            "{line}"
        );
        assert!(!text.contains("hidden"), "{text}");
    }

    #[test]
    fn json_lines_are_objects_with_the_fields_at_the_top() {
        let text = log_one(LogFormat::Json, "info");
        let line = text.lines().next().expect("one line");
        for part in [
            "\"level\":\"INFO\"",
            "\"message\":\"caught up at position 7\"",
            "\"store\":\"local\"",
            "\"position\":7",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }

    #[test]
    fn the_filter_comes_from_sealplane_log_then_rust_log_then_info() {
        let from = |vars: &'static [(&'static str, &'static str)]| {
            filter(move |var| {
                vars.iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert_eq!(from(&[]).unwrap().to_string(), "info");
        assert_eq!(
            from(&[("RUST_LOG", "warn"), (FILTER_ENV, "debug")])
                .unwrap()
                .to_string(),
            "debug"
        );
        assert_eq!(from(&[("RUST_LOG", "warn")]).unwrap().to_string(), "warn");
        assert_eq!(from(&[(FILTER_ENV, " ")]).unwrap().to_string(), "info");
        let e = from(&[(FILTER_ENV, "info,[")]).unwrap_err().to_string();
        assert!(e.starts_with("SEALPLANE_LOG=\"info,[\""), "{e}");
    }
}
