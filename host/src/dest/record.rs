//! One NDJSON record, read without building a tree of it.
//!
//! Destinations take records as the plugin wrote them: [`fields_in_order`] reads a record's fields
//! in order, each value still the JSON text it was written as (borrowed from the page, found and
//! checked by `json_scan`, 16 bytes at a time). A field a destination stores as JSON text (a struct, a list)
//! is copied as it is, never parsed and re-serialized; a scalar is read into a [`Scalar`] only when
//! its column needs one. [`ColumnPlaces`] reads records for a table's columns: where each column's
//! field is, kept while the records' names repeat. [`keys`] reads a record's field names alone,
//! skipping the values; [`lines`] splits a page into its records. A page is read as bytes: the scanner checks that its strings are
//! UTF-8 as it meets them (the rest must be ASCII to be JSON), so nothing checks a page beforehand.

use std::borrow::Cow;
use std::collections::HashMap;

use anyhow::{Context, Result};
use json_scan::{Field, KeyOrder, Scanner};

/// Read one line of NDJSON (text or bytes), which must be a JSON object, into `fields` (cleared
/// first): its fields in the order written, values as raw JSON. The names are expected in `order`,
/// that of the record read with it before (they are matched, not read: `json_scan::KeyOrder`);
/// returns whether they were that record's. Records read one after the other reuse one vector.
pub fn fields_in_order<'a, T: AsRef<[u8]> + ?Sized>(
    line: &'a T,
    order: &mut KeyOrder,
    fields: &mut Vec<Field<'a>>,
) -> Result<bool> {
    scan(line, Some(order), fields)
}

/// Records read for some columns: where each column's field is among the fields of the record read
/// last. The records of a page or a part share their field names, as a rule: while a record's names
/// are those of the record before (matched, not read: `json_scan::KeyOrder`), so are the places.
pub struct ColumnPlaces {
    index: HashMap<String, usize>,
    order: KeyOrder,
    /// For each column, where its field is among the record's fields (`None`: it has none).
    at: Vec<Option<usize>>,
    /// Where among the record's fields the first that is none of the columns is, if one is.
    unknown: Option<usize>,
}

impl ColumnPlaces {
    /// For the columns named `names`, in order.
    pub fn new<'c>(names: impl IntoIterator<Item = &'c str>) -> Self {
        let index: HashMap<String, usize> =
            names.into_iter().enumerate().map(|(at, name)| (name.to_owned(), at)).collect();
        let at = vec![None; index.len()];
        ColumnPlaces { index, order: KeyOrder::default(), at, unknown: None }
    }

    /// Read one line of NDJSON into `fields` ([`fields_in_order`]) and place its fields among the
    /// columns. A name written twice is the first one's. Returns whether the places were found anew
    /// (the record's names are not those of the record before).
    pub fn read<'a, T: AsRef<[u8]> + ?Sized>(&mut self, line: &'a T, fields: &mut Vec<Field<'a>>) -> Result<bool> {
        if fields_in_order(line, &mut self.order, fields)? {
            return Ok(false);
        }
        self.at.fill(None);
        self.unknown = None;
        // Backwards, so that the first of a name written twice is the one kept.
        for (field, (name, _)) in fields.iter().enumerate().rev() {
            match self.index.get(name.as_ref()) {
                Some(&column) => self.at[column] = Some(field),
                None => self.unknown = Some(field),
            }
        }
        Ok(true)
    }

    /// Where the field of the column at `column` is among the record's fields.
    pub fn field_of(&self, column: usize) -> Option<usize> {
        self.at[column]
    }

    /// Where the record's first field that is none of the columns is, if it has one.
    pub fn unknown(&self) -> Option<usize> {
        self.unknown
    }
}

/// Read one JSON object's fields into `fields`, which it clears first.
fn scan<'a, T: AsRef<[u8]> + ?Sized>(
    line: &'a T,
    order: Option<&mut KeyOrder>,
    fields: &mut Vec<Field<'a>>,
) -> Result<bool> {
    fields.clear();
    let mut scanner = Scanner::new(line);
    let push = |field| fields.push(field);
    let same = match order {
        Some(order) => scanner.object_in_order(order, push),
        None => scanner.object(push).map(|()| false),
    };
    same.and_then(|same| scanner.finish().map(|()| same)).context("not a JSON object")
}

/// The records of a page of NDJSON: its non-empty lines (line breaks found with `memchr`'s SIMD
/// search, not byte by byte: a page is ~270 KB and every destination splits it).
pub fn lines(page: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = page;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            if !line.is_empty() {
                return Some(line);
            }
        }
        None
    })
}

/// Call `each` with every field name of one NDJSON record, checking the values without reading
/// them into anything; the names are expected in `order`, that of the record read with it before:
/// the records of a page share their names, which are then matched, not read (`json_scan::KeyOrder`).
pub fn keys<T: AsRef<[u8]> + ?Sized>(line: &T, order: &mut KeyOrder, mut each: impl FnMut(&str)) -> Result<()> {
    let mut scanner = Scanner::new(line);
    scanner.object_in_order(order, |(key, _)| each(&key)).and_then(|_| scanner.finish()).context("not a JSON object")
}

/// A JSON value as a column takes it.
#[derive(Debug, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Integer(i64),
    Real(f64),
    /// A string, unescaped.
    Text(Cow<'a, str>),
    /// An object or an array: its JSON text as written.
    Json(&'a str),
}

impl<'a> Scalar<'a> {
    /// Read `text` (one value's JSON text, as [`fields_in_order`] reads it) by its first character: a string
    /// is unescaped (borrowed when it holds no escape), a number parsed, an object or array left as
    /// the JSON text it is.
    pub fn of(text: &'a str) -> Result<Scalar<'a>> {
        Ok(match text.as_bytes().first() {
            Some(b'n') => Scalar::Null,
            Some(b't') => Scalar::Bool(true),
            Some(b'f') => Scalar::Bool(false),
            Some(b'"') => Scalar::Text(json_scan::unescape(text)?),
            Some(b'{' | b'[') => Scalar::Json(text),
            _ => match text.parse::<i64>() {
                Ok(integer) => Scalar::Integer(integer),
                Err(_) => Scalar::Real(text.parse::<f64>().with_context(|| format!("{text} is not a number"))?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's fields, read on their own.
    fn parse<T: AsRef<[u8]> + ?Sized>(line: &T) -> Result<Vec<Field<'_>>> {
        let mut fields = Vec::new();
        scan(line, None, &mut fields)?;
        Ok(fields)
    }

    /// The value of the first field named `name`.
    fn get<'a>(fields: &[Field<'a>], name: &str) -> Option<&'a str> {
        fields.iter().find(|(key, _)| key == name).map(|(_, value)| *value)
    }

    #[test]
    fn reads_fields_in_order_with_values_as_written() {
        let line = r#"{"id":7,"title":"a \"b\"","plain":"no escapes","weight":1.50,"author":{"id":1, "name":"Ann"},"labels":[],"x":null,"ok":true}"#;
        let record = parse(line).unwrap();
        let names: Vec<&str> = record.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["id", "title", "plain", "weight", "author", "labels", "x", "ok"]);
        let scalar = |name| Scalar::of(get(&record, name).unwrap()).unwrap();
        assert_eq!(scalar("id"), Scalar::Integer(7));
        assert_eq!(scalar("title"), Scalar::Text("a \"b\"".into()));
        assert_eq!(scalar("plain"), Scalar::Text(Cow::Borrowed("no escapes")));
        assert_eq!(scalar("weight"), Scalar::Real(1.5));
        assert_eq!(scalar("author"), Scalar::Json(r#"{"id":1, "name":"Ann"}"#));
        assert_eq!(scalar("labels"), Scalar::Json("[]"));
        assert_eq!(scalar("x"), Scalar::Null);
        assert_eq!(scalar("ok"), Scalar::Bool(true));
        assert!(get(&record, "missing").is_none());
    }

    #[test]
    fn records_parsed_in_order_are_the_records_and_say_when_their_names_repeat() {
        let lines = [r#"{"id":1,"t":"a"}"#, r#"{"id":2,"t":"b"}"#, r#"{"id":3,"u":"c"}"#, r#"{"id":4,"u":"d"}"#, "{}"];
        let mut order = KeyOrder::default();
        let mut sames = Vec::new();
        let mut fields = vec![(Cow::Borrowed("left over"), "1")];
        for line in lines {
            let same = fields_in_order(line, &mut order, &mut fields).unwrap();
            assert_eq!(fields, parse(line).unwrap(), "{line}");
            sames.push(same);
        }
        assert_eq!(sames, [false, true, false, true, false]);
        assert!(fields_in_order(r#"{"id":5,"u":}"#, &mut order, &mut fields).is_err());
    }

    #[test]
    fn lines_are_the_non_empty_ones() {
        let page = b"\n{\"a\":1}\n\n{\"b\":2}\n{\"c\":3}";
        let found: Vec<&[u8]> = lines(page).collect();
        assert_eq!(found, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n\n").count(), 0);
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_where_it_is() {
        let record = parse("{\"a\":\"é\",\"b\":\"字\"}".as_bytes()).unwrap();
        assert_eq!(get(&record, "b"), Some("\"字\""));
        let error = parse(b"{\"a\":\"ok\xff\"}".as_slice()).expect_err("refused");
        assert_eq!(format!("{error:#}"), "not a JSON object: a string that is not UTF-8 text at line 1 column 9");
        assert!(keys(b"{\"\xc3\":1}", &mut KeyOrder::default(), |_| {}).is_err());
    }

    #[test]
    fn escaped_keys_are_unescaped_and_bad_lines_refused() {
        let mut seen = Vec::new();
        keys(r#"{"a\u0062":1,"c":[1,{"d":2}]}"#, &mut KeyOrder::default(), |k| seen.push(k.to_owned())).unwrap();
        assert_eq!(seen, ["ab", "c"]);
        for bad in ["[1,2]", "{\"a\":1} trailing", "{\"a\":", "42"] {
            assert!(parse(bad).is_err(), "{bad}");
            assert!(keys(bad, &mut KeyOrder::default(), |_| {}).is_err(), "{bad}");
        }
    }
}
