//! The formats of file parts, and rendering a spool (NDJSON) into them, one record at a time.
//!
//! - JSONL: the spool itself, records as the plugin wrote them (never re-serialized).
//! - CSV: a header row, then one row per record; strings as they are, numbers, booleans, structs and
//!   lists as the JSON text the plugin wrote, null as an empty cell.
//! - Parquet (Snappy): an Arrow schema from the table schema: integer → Int64, number → Float64,
//!   boolean → Boolean, string → Utf8, date → Date32, date-time → Timestamp(ms, +00:00: UTC, which
//!   Parquet records as adjusted to UTC); struct and list
//!   → Utf8 holding JSON text, marked with Arrow's canonical `arrow.json` extension so that the Parquet
//!   column carries the JSON logical type (the schema does not describe what is inside a struct or a
//!   list, so JSON is the faithful choice; DuckDB, Spark and Trino read such columns as JSON).
//!   Records go through arrow-json's decoder in batches of [`BATCH_ROWS`], and row groups are capped
//!   at [`ROW_GROUP_ROWS`], so memory stays bounded whatever the part's size.
//!
//! A part has the table's columns that appear in its records (a projection keeps only the selected
//! fields), in the table's order; so a field new to the schema shows in the parts written after it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use arrow_json::ReaderBuilder;
use arrow_schema::extension::Json;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use json_scan::{KeyOrder, short_eq};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use super::record::{self, Record, Scalar};
use super::{Column, TableSchema};
use crate::sandbox::wit::FieldType;

/// Records per Arrow batch while rendering Parquet.
pub const BATCH_ROWS: usize = 4096;
/// Most records in one Parquet row group.
pub const ROW_GROUP_ROWS: usize = 65_536;

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

/// Call `each` with every record of the spool at `path` (1-based line number, record as a tree).
fn for_each_record(path: &Path, mut each: impl FnMut(usize, Map<String, Value>) -> Result<()>) -> Result<()> {
    for_each_line(path, |number, line| {
        let record: Map<String, Value> = serde_json::from_str(line)
            .with_context(|| format!("line {number} of {} is not a JSON object", path.display()))?;
        each(number, record)
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
        FileFormat::Csv => render_csv(spool, columns, file)?,
        FileFormat::Parquet => render_parquet(spool, columns, file)?,
    };
    file.sync_all().with_context(|| format!("cannot sync {}", out.display()))
}

/// A CSV cell for `value` in a column of `field_type`: a string unescaped (unless the column holds
/// JSON), null or missing as nothing, anything else as the JSON text the plugin wrote.
fn csv_cell(value: Option<&str>, field_type: FieldType) -> Result<Cow<'_, str>> {
    Ok(match value.map(Scalar::of).transpose()? {
        None | Some(Scalar::Null) => Cow::Borrowed(""),
        Some(Scalar::Text(text)) if !is_json(field_type) => text,
        Some(_) => Cow::Borrowed(value.unwrap_or("")),
    })
}

fn render_csv(spool: &Path, columns: &[Column], file: File) -> Result<File> {
    let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    writer.write_record(columns.iter().map(|c| c.name.as_str()))?;
    for_each_line(spool, |number, line| {
        let record = Record::parse(line).with_context(|| format!("line {number} of {}", spool.display()))?;
        let mut cells = Vec::with_capacity(columns.len());
        for column in columns {
            cells.push(
                csv_cell(record.get(&column.name), column.field_type)
                    .with_context(|| format!("line {number} of {}, field {}", spool.display(), column.name))?,
            );
        }
        writer.write_record(cells.iter().map(|cell| cell.as_bytes()))?;
        Ok(())
    })?;
    writer.flush()?;
    let buffered = writer.into_inner().map_err(|e| anyhow!("cannot finish the CSV file: {}", e.error()))?;
    Ok(buffered.into_inner().map_err(|e| e.into_error())?)
}

/// The Arrow type of a field type (see the module docs).
pub fn arrow_type(field_type: FieldType) -> DataType {
    match field_type {
        FieldType::Boolean => DataType::Boolean,
        FieldType::Integer => DataType::Int64,
        FieldType::Number => DataType::Float64,
        FieldType::String | FieldType::Struct | FieldType::List => DataType::Utf8,
        FieldType::Date => DataType::Date32,
        // "+00:00" rather than "UTC": arrow parses offsets without the time zone database.
        FieldType::DateTime => DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
    }
}

fn is_json(field_type: FieldType) -> bool {
    matches!(field_type, FieldType::Struct | FieldType::List)
}

/// The Arrow schema of a part with `columns`.
pub fn arrow_schema(columns: &[Column]) -> Schema {
    Schema::new(
        columns
            .iter()
            .map(|c| {
                let field = Field::new(&c.name, arrow_type(c.field_type), true);
                if is_json(c.field_type) { field.with_extension_type(Json::default()) } else { field }
            })
            .collect::<Vec<_>>(),
    )
}

fn render_parquet(spool: &Path, columns: &[Column], file: File) -> Result<File> {
    let schema = Arc::new(arrow_schema(columns));
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema.clone(), Some(properties))?;
    let mut decoder = ReaderBuilder::new(schema).with_batch_size(BATCH_ROWS).build_decoder()?;
    let json_columns: Vec<&str> = columns.iter().filter(|c| is_json(c.field_type)).map(|c| c.name.as_str()).collect();
    let mut rows: Vec<Map<String, Value>> = Vec::with_capacity(BATCH_ROWS);
    let mut first_line = 1;
    let mut flush = |rows: &mut Vec<Map<String, Value>>, first_line: usize| -> Result<()> {
        let last_line = first_line + rows.len().saturating_sub(1);
        decoder
            .serialize(rows)
            .and_then(|()| decoder.flush())
            .map_err(|e| anyhow!("records {first_line}..{last_line} do not fit the part's schema: {e}"))?
            .map(|batch| writer.write(&batch))
            .transpose()?;
        rows.clear();
        Ok(())
    };
    for_each_record(spool, |number, mut record| {
        for name in &json_columns {
            if let Some(value) = record.get_mut(*name).filter(|v| !v.is_null()) {
                *value = Value::String(value.to_string());
            }
        }
        if rows.is_empty() {
            first_line = number;
        }
        rows.push(record);
        if rows.len() == BATCH_ROWS { flush(&mut rows, first_line) } else { Ok(()) }
    })?;
    if !rows.is_empty() {
        flush(&mut rows, first_line)?;
    }
    let buffered = writer.into_inner()?;
    Ok(buffered.into_inner().map_err(|e| e.into_error())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Date32Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// The columns of `table` that appear in the spool at `path`.
    fn present_columns(path: &Path, table: &TableSchema) -> Result<Vec<Column>> {
        let mut seen = SeenFields::default();
        seen.spool(path)?;
        Ok(seen.columns(table))
    }

    fn table() -> TableSchema {
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

    fn spool(dir: &Path) -> std::path::PathBuf {
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
    fn renders_csv_with_a_header_and_json_for_nested_values() {
        let dir = tempdir("csv");
        let spool = spool(&dir);
        let columns = present_columns(&spool, &table()).unwrap();
        let out = dir.join("part.csv");
        render(FileFormat::Csv, &spool, &columns, &out).unwrap();
        let mut reader = csv::Reader::from_path(&out).unwrap();
        assert_eq!(reader.headers().unwrap().len(), 8);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[0][1], "a, \"quoted\"\nline");
        assert_eq!(&rows[0][2], "1.5");
        assert_eq!(&rows[0][3], "true");
        assert_eq!(serde_json::from_str::<Value>(&rows[0][6]).unwrap()["name"], "Ann");
        assert_eq!(&rows[0][7], r#"["x","y"]"#);
        assert_eq!(&rows[1][1], "");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn renders_typed_parquet() {
        let dir = tempdir("parquet");
        let spool = spool(&dir);
        let columns = present_columns(&spool, &table()).unwrap();
        let out = dir.join("part.parquet");
        render(FileFormat::Parquet, &spool, &columns, &out).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap()).unwrap();
        let parquet_schema = reader.parquet_schema().column(6).self_type().get_basic_info().logical_type_ref().cloned();
        assert_eq!(parquet_schema, Some(parquet::basic::LogicalType::Json));
        let batches: Vec<_> = reader.build().unwrap().map(Result::unwrap).collect();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values(), &[1, 2]);
        let weights = batch.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(weights.values(), &[1.5, 2.0]);
        let due = batch.column(4).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(due.value_as_date(0).unwrap().to_string(), "2024-02-29");
        assert!(due.is_null(1));
        let created = batch.column(5).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        assert_eq!(created.value(0), 1_704_164_645_678);
        assert_eq!(created.value(1), 0);
        let author = batch.column(6).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(serde_json::from_str::<Value>(author.value(0)).unwrap()["id"], 7);
        assert!(author.is_null(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_record_that_does_not_fit_the_schema_is_a_clear_error() {
        let dir = tempdir("misfit");
        let path = dir.join("bad.ndjson");
        std::fs::write(&path, "{\"id\":\"not a number\"}\n").unwrap();
        let columns = vec![Column { name: "id".into(), field_type: FieldType::Integer }];
        let err = render(FileFormat::Parquet, &path, &columns, &dir.join("bad.parquet")).unwrap_err();
        assert!(format!("{err:#}").contains("records 1..1 do not fit"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("format-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
