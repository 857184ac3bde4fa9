//! The formats of file parts, and rendering a part's spool (NDJSON) into them, one record at a time.
//!
//! - JSONL: the spool itself, records as the plugin wrote them (never re-serialized).
//! - CSV ([`csv`]) and Parquet ([`parquet`]): a [`PartWriter`] takes records one at a time, each as a
//!   [`Row`] of the part's columns (the JSON text of each column's value, found by `json_scan`, no
//!   tree of the record built), and writes them out as they come, so memory stays bounded whatever
//!   the part's size. The records come from the part's spool once its last page is read
//!   ([`render`]), or, for a big part, from its pages as they are read (see `files`).
//!
//! A part has the table's columns that appear in its records ([`SeenFields`]; a projection keeps only
//! the selected fields), in the table's order; so a field new to the schema shows in the parts
//! written after it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
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
    places: &'r ColumnPlaces,
}

impl<'r> Row<'r> {
    /// The JSON text of the value of the column at `column` (its place among the part's columns).
    pub fn get(&self, column: usize) -> Option<&'r str> {
        self.places.field_of(column).map(|field| self.fields[field].1)
    }
}

/// A part's file in its format, written as its records come: from its spool ([`PartWriter::spool`]),
/// from pages as they are read ([`PartWriter::page`]), or both, one after the other. Memory stays
/// bounded whatever the part's size. An error leaves the file unfinished: the writer is then dropped
/// and the part rendered again from its spool (see `files`).
pub struct PartWriter {
    out: PathBuf,
    columns: Vec<Column>,
    places: ColumnPlaces,
    encoder: Encoder,
    records: u64,
    /// Names of the table's other columns: a record with one of them outgrows the part's columns.
    others: HashSet<String>,
    /// Whether a record had a field of the table that is none of the part's columns.
    outgrown: bool,
}

/// The format-specific half of a [`PartWriter`].
enum Encoder {
    Csv(csv::CsvPart),
    Parquet(parquet::ParquetPart),
}

impl PartWriter {
    /// Start the part `out` as `format` (CSV or Parquet; a JSONL part is its spool) with `columns`.
    /// A file already at `out` is removed, not cut: a run killed right after publishing it leaves it
    /// behind as a hard link of the published part.
    pub fn create(format: FileFormat, columns: Vec<Column>, out: &Path) -> Result<PartWriter> {
        super::spool::remove_if_present(out)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let encoder = match format {
            FileFormat::Csv => Encoder::Csv(csv::CsvPart::create(&columns, file)?),
            FileFormat::Parquet => Encoder::Parquet(parquet::ParquetPart::create(&columns, file)?),
            FileFormat::Jsonl => bail!("a JSONL part is published as its spool, not written record by record"),
        };
        let places = ColumnPlaces::new(columns.iter().map(|c| c.name.as_str()));
        Ok(PartWriter {
            out: out.to_owned(),
            columns,
            places,
            encoder,
            records: 0,
            others: HashSet::new(),
            outgrown: false,
        })
    }

    /// Watch for records with a field of `table` that is none of the part's columns (see
    /// [`PartWriter::outgrown`]): such a field is left out as any other.
    pub fn watch(&mut self, table: &TableSchema) {
        let ours = |name: &str| self.columns.iter().any(|c| c.name == name);
        self.others = table.columns.iter().filter(|c| !ours(&c.name)).map(|c| c.name.clone()).collect();
    }

    /// Whether a record written had a field of the watched table that is none of the part's columns:
    /// the part then needs more columns than it was started with.
    pub fn outgrown(&self) -> bool {
        self.outgrown
    }

    /// The part's columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// How many records are written.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Write every record of a page of NDJSON; an error names the record of the page.
    pub fn page(&mut self, records: &[u8]) -> Result<()> {
        for (number, line) in record::lines(records).enumerate() {
            self.record(line).with_context(|| format!("record {} of the page", number + 1))?;
        }
        Ok(())
    }

    /// Write every record of the spool at `path`; an error names its line.
    pub fn spool(&mut self, path: &Path) -> Result<()> {
        for_each_line(path, |number, line| {
            self.record(line.as_bytes()).with_context(|| format!("line {number} of {}", path.display()))
        })
    }

    /// Write one record (a line of NDJSON); fields that are none of the columns are left out.
    fn record(&mut self, line: &[u8]) -> Result<()> {
        let mut fields = Vec::with_capacity(self.columns.len());
        if self.places.read(line, &mut fields)? && !self.others.is_empty() {
            self.outgrown |= fields.iter().any(|(name, _)| self.others.contains(name.as_ref()));
        }
        let row = Row { fields: &fields, places: &self.places };
        match &mut self.encoder {
            Encoder::Csv(part) => part.row(&self.columns, &row)?,
            Encoder::Parquet(part) => part.row(&self.columns, &row)?,
        }
        self.records += 1;
        Ok(())
    }

    /// Finish the file and make it durable.
    pub fn finish(self) -> Result<()> {
        let file = match self.encoder {
            Encoder::Csv(part) => part.finish()?,
            Encoder::Parquet(part) => part.finish()?,
        };
        file.sync_all().with_context(|| format!("cannot sync {}", self.out.display()))
    }
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

/// Render the spool at `spool` as `format` (CSV or Parquet) into `out` (durably), with `columns`.
pub fn render(format: FileFormat, spool: &Path, columns: &[Column], out: &Path) -> Result<()> {
    let mut writer = PartWriter::create(format, columns.to_vec(), out)?;
    writer.spool(spool)?;
    writer.finish()
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
        let out = dir.join("rows.csv");
        render(FileFormat::Csv, &path, &columns, &out).unwrap();
        let rows: Vec<(String, String)> = ::csv::Reader::from_path(&out)
            .unwrap()
            .records()
            .map(|row| row.map(|row| (row[0].to_owned(), row[1].to_owned())).unwrap())
            .collect();
        let row = |title: &str, id: &str| (title.to_owned(), id.to_owned());
        assert_eq!(rows, [row("a", "1"), row("b", "2"), row("c", "3"), row("", "4"), row("e", "5")]);
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2,}\n").unwrap();
        let error = render(FileFormat::Csv, &path, &columns, &out).unwrap_err();
        assert!(format!("{error:#}").contains("line 2 of"), "{error:#}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_part_written_from_its_spool_then_page_by_page_is_the_part_rendered_whole() {
        let dir = tempdir("resumed");
        let whole = spool(&dir);
        let (first, second) = RECORDS.split_at(RECORDS.find('\n').unwrap() + 1);
        let half = dir.join("half.ndjson");
        std::fs::write(&half, first).unwrap();
        let columns = present_columns(&whole, &table()).unwrap();
        for format in [FileFormat::Csv, FileFormat::Parquet] {
            let rendered = dir.join(format!("whole.{}", format.name()));
            render(format, &whole, &columns, &rendered).unwrap();
            let streamed = dir.join(format!("streamed.{}", format.name()));
            let mut writer = PartWriter::create(format, columns.clone(), &streamed).unwrap();
            writer.spool(&half).unwrap();
            writer.page(second.as_bytes()).unwrap();
            assert_eq!(writer.records(), 2);
            writer.finish().unwrap();
            assert_eq!(std::fs::read(&streamed).unwrap(), std::fs::read(&rendered).unwrap(), "{format:?}");
        }
        let mut writer = PartWriter::create(FileFormat::Csv, columns, &dir.join("bad.csv")).unwrap();
        let error = writer.page(b"{\"id\":3}\n{\"id\":4\n").unwrap_err();
        assert!(format!("{error:#}").contains("record 2 of the page"), "{error:#}");
        assert!(PartWriter::create(FileFormat::Jsonl, Vec::new(), &dir.join("x.jsonl")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    pub(super) fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("format-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
