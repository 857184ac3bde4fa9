//! A page of records read and checked against its table on the destination's writer thread, owned
//! whole, so that it can go to the inserting thread ([`super::inserter`]) while the next page is read.
//!
//! ```text
//!  plugin's NDJSON ──► copied, checked UTF-8 ──► each record: fields in order (json_scan),
//!                                                values read (Scalar), key checked, Shape found
//!                  ──► CheckedPage { text, cells, records, shapes } ──► inserter: bind and upsert
//! ```
//!
//! A value that borrows from the page (most text, every struct and list) is kept as the place it
//! lies in the page's own copy ([`Cell`]), so the page and its values travel together with nothing
//! borrowed. Everything that could refuse a record is checked here, before any of the page is
//! written: its JSON, each key present, non-null and an integer where the key is one, and each
//! field a column of the table. A page the plugin got wrong fails alone and leaves nothing.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use json_scan::{Field, KeyOrder};

use crate::dest::TableSchema;
use crate::dest::record::{self, Scalar};
use crate::sandbox::wit::FieldType;

/// A page of records, checked, each value read: what the inserter binds, record by record.
#[derive(Default)]
pub struct CheckedPage {
    /// The page's text, copied from the plugin's output.
    text: String,
    /// The values of every record, one after the other.
    cells: Vec<Cell>,
    /// Each record: where its values end in `cells`, and its shape in `shapes`.
    records: Vec<(usize, usize)>,
    /// The shapes of the page's records (one, as a rule).
    shapes: Vec<Arc<Shape>>,
}

/// One value of a record: a [`Scalar`] that borrows nothing, or where its text lies in the page.
#[derive(Debug)]
enum Cell {
    Scalar(Scalar<'static>),
    Text(Range<usize>),
    Json(Range<usize>),
}

impl CheckedPage {
    /// Read and check `page` (NDJSON) for `table`, into this page's buffers (their room kept from
    /// the page before), its records' shapes found in `shapes`.
    pub fn read(&mut self, shapes: &mut Shapes, table: &TableSchema, page: &[u8]) -> Result<()> {
        self.clear();
        let Ok(text) = std::str::from_utf8(page) else { return Err(not_utf8(page)) };
        self.text.push_str(text);
        let text = self.text.as_str();
        // One vector of fields for the whole page, cleared for each record.
        let mut fields = Vec::with_capacity(64);
        let mut order = KeyOrder::default();
        // Records of a page have the same fields, as a rule: one shape until they change.
        let mut current = None;
        for (number, line) in record::lines(text.as_bytes()).enumerate() {
            let what = || format!("record {} of the page", number + 1);
            let same = record::fields_in_order(line, &mut order, &mut fields).with_context(what)?;
            let start = self.cells.len();
            for (_, raw) in &fields {
                self.cells.push(Cell::of(Scalar::of(raw).with_context(what)?, text));
            }
            let shape = match current {
                Some(at) if same => at,
                _ => {
                    let shape = shapes.find(table, &fields).with_context(what)?;
                    match self.shapes.iter().position(|s| Arc::ptr_eq(s, &shape)) {
                        Some(at) => at,
                        None => {
                            self.shapes.push(shape);
                            self.shapes.len() - 1
                        }
                    }
                }
            };
            current = Some(shape);
            self.shapes[shape].check_key(&self.cells[start..], text).with_context(what)?;
            self.records.push((self.cells.len(), shape));
        }
        Ok(())
    }

    /// Call `each` with every record's shape and values, in order, until it fails: the error then
    /// names the record.
    pub fn each_record(&self, mut each: impl FnMut(&Arc<Shape>, &[Scalar<'_>]) -> Result<()>) -> Result<()> {
        let mut values = Vec::with_capacity(64);
        let mut start = 0;
        for (number, &(end, shape)) in self.records.iter().enumerate() {
            values.clear();
            values.extend(self.cells[start..end].iter().map(|cell| cell.scalar(&self.text)));
            each(&self.shapes[shape], &values).with_context(|| format!("record {} of the page", number + 1))?;
            start = end;
        }
        Ok(())
    }

    /// Empty, its buffers' room kept for the next page.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
        self.records.clear();
        self.shapes.clear();
    }
}

/// Why `page` is not UTF-8: the error of the record where it breaks, as the scanner words it.
#[cold]
fn not_utf8(page: &[u8]) -> anyhow::Error {
    for (number, line) in record::lines(page).enumerate() {
        if let Err(error) = record::Record::parse(line) {
            return error.context(format!("record {} of the page", number + 1));
        }
    }
    anyhow!("the page is not UTF-8")
}

impl Cell {
    /// `scalar`, read from `page`: what it borrows from the page kept as where it lies.
    fn of(scalar: Scalar<'_>, page: &str) -> Cell {
        let at = |text: &str| {
            let start = text.as_ptr() as usize - page.as_ptr() as usize;
            start..start + text.len()
        };
        match scalar {
            Scalar::Null => Cell::Scalar(Scalar::Null),
            Scalar::Bool(b) => Cell::Scalar(Scalar::Bool(b)),
            Scalar::Integer(i) => Cell::Scalar(Scalar::Integer(i)),
            Scalar::Real(r) => Cell::Scalar(Scalar::Real(r)),
            Scalar::Text(Cow::Borrowed(text)) => Cell::Text(at(text)),
            Scalar::Text(Cow::Owned(text)) => Cell::Scalar(Scalar::Text(Cow::Owned(text))),
            Scalar::Json(json) => Cell::Json(at(json)),
        }
    }

    /// The value, borrowing from `page` (the text the cell was read from) or from the cell.
    fn scalar<'a>(&'a self, page: &'a str) -> Scalar<'a> {
        match self {
            Cell::Scalar(Scalar::Null) => Scalar::Null,
            Cell::Scalar(Scalar::Bool(b)) => Scalar::Bool(*b),
            Cell::Scalar(Scalar::Integer(i)) => Scalar::Integer(*i),
            Cell::Scalar(Scalar::Real(r)) => Scalar::Real(*r),
            Cell::Scalar(Scalar::Text(text)) => Scalar::Text(Cow::Borrowed(text)),
            Cell::Scalar(Scalar::Json(json)) => Scalar::Json(json),
            Cell::Text(at) => Scalar::Text(Cow::Borrowed(&page[at.clone()])),
            Cell::Json(at) => Scalar::Json(&page[at.clone()]),
        }
    }
}

/// The columns a record has, in order, in one table: what one upsert statement takes.
#[derive(Debug)]
pub struct Shape {
    pub table: String,
    pub columns: Vec<String>,
    /// Where the table's key columns are among `columns`, and whether each is an integer.
    key: Vec<(usize, bool)>,
    /// The statement that upserts such a record.
    pub upsert: String,
}

impl Shape {
    /// Refuse a record whose key is missing, null, or not an integer where the key is one (SQLite
    /// would, but only as it writes it).
    fn check_key(&self, cells: &[Cell], page: &str) -> Result<()> {
        for &(at, integer) in &self.key {
            match cells[at].scalar(page) {
                Scalar::Null => bail!("its key {} is null", self.columns[at]),
                Scalar::Integer(_) => {}
                other if integer => bail!("its key {} is not an integer: {other:?}", self.columns[at]),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The shapes met so far: the records of a page share their fields, as a rule, and so do the pages
/// of an object.
#[derive(Default)]
pub struct Shapes(Vec<Arc<Shape>>);

impl Shapes {
    /// So many different shapes and the list starts over.
    const LIMIT: usize = 16;

    /// The shape of a record of `table` with `fields`, checked against the table: every field one
    /// of its columns, every key column there.
    fn find(&mut self, table: &TableSchema, fields: &[Field<'_>]) -> Result<Arc<Shape>> {
        let same_columns = |columns: &[String]| {
            columns.len() == fields.len() && columns.iter().zip(fields).all(|(column, (name, _))| column == name)
        };
        if let Some(found) = self.0.iter().find(|s| s.table == table.name && same_columns(&s.columns)) {
            return Ok(found.clone());
        }
        let columns: Vec<String> = fields.iter().map(|(name, _)| name.to_string()).collect();
        let column = |name: &str| table.columns.iter().find(|c| c.name == name);
        if let Some(unknown) = columns.iter().find(|name| column(name).is_none()) {
            bail!("table {} has no column named {unknown}", table.name);
        }
        let key = table
            .primary_key
            .iter()
            .map(|name| {
                let at = columns.iter().position(|c| c == name).ok_or_else(|| anyhow!("it has no key {name}"))?;
                Ok((at, column(name).is_some_and(|c| c.field_type == FieldType::Integer)))
            })
            .collect::<Result<_>>()?;
        if self.0.len() == Self::LIMIT {
            self.0.clear();
        }
        let upsert = super::upsert(table, &columns);
        let shape = Arc::new(Shape { table: table.name.clone(), columns, key, upsert });
        self.0.push(shape.clone());
        Ok(shape)
    }
}
