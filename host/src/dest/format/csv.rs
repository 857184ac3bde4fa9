//! CSV parts: a header row of the part's columns, then one row per record (RFC 4180 quoting, by
//! BurntSushi's `csv`). A string is written unescaped; a number, a boolean, a struct or a list as
//! the JSON text the plugin wrote; null or a missing field as an empty cell.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufWriter;

use anyhow::{Context, Result, anyhow};

use super::super::Column;
use super::super::record::Scalar;
use super::{Row, is_json};
use crate::sandbox::wit::FieldType;

/// A CSV part being written: its header row, then a row per record.
pub(super) struct CsvPart {
    writer: ::csv::Writer<BufWriter<File>>,
}

impl CsvPart {
    /// Start a CSV part with `columns` in `file`: its header row.
    pub(super) fn create(columns: &[Column], file: File) -> Result<CsvPart> {
        let mut writer = ::csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
        writer.write_record(columns.iter().map(|c| c.name.as_str()))?;
        Ok(CsvPart { writer })
    }

    /// Write one record's row.
    pub(super) fn row(&mut self, columns: &[Column], row: &Row<'_>) -> Result<()> {
        for (at, column) in columns.iter().enumerate() {
            let cell = cell(row.get(at), column.field_type).with_context(|| format!("field {}", column.name))?;
            self.writer.write_field(cell.as_bytes())?;
        }
        self.writer.write_record(None::<&[u8]>)?;
        Ok(())
    }

    /// Write out what is buffered; the file, to be synced.
    pub(super) fn finish(mut self) -> Result<File> {
        self.writer.flush()?;
        let buffered = self.writer.into_inner().map_err(|e| anyhow!("cannot finish the CSV file: {}", e.error()))?;
        Ok(buffered.into_inner().map_err(|e| e.into_error())?)
    }
}

/// A CSV cell for `value` in a column of `field_type`: a string unescaped (unless the column holds
/// JSON), null or missing as nothing, anything else as the JSON text the plugin wrote.
fn cell(value: Option<&str>, field_type: FieldType) -> Result<Cow<'_, str>> {
    Ok(match value.map(Scalar::of).transpose()? {
        None | Some(Scalar::Null) => Cow::Borrowed(""),
        Some(Scalar::Text(text)) if !is_json(field_type) => text,
        Some(_) => Cow::Borrowed(value.unwrap_or("")),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{present_columns, spool, table, tempdir};
    use super::super::{FileFormat, render as render_part};
    use serde_json::Value;

    #[test]
    fn renders_csv_with_a_header_and_json_for_nested_values() {
        let dir = tempdir("csv");
        let spool = spool(&dir);
        let columns = present_columns(&spool, &table()).unwrap();
        let out = dir.join("part.csv");
        render_part(FileFormat::Csv, &spool, &columns, &out).unwrap();
        let mut reader = ::csv::Reader::from_path(&out).unwrap();
        assert_eq!(reader.headers().unwrap().len(), 8);
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[0][1], "a, \"quoted\"\nline");
        assert_eq!(&rows[0][2], "1.5");
        assert_eq!(&rows[0][3], "true");
        assert_eq!(serde_json::from_str::<Value>(&rows[0][6]).unwrap()["name"], "Ann");
        assert_eq!(&rows[0][7], r#"["x","y"]"#);
        assert_eq!(&rows[1][1], "");
        let _ = std::fs::remove_dir_all(dir);
    }
}
