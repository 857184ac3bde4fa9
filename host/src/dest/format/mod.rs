//! The formats of file parts, and rendering a part's spool (NDJSON) into them, one record at a time.
//!
//! - JSONL: the spool itself, records as the plugin wrote them (never re-serialized).
//! - CSV ([`csv`]) and Parquet ([`parquet`]): the spool read line by line, each record as a [`Row`]
//!   of the part's columns (the JSON text of each column's value, found by `json_scan`, no tree of
//!   the record built), written out as it is read, so memory stays bounded whatever the part's size.
//!
//! A part has the table's columns that appear in its records ([`SeenFields`]; a projection keeps only
//! the selected fields), in the table's order; so a field new to the schema shows in the parts
//! written after it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;

use anyhow::{Context, Result};
use json_scan::{Field, KeyOrder, short_eq};

use super::record::{self, ColumnPlaces};
use super::{Column, TableSchema};
use crate::sandbox::wit::FieldType;

mod csv;
mod parquet;

/// The format of a file destination's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Jsonl,
    Csv,
    Parquet,
}

/// Each format and its name (which is also its file extension).
const FORMATS: [(FileFormat, &str); 3] =
    [(FileFormat::Jsonl, "jsonl"), (FileFormat::Csv, "csv"), (FileFormat::Parquet, "parquet")];

impl FileFormat {
    /// `jsonl`, `csv` or `parquet`: the destination kind and the parts' file extension.
    pub fn name(self) -> &'static str {
        FORMATS.iter().find(|(f, _)| *f == self).map(|(_, name)| *name).unwrap_or("jsonl")
    }

    pub fn from_name(name: &str) -> Option<FileFormat> {
        FORMATS.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// Every format's name, for messages.
    pub fn names() -> String {
        FORMATS.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
    }
}

/// Call `each` with every non-empty line of the spool at `path` (1-based line number, line as text:
/// validated as UTF-8 here, once, so that what reads the record does not validate it again).
fn for_each_line(path: &Path, mut each: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open the spool {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).with_context(|| format!("cannot read {}", path.display()))? == 0 {
            return Ok(());
        }
        number += 1;
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        if !trimmed.is_empty() {
            let text = std::str::from_utf8(trimmed)
                .with_context(|| format!("line {number} of {} is not UTF-8 text", path.display()))?;
            each(number, text)?;
        }
    }
}

/// One record of a part as the part's columns: the JSON text of each column's value, as written.
pub struct Row<'r> {
    fields: &'r [Field<'r>],
    places: &'r ColumnPlaces<'r>,
}

impl<'r> Row<'r> {
    /// The JSON text of the value of the column at `column` (its place among the part's columns).
    pub fn get(&self, column: usize) -> Option<&'r str> {
        self.places.field_of(column).map(|field| self.fields[field].1)
    }
}

/// Call `each` with every record of the spool at `path` (1-based line number, record as a [`Row`] of
/// `columns`); fields that are none of the columns are left out.
fn for_each_row(path: &Path, columns: &[Column], mut each: impl FnMut(usize, Row<'_>) -> Result<()>) -> Result<()> {
    let mut places = ColumnPlaces::new(columns.iter().map(|c| c.name.as_str()));
    for_each_line(path, |number, line| {
        let mut fields = Vec::with_capacity(columns.len());
        places
            .read(line, &mut fields)
            .with_context(|| format!("line {number} of {} is not a JSON object", path.display()))?;
        each(number, Row { fields: &fields, places: &places })
    })
}

/// The field names seen in a part's records, gathered page by page as the part is written (so
/// that publishing it does not read it again), from which its columns follow.
#[derive(Debug, Default)]
pub struct SeenFields {
    names: HashSet<String>,
    any: bool,
    /// The previous record's field names, in order (each one in `names`): a record with the same
    /// field at the same place costs a comparison, not a hash.
    last: Vec<String>,
    /// The last record's names as written, which the next record's are matched with.
    order: KeyOrder,
}

impl SeenFields {
    /// Note the field names of every record of a page of NDJSON; an error names the first line that
    /// is not a JSON object.
    pub fn page(&mut self, records: &[u8]) -> Result<()> {
        for (number, line) in record::lines(records).enumerate() {
            self.line(line).with_context(|| format!("record {} of the page is not a JSON object", number + 1))?;
        }
        Ok(())
    }

    /// Note the field names of every record of the spool at `path` (a resumed part's earlier pages).
    pub fn spool(&mut self, path: &Path) -> Result<()> {
        for_each_line(path, |number, line| {
            self.line(line.as_bytes())
                .with_context(|| format!("line {number} of {} is not a JSON object", path.display()))
        })
    }

    fn line(&mut self, line: &[u8]) -> Result<()> {
        self.any = true;
        let (names, last) = (&mut self.names, &mut self.last);
        let mut at = 0;
        record::keys(line, &mut self.order, |key| {
            if last.get(at).is_none_or(|previous| !short_eq(previous.as_bytes(), key.as_bytes())) {
                if !names.contains(key) {
                    names.insert(key.to_owned());
                }
                match last.get_mut(at) {
                    Some(previous) => key.clone_into(previous),
                    None => last.push(key.to_owned()),
                }
            }
            at += 1;
        })
    }

    /// The columns of `table` that appear in at least one record, in the table's order (every column
    /// when there was no record).
    pub fn columns(&self, table: &TableSchema) -> Vec<Column> {
        table.columns.iter().filter(|c| !self.any || self.names.contains(&c.name)).cloned().collect()
    }
}

/// Render the spool at `spool` as `format` into `out` (durably), with `columns`. A file already at
/// `out` is removed, not cut: a run killed right after publishing it leaves it behind as a hard link
/// of the published part.
pub fn render(format: FileFormat, spool: &Path, columns: &[Column], out: &Path) -> Result<()> {
    super::spool::remove_if_present(out)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let file = match format {
        FileFormat::Jsonl => {
            let mut writer = BufWriter::new(file);
            std::io::copy(&mut File::open(spool)?, &mut writer)?;
            writer.into_inner().map_err(|e| e.into_error())?
        }
        FileFormat::Csv => csv::render(spool, columns, file)?,
        FileFormat::Parquet => parquet::render(spool, columns, file)?,
    };
    file.sync_all().with_context(|| format!("cannot sync {}", out.display()))
}

fn is_json(field_type: FieldType) -> bool {
    matches!(field_type, FieldType::Struct | FieldType::List)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns of `table` that appear in the spool at `path`.
    pub(super) fn present_columns(path: &Path, table: &TableSchema) -> Result<Vec<Column>> {
        let mut seen = SeenFields::default();
        seen.spool(path)?;
        Ok(seen.columns(table))
    }

    pub(super) fn table() -> TableSchema {
        let column = |name: &str, field_type| Column { name: name.into(), field_type };
        TableSchema {
            name: "issue".into(),
            columns: vec![
                column("id", FieldType::Integer),
                column("title", FieldType::String),
                column("weight", FieldType::Number),
                column("confidential", FieldType::Boolean),
                column("due_date", FieldType::Date),
                column("created_at", FieldType::DateTime),
                column("author", FieldType::Struct),
                column("labels", FieldType::List),
                column("never_seen", FieldType::String),
            ],
            primary_key: vec!["id".into()],
        }
    }

    const RECORDS: &str = concat!(
        r#"{"id":1,"title":"a, \"quoted\"\nline","weight":1.5,"confidential":true,"due_date":"2024-02-29","created_at":"2024-01-02T03:04:05.678Z","author":{"id":7,"name":"Ann"},"labels":["x","y"]}"#,
        "\n",
        r#"{"id":2,"title":null,"weight":2,"confidential":false,"due_date":null,"created_at":"1970-01-01T00:00:00.000Z","author":null,"labels":[]}"#,
        "\n"
    );

    pub(super) fn spool(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("part.ndjson");
        std::fs::write(&path, RECORDS).unwrap();
        path
    }

    #[test]
    fn parts_have_the_columns_their_records_have() {
        let dir = tempdir("columns");
        let columns = present_columns(&spool(&dir), &table()).unwrap();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "title", "weight", "confidential", "due_date", "created_at", "author", "labels"]);
        let empty = dir.join("empty.ndjson");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(present_columns(&empty, &table()).unwrap().len(), 9);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn fields_are_noted_whatever_their_order_from_record_to_record() {
        let mut seen = SeenFields::default();
        // The same fields in another order, a field replaced at the same place, one more at the end.
        seen.page(b"{\"id\":1,\"title\":\"a\"}\n{\"title\":\"b\",\"id\":2}\n{\"id\":3,\"weight\":1}\n").unwrap();
        seen.page(b"{\"id\":4,\"weight\":2,\"labels\":[]}\n").unwrap();
        let names: Vec<String> = seen.columns(&table()).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["id", "title", "weight", "labels"]);
        let error = seen.page(b"{\"id\":5}\n[1]\n").unwrap_err();
        assert!(format!("{error:#}").contains("record 2 of the page is not a JSON object"), "{error:#}");
    }

    #[test]
    fn rows_find_their_columns_whatever_the_order_of_their_fields() {
        let dir = tempdir("rows");
        let path = dir.join("rows.ndjson");
        // The same fields, then another order, a missing field, a field written twice, an unknown one.
        std::fs::write(
            &path,
            concat!(
                "{\"id\":1,\"title\":\"a\"}\n{\"id\":2,\"title\":\"b\"}\n{\"title\":\"c\",\"id\":3}\n",
                "{\"id\":4}\n\n{\"id\":5,\"title\":\"e\",\"title\":\"f\",\"extra\":0}\n"
            ),
        )
        .unwrap();
        let columns = [
            Column { name: "title".into(), field_type: FieldType::String },
            Column { name: "id".into(), field_type: FieldType::Integer },
        ];
        let mut rows = Vec::new();
        for_each_row(&path, &columns, |number, row| {
            rows.push((number, row.get(0).map(str::to_owned), row.get(1).map(str::to_owned)));
            Ok(())
        })
        .unwrap();
        let text = |s: &str| Some(s.to_owned());
        assert_eq!(
            rows,
            [
                (1, text("\"a\""), text("1")),
                (2, text("\"b\""), text("2")),
                (3, text("\"c\""), text("3")),
                (4, None, text("4")),
                (6, text("\"e\""), text("5")),
            ]
        );
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2,}\n").unwrap();
        let error = for_each_row(&path, &columns, |_, _| Ok(())).unwrap_err();
        assert!(format!("{error:#}").contains("line 2 of"), "{error:#}");
        let _ = std::fs::remove_dir_all(dir);
    }

    pub(super) fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("format-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
