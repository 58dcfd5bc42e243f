//! `sealctl audit log`: the event log as the server filters and renders
//! it (SPEC §7), printed entry by entry as it arrives, so a log of
//! millions of events starts printing at once and sealctl's memory stays
//! constant: the table has fixed columns instead of sizing them to the
//! whole result, `json` is one object per line, `csv` has a header.

use std::io::Write;

use chrono::DateTime;
use futures_util::{FutureExt as _, StreamExt as _};
use sealplane_proto::v1;
use serde::Serialize;

use crate::client::{ClientError, Connection};
use crate::output::OutputFormat;

/// Why `audit log` failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A call failed, or the stream ended with an error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `-o yaml` asks for one document, which cannot stream; events have
    /// no name for `-o name`.
    #[error("`audit log` streams; use -o table, -o json (one object per line) or -o csv")]
    Format,
    /// Writing to stdout failed.
    #[error("cannot write the audit log: {0}")]
    Stdout(std::io::Error),
}

/// What `--since` and `--until` take: a log position or an RFC 3339 time.
pub fn log_point(text: &str) -> Result<v1::LogPoint, String> {
    use v1::log_point::Point;
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(|p| v1::LogPoint {
                point: Some(Point::Position(p)),
            })
            .map_err(|_| format!("{text:?} is too large for a log position"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|_| v1::LogPoint {
            point: Some(Point::Time(text.to_owned())),
        })
        .map_err(|_| {
            format!(
                "{text:?} is neither a log position (a number) nor an RFC 3339 time such as 2026-12-01T10:00:00Z"
            )
        })
}

/// One line of `-o json`, and the columns of `-o csv`: the documented,
/// stable field names (README).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditLine {
    /// The event's log position.
    pub position: u64,
    /// When it was decided (RFC 3339, UTC).
    pub time: String,
    /// The principal whose command caused it.
    pub actor: String,
    /// Its type, e.g. `SecretVersionAdded`.
    pub event: String,
    /// What it is about, for people.
    pub target: String,
    /// The secret it concerns, or `null`.
    pub secret: Option<String>,
    /// The store it concerns, or `null`.
    pub store: Option<String>,
    /// The user or group it concerns, or `null`.
    pub principal: Option<String>,
    /// The upload request it belongs to, or `null`.
    pub request_id: Option<String>,
    /// One sentence.
    pub details: String,
}

impl From<v1::AuditEntry> for AuditLine {
    fn from(e: v1::AuditEntry) -> Self {
        let some = |s: String| Some(s).filter(|s| !s.is_empty());
        AuditLine {
            position: e.position,
            time: e.time,
            actor: e.actor,
            event: e.event_type,
            target: e.target,
            secret: some(e.secret),
            store: some(e.store),
            principal: some(e.principal),
            request_id: some(e.request_id),
            details: e.details,
        }
    }
}

/// The csv columns, in order.
pub const CSV_HEADER: &str =
    "position,time,actor,event,target,secret,store,principal,request_id,details";

/// One csv field, quoted (RFC 4180) when it holds a comma, a quote or a
/// line break, or starts or ends with a space.
pub fn csv_field(text: &str) -> String {
    let needs =
        text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if needs {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One csv record, without its line end.
pub fn csv_record(line: &AuditLine) -> String {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        line.position.to_string(),
        line.time.clone(),
        line.actor.clone(),
        line.event.clone(),
        line.target.clone(),
        opt(&line.secret),
        opt(&line.store),
        opt(&line.principal),
        opt(&line.request_id),
        line.details.clone(),
    ]
    .iter()
    .map(|f| csv_field(f))
    .collect::<Vec<_>>()
    .join(",")
}

/// Table column widths (position, time, actor, event, target); details
/// take the rest of the line. A longer value pushes its line's later
/// columns right rather than being cut.
const WIDTHS: [usize; 5] = [8, 20, 14, 24, 28];

fn table_row(cells: [&str; 6]) -> String {
    let mut row = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        row.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count()) + 2;
        row.extend(std::iter::repeat_n(' ', pad));
    }
    row.push_str(cells[5]);
    row
}

/// The table header.
pub fn table_header() -> String {
    table_row(["POSITION", "TIME", "ACTOR", "EVENT", "TARGET", "DETAILS"])
}

/// One table line.
pub fn table_line(line: &AuditLine) -> String {
    let position = line.position.to_string();
    table_row([
        &position,
        &line.time,
        &line.actor,
        &line.event,
        &line.target,
        &line.details,
    ])
}

/// Prints entries to `out` in `format`, one line each.
pub struct LineWriter<W: Write> {
    out: W,
    format: OutputFormat,
    header: bool,
}

impl<W: Write> LineWriter<W> {
    /// A writer refusing formats that cannot stream.
    pub fn new(out: W, format: OutputFormat) -> Result<Self, AuditError> {
        if matches!(format, OutputFormat::Yaml | OutputFormat::Name) {
            return Err(AuditError::Format);
        }
        Ok(LineWriter {
            out,
            format,
            header: false,
        })
    }

    /// Writes the header (table, csv) if it is not written yet.
    pub fn header(&mut self) -> std::io::Result<()> {
        if std::mem::replace(&mut self.header, true) {
            return Ok(());
        }
        match self.format {
            OutputFormat::Table => writeln!(self.out, "{}", table_header().trim_end()),
            OutputFormat::Csv => writeln!(self.out, "{CSV_HEADER}"),
            OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Name => Ok(()),
        }
    }

    /// Writes one entry.
    pub fn entry(&mut self, line: &AuditLine) -> std::io::Result<()> {
        self.header()?;
        match self.format {
            OutputFormat::Table => writeln!(self.out, "{}", table_line(line).trim_end()),
            OutputFormat::Csv => write!(self.out, "{}\r\n", csv_record(line)),
            OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Name => {
                serde_json::to_writer(&mut self.out, line)?;
                writeln!(self.out)
            }
        }
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Streams the audit log `request` selects to stdout. A closed stdout
/// (`| head`) ends it quietly.
pub async fn log(
    conn: &Connection,
    request: v1::AuditLogRequest,
    format: OutputFormat,
) -> Result<(), AuditError> {
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut out = LineWriter::new(stdout, format)?;
    let mut entries = conn
        .audit()
        .log(request)
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    let written = async {
        out.header()?;
        loop {
            // Flush only when nothing more is ready: output keeps up with
            // a fast stream without a write per line, and a followed
            // event shows at once.
            let next = match entries.next().now_or_never() {
                Some(next) => next,
                None => {
                    out.flush()?;
                    entries.next().await
                }
            };
            match next {
                Some(Ok(entry)) => out.entry(&AuditLine::from(entry))?,
                Some(Err(status)) => {
                    out.flush()?;
                    return Ok(Err(conn.error(status)));
                }
                None => break,
            }
        }
        out.flush()?;
        std::io::Result::Ok(Ok(()))
    };
    match written.await {
        Ok(result) => Ok(result?),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AuditError::Stdout(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> AuditLine {
        AuditLine {
            position: 42,
            time: "2026-12-01T10:00:00Z".into(),
            actor: "bob".into(),
            event: "AccessDenied".into(),
            target: "local://alice/db".into(),
            secret: Some("local://alice/db".into()),
            store: Some("local".into()),
            principal: None,
            request_id: None,
            details: "bob was refused RequestUploadKey on local://alice/db: `bob` is not a writer, \"really\"".into(),
        }
    }

    #[test]
    fn since_and_until_take_a_position_or_a_time() {
        use v1::log_point::Point;
        assert_eq!(log_point("17").unwrap().point, Some(Point::Position(17)));
        assert_eq!(
            log_point("2026-12-01T10:00:00+01:00").unwrap().point,
            Some(Point::Time("2026-12-01T10:00:00+01:00".into()))
        );
        for bad in [
            "yesterday",
            "",
            "-3",
            "2026-12-01",
            "99999999999999999999999",
        ] {
            let e = log_point(bad).unwrap_err();
            assert!(e.contains(&format!("{:?}", bad.trim())), "{e}");
        }
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(csv_field(" padded"), "\" padded\"");
        assert_eq!(csv_field(""), "");
        assert_eq!(
            csv_record(&line()),
            "42,2026-12-01T10:00:00Z,bob,AccessDenied,local://alice/db,local://alice/db,local,,,\"bob was refused RequestUploadKey on local://alice/db: `bob` is not a writer, \"\"really\"\"\""
        );
        assert_eq!(CSV_HEADER.split(',').count(), 10);
    }

    #[test]
    fn json_lines_have_the_documented_fields() {
        let mut out = LineWriter::new(Vec::new(), OutputFormat::Json).unwrap();
        out.entry(&line()).unwrap();
        out.entry(&line()).unwrap();
        let text = String::from_utf8(out.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one object per line, no header");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut documented = CSV_HEADER.split(',').collect::<Vec<_>>();
        documented.sort_unstable();
        assert_eq!(keys, documented, "the same names as the csv columns");
        assert!(
            lines[0].starts_with(r#"{"position":42,"time":"2026-12-01T10:00:00Z","actor":"bob","event":"AccessDenied""#),
            "{}",
            lines[0]
        );
        assert_eq!(v["principal"], serde_json::Value::Null);
        assert_eq!(v["position"], 42);
    }

    #[test]
    fn tables_have_fixed_columns_and_csv_a_header() {
        let mut out = LineWriter::new(Vec::new(), OutputFormat::Table).unwrap();
        out.entry(&line()).unwrap();
        let text = String::from_utf8(out.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "POSITION  TIME                  ACTOR           EVENT                     TARGET                        DETAILS"
        );
        assert!(lines[1].starts_with("42        2026-12-01T10:00:00Z  bob             AccessDenied              local://alice/db              bob was refused"), "{}", lines[1]);
        let mut out = LineWriter::new(Vec::new(), OutputFormat::Csv).unwrap();
        out.header().unwrap();
        let text = String::from_utf8(out.out).unwrap();
        assert_eq!(text, format!("{CSV_HEADER}\n"));
        assert!(matches!(
            LineWriter::new(Vec::new(), OutputFormat::Yaml),
            Err(AuditError::Format)
        ));
    }
}
