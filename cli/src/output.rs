//! How results are printed: `table` for people (aligned columns, like
//! kubectl), `json` and `yaml` for scripts (the same fields, stable names),
//! `name` for shell loops (one name a line, like `kubectl get -o name`);
//! `csv` for `audit log` only, which streams (`audit`).

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

/// The `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
    /// Comma-separated values with a header (`audit log` only).
    Csv,
    /// One name a line: secret uris, store names, slugs, context names.
    Name,
}

/// Why a result could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Serialisation failed (does not happen for the views of this crate).
    #[error("cannot render the result as {format}: {reason}")]
    Serialize {
        /// `json` or `yaml`.
        format: &'static str,
        /// What the serialiser said.
        reason: String,
    },
    /// `-o csv` for a command other than `audit log`.
    #[error("-o csv is only for `sealctl audit log`; use -o table, json or yaml here")]
    CsvOnlyForAudit,
    /// `-o name` for a result that names nothing.
    #[error(
        "-o name is for commands that print secrets, stores, principals or contexts (get, describe, put, whoami, config); use -o table, json or yaml here"
    )]
    NoName,
}

/// A result that has a table form for people.
pub trait Tabular {
    /// The table form: columns with a header, or `field  value` lines.
    fn table(&self) -> Table;

    /// The `-o name` form: the names listed (uris, store names, slugs,
    /// context names), or the one object's; `None` when the result names
    /// nothing.
    fn names(&self) -> Option<Vec<String>> {
        None
    }
}

/// Renders `view` in `format`, ending with a newline.
pub fn render<T: Serialize + Tabular>(
    format: OutputFormat,
    view: &T,
) -> Result<String, OutputError> {
    match format {
        OutputFormat::Table => {
            let text = view.table().trim_fmt();
            Ok(if text.is_empty() {
                text
            } else {
                format!("{text}\n")
            })
        }
        OutputFormat::Json => serde_json::to_string_pretty(view)
            .map(|s| s + "\n")
            .map_err(|e| OutputError::Serialize {
                format: "json",
                reason: e.to_string(),
            }),
        OutputFormat::Csv => Err(OutputError::CsvOnlyForAudit),
        OutputFormat::Name => {
            let names = view.names().ok_or(OutputError::NoName)?;
            Ok(names.iter().map(|n| format!("{n}\n")).collect())
        }
        OutputFormat::Yaml => serde_norway::to_string(view).map_err(|e| OutputError::Serialize {
            format: "yaml",
            reason: e.to_string(),
        }),
    }
}

/// A borderless table with upper-case headers, like `kubectl get`.
pub fn columns(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    compact(&mut table);
    table
}

/// A borderless two-column `field  value` table, like `kubectl describe`.
pub fn fields<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> Table {
    let mut table = Table::new();
    table.load_style(NOTHING);
    for (name, value) in rows {
        table.add_row(vec![format!("{name}:"), value]);
    }
    compact(&mut table);
    table
}

/// No padding before the first column, two spaces between columns.
fn compact(table: &mut Table) {
    table.discover_columns();
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
        column.set_cell_alignment(CellAlignment::Left);
    }
}

/// Text for an optional value in a table: `-` when absent.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// A plain message that scripts also get as `{"message": ...}`.
#[derive(Debug, Serialize)]
pub struct Message {
    /// What happened.
    pub message: String,
}

impl Tabular for Message {
    fn table(&self) -> Table {
        line(&self.message)
    }
}

/// A one-cell table: a line of text.
pub fn line(text: &str) -> Table {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.add_row(vec![text]);
    compact(&mut table);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        name: String,
        enabled: bool,
    }

    #[derive(Serialize)]
    struct Rows {
        stores: Vec<Row>,
    }

    impl Tabular for Rows {
        fn table(&self) -> Table {
            let mut t = columns(&["name", "enabled"]);
            for r in &self.stores {
                t.add_row(vec![r.name.clone(), r.enabled.to_string()]);
            }
            t
        }

        fn names(&self) -> Option<Vec<String>> {
            Some(self.stores.iter().map(|r| r.name.clone()).collect())
        }
    }

    fn sample() -> Rows {
        Rows {
            stores: vec![
                Row {
                    name: "vault-prod".into(),
                    enabled: true,
                },
                Row {
                    name: "local".into(),
                    enabled: false,
                },
            ],
        }
    }

    #[test]
    fn tables_are_aligned_columns_without_borders() {
        let text = render(OutputFormat::Table, &sample()).unwrap();
        assert_eq!(
            text,
            "NAME        ENABLED\nvault-prod  true\nlocal       false\n"
        );
    }

    #[test]
    fn json_and_yaml_carry_the_same_fields() {
        let json = render(OutputFormat::Json, &sample()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["stores"][0]["name"], "vault-prod");
        assert_eq!(v["stores"][1]["enabled"], false);
        let yaml = render(OutputFormat::Yaml, &sample()).unwrap();
        assert_eq!(
            yaml,
            "stores:\n- name: vault-prod\n  enabled: true\n- name: local\n  enabled: false\n"
        );
    }

    #[test]
    fn name_output_is_one_name_a_line_and_refused_where_nothing_is_named() {
        assert_eq!(
            render(OutputFormat::Name, &sample()).unwrap(),
            "vault-prod\nlocal\n"
        );
        assert_eq!(
            render(OutputFormat::Name, &Rows { stores: vec![] }).unwrap(),
            ""
        );
        let m = Message {
            message: "done".into(),
        };
        let e = render(OutputFormat::Name, &m).unwrap_err();
        assert!(matches!(e, OutputError::NoName), "{e}");
        assert!(e.to_string().contains("use -o table, json or yaml"), "{e}");
    }

    #[test]
    fn field_tables_read_like_describe() {
        let t = fields([("uri", "local://a".to_owned()), ("version", "3".to_owned())]);
        assert_eq!(t.trim_fmt(), "uri:      local://a\nversion:  3");
        let m = Message {
            message: "store `x` enabled".into(),
        };
        assert_eq!(
            render(OutputFormat::Table, &m).unwrap(),
            "store `x` enabled\n"
        );
        assert_eq!(
            render(OutputFormat::Json, &m).unwrap(),
            "{\n  \"message\": \"store `x` enabled\"\n}\n"
        );
        assert_eq!(or_dash(""), "-");
    }
}
