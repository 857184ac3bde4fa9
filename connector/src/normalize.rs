//! Normalization: GitLab JSON records in, typed and projected NDJSON out.
//!
//! Each record field is written with the type its schema declares: date-times as RFC 3339 UTC with
//! milliseconds (GitLab sends git dates with the committer's offset), dates as `YYYY-MM-DD`, integers
//! as JSON integers (a numeric string becomes one), structs and lists as they came, absent as null.
//! A value that cannot take its declared type is an error naming the object, record, field and value:
//! never a silent null. Records are written straight into the page's one output buffer.
//!
//! Nothing is built that is not needed: records are read one at a time by `json_scan` (which checks
//! the JSON and finds a string's end 16 bytes at a time, in wasm too), each into a list of its
//! fields' names and JSON texts borrowed from the body, found by their position in the record before
//! (see `Lookup`); strings, structs and lists are copied through as GitLab wrote them, and only
//! dates, date-times and mistyped values are re-written.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use json_scan::{KeyOrder, Scanner, append, short_eq};
use serde_json::Value;

use crate::catalogue::{RecordField, Schema};
use crate::error::{ConnectorError, invalid};
use crate::types::FieldType;

/// Parse an RFC 3339 / ISO 8601 date-time with any offset; return it in UTC with milliseconds.
pub fn parse_date_time(text: &str) -> Option<String> {
    if is_utc_millis(text) {
        return Some(text.to_owned());
    }
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %z"))
        .ok()?;
    Some(parsed.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Whether `text` is already what [`parse_date_time`] writes, `YYYY-MM-DDTHH:MM:SS.mmmZ` (as GitLab
/// sends most date-times), with a real date and time: then it needs no parsing and no rewriting.
///
/// Three 8-byte words and no loop: it runs for every date-time of every record (three per issue),
/// and as loops over the places and chrono's date check it cost the plugin 3 % of a page.
fn is_utc_millis(text: &str) -> bool {
    // Each byte of `text` XOR the template's: a digit becomes its value (0-9), what must match
    // (`-`, `T`, `:`, `.`, `Z`) becomes 0.
    const TEMPLATE: &[u8; 24] = b"0000-00-00T00:00:00.000Z";
    const DIGITS: &[u8; 24] = b"\xff\xff\xff\xff\0\xff\xff\0\xff\xff\0\xff\xff\0\xff\xff\0\xff\xff\0\xff\xff\xff\0";
    let Ok(bytes) = <&[u8; 24]>::try_from(text.as_bytes()) else {
        return false;
    };
    let word = |of: &[u8; 24], at: usize| u64::from_le_bytes(of[at..at + 8].try_into().expect("8 bytes"));
    let mut values = [0u8; 24];
    for at in [0, 8, 16] {
        let x = word(bytes, at) ^ word(TEMPLATE, at);
        // Zero outside the digits, each byte's high half zero, and its low half at most 9 (adding 6
        // to a byte of at most 0x0f carries nothing into the next).
        const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const SIX: u64 = 0x0606_0606_0606_0606;
        if (x & (HIGH | !word(DIGITS, at))) | (x.wrapping_add(SIX) & HIGH) != 0 {
            return false;
        }
        values[at..at + 8].copy_from_slice(&x.to_le_bytes());
    }
    let number = |tens: usize| u32::from(values[tens]) * 10 + u32::from(values[tens + 1]);
    let year = number(0) * 100 + number(2);
    let (month, day) = (number(5), number(8));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 => 28 + u32::from(leap),
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    (1..=days).contains(&day) && number(11) < 24 && number(14) < 60 && number(17) < 60
}

/// Parse a `YYYY-MM-DD` date; return it unchanged when valid.
pub fn parse_date(text: &str) -> Option<String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| d.format("%Y-%m-%d").to_string())
}

/// The record fields a read returns: the selected ones (all when none are selected) plus the primary
/// key, in schema order. An unknown or filter-only field is an invalid-request error.
pub fn projection<'s>(schema: &'s Schema, selected: &[String]) -> Result<Vec<&'s RecordField>, ConnectorError> {
    if selected.is_empty() {
        return Ok(schema.record_fields.iter().collect());
    }
    let object = schema.spec.name;
    for name in selected {
        if schema.record_field(name).is_none() {
            let why = if schema.filters.contains_key(name.as_str()) {
                "is a filter, not a record field"
            } else {
                "is not a field of this object"
            };
            let known: Vec<&str> = schema.record_fields.iter().map(|f| f.name).collect();
            return Err(invalid(format!("'{name}' {why}; the fields of '{object}' are: {}", known.join(", "))));
        }
    }
    Ok(schema
        .record_fields
        .iter()
        .filter(|f| selected.iter().any(|s| s == f.name) || schema.spec.primary_key.contains(&f.name))
        .collect())
}

/// One GitLab record as it arrived: its fields in order, each with its JSON text, borrowed from the
/// page body (a name is owned only when GitLab wrote it with escapes).
type RawRecord<'a> = Vec<json_scan::Field<'a>>;

/// Where each wanted field sat in the last record: the records of a page share their key order, so a
/// field is found with one comparison, and searched for only when the order changes; with none when
/// the scanner found the record's names to be the last record's (`KeyOrder`).
struct Lookup {
    /// Per wanted field, its index in the last record, or [`Lookup::ABSENT`].
    positions: Vec<usize>,
}

impl Lookup {
    /// The position of a field the last record did not have.
    const ABSENT: usize = usize::MAX;

    fn new(fields: usize) -> Lookup {
        Lookup { positions: vec![0; fields] }
    }

    /// The JSON text of the `index`th wanted field, named `source` upstream, in `record`;
    /// `same_keys`: whether `record`'s field names are the last record's, in the same order (then
    /// every field is where it was, or as absent as it was).
    fn get<'a>(&mut self, record: &RawRecord<'a>, index: usize, source: &str, same_keys: bool) -> Option<&'a str> {
        let guess = self.positions[index];
        if same_keys {
            return record.get(guess).map(|(_, raw)| *raw);
        }
        if let Some((key, raw)) = record.get(guess)
            && short_eq(key.as_bytes(), source.as_bytes())
        {
            return Some(raw);
        }
        let found = record.iter().position(|(key, _)| short_eq(key.as_bytes(), source.as_bytes()));
        self.positions[index] = found.unwrap_or(Lookup::ABSENT);
        Some(record[found?].1)
    }
}

/// The raw value of `name` in `record`, by search (for messages).
fn field_of<'a>(record: &RawRecord<'a>, name: &str) -> Option<&'a str> {
    record.iter().find(|(key, _)| key == name).map(|(_, raw)| *raw)
}

/// What every record of a page is written with, worked out once per page.
struct PageShape<'s> {
    schema: &'s Schema,
    /// The fields to write, in order, each with what precedes its value: `{"name":` for the first,
    /// `,"name":` for the others.
    fields: Vec<(&'s RecordField, Prefix)>,
    /// The index in `fields` of the object's scope field, and the scope's id written as JSON, which
    /// fills that field when GitLab leaves it out.
    scope: Option<(usize, Vec<u8>)>,
    /// The index in `fields` of the object's cursor field, if it has one and it is read.
    cursor: Option<usize>,
}

impl<'s> PageShape<'s> {
    fn new(schema: &'s Schema, fields: &[&'s RecordField], scope_id: Option<i64>) -> PageShape<'s> {
        let prefixed = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let mut prefix = vec![if i == 0 { b'{' } else { b',' }];
                write_json(&mut prefix, &field.name);
                prefix.push(b':');
                (*field, Prefix::new(prefix))
            })
            .collect();
        PageShape {
            schema,
            fields: prefixed,
            scope: scope_id.and_then(|id| {
                let at = fields.iter().position(|f| schema.spec.scope_field == Some(f.name))?;
                Some((at, id.to_string().into_bytes()))
            }),
            cursor: schema.spec.cursor.as_ref().and_then(|c| fields.iter().position(|f| f.name == c.field)),
        }
    }
}

/// What precedes a field's value in a record (`,"name":`), kept in a block of a fixed size so that
/// it is written by one copy of the whole block, with no branch on its length (the bytes past it are
/// overwritten by what follows): natively a few vector moves instead of a call to `memcpy`; in wasm,
/// four `v128` loads and stores instead of a jump table on the length.
enum Prefix {
    Block {
        bytes: [u8; PREFIX_BLOCK],
        len: usize,
    },
    /// A name longer than a block (none of GitLab's is).
    Long(Vec<u8>),
}

/// The size of a prefix block: the longest of GitLab's field names (48 bytes) with its `,"":`.
const PREFIX_BLOCK: usize = 64;

impl Prefix {
    fn new(prefix: Vec<u8>) -> Prefix {
        let len = prefix.len();
        if len > PREFIX_BLOCK {
            return Prefix::Long(prefix);
        }
        let mut bytes = [0; PREFIX_BLOCK];
        bytes[..len].copy_from_slice(&prefix);
        Prefix::Block { bytes, len }
    }

    #[inline(always)]
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Prefix::Block { bytes, len } => {
                out.reserve(PREFIX_BLOCK);
                let at = out.len();
                // SAFETY: `reserve` left room for a whole block past the length; only the first
                // `len` bytes of it (`len <= PREFIX_BLOCK`), written by the copy, are added to it.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().add(at), PREFIX_BLOCK);
                    out.set_len(at + len);
                }
            }
            Prefix::Long(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// Write one GitLab record as one NDJSON line of the page's fields into `out`. Returns where the
/// record's normalized cursor value was written in `out`, when the page reads a cursor and the
/// record has a value for it. `line_breaks`: whether the page held any up to the end of this record
/// (a pretty-printed upstream), so that an object or a list may need compacting onto one line.
fn write_record(
    out: &mut Vec<u8>,
    page: &PageShape<'_>,
    lookup: &mut Lookup,
    record: &RawRecord<'_>,
    same_keys: bool,
    line_breaks: bool,
) -> Result<Option<Range<usize>>, ConnectorError> {
    let PageShape { schema, ref fields, ref scope, cursor } = *page;
    let mut cursor_at = None;
    if fields.is_empty() {
        out.push(b'{');
    }
    for (i, (field, prefix)) in fields.iter().enumerate() {
        prefix.write(out);
        let raw = lookup.get(record, i, field.source, same_keys).filter(|raw| !short_eq(raw.as_bytes(), b"null"));
        let Some(raw) = raw else {
            match scope {
                Some((at, id)) if *at == i => append(out, id),
                _ => append(out, b"null"),
            }
            continue;
        };
        let start = out.len();
        write_value(out, raw, field.field_type, line_breaks)
            .map_err(|expected| type_error(schema, record, field, raw, expected))?;
        if cursor == Some(i) {
            // A date-time cursor is written as a JSON string without escapes: its text is inside the quotes.
            let quoted = out[start] == b'"' && out.len() - start >= 2;
            cursor_at = Some(if quoted { start + 1..out.len() - 1 } else { start..out.len() });
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(cursor_at)
}

/// Write `raw` (GitLab's JSON text of one non-null value) as `field_type`, or say which type it
/// could not take. `line_breaks`: whether the page `raw` comes from has any up to `raw`'s end, so
/// that an object or a list may need compacting onto one line.
fn write_value(out: &mut Vec<u8>, raw: &str, field_type: FieldType, line_breaks: bool) -> Result<(), &'static str> {
    let compact = |raw| if line_breaks { compact(raw) } else { Cow::Borrowed(raw) };
    let first = raw.as_bytes()[0];
    match field_type {
        FieldType::Boolean => match raw {
            "true" | "\"true\"" => out.extend_from_slice(b"true"),
            "false" | "\"false\"" => out.extend_from_slice(b"false"),
            _ => return Err("a boolean"),
        },
        // GitLab's integers come as JSON integers, which the scanner has checked: a short run of digits
        // (no leading zero, at most 18 digits: within i64) is written as it came, neither parsed nor
        // formatted again.
        FieldType::Integer if is_plain_integer(raw) => append(out, raw.as_bytes()),
        FieldType::Integer => {
            let text = if first == b'"' { unquote(raw).ok_or("an integer")? } else { Cow::Borrowed(raw) };
            let integer = match text.trim().parse::<i64>() {
                Ok(i) => i,
                // A float that is a whole number (`12.0`) is an integer.
                Err(_) if first != b'"' => match raw.parse::<f64>() {
                    Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                    _ => return Err("an integer"),
                },
                Err(_) => return Err("an integer"),
            };
            out.extend_from_slice(integer.to_string().as_bytes());
        }
        FieldType::Number => match first {
            b'-' | b'0'..=b'9' => append(out, raw.as_bytes()),
            b'"' => {
                let number = unquote(raw).and_then(|t| t.trim().parse::<f64>().ok()).filter(|f| f.is_finite());
                out.extend_from_slice(number.ok_or("a number")?.to_string().as_bytes());
            }
            _ => return Err("a number"),
        },
        FieldType::String => match first {
            b'"' => append(out, raw.as_bytes()),
            // The table calls some of GitLab's numbers, flags and objects strings: keep their JSON text.
            _ => write_json(out, &compact(raw)),
        },
        FieldType::Date => {
            let text = if first == b'"' { unquote(raw) } else { None }.ok_or("a date (YYYY-MM-DD)")?;
            let date = parse_date(&text).or_else(|| parse_date_time(&text).map(|t| t[..10].to_owned()));
            write_json(out, &date.ok_or("a date (YYYY-MM-DD)")?);
        }
        FieldType::DateTime => {
            if raw.len() == 26 && first == b'"' && is_utc_millis(&raw[1..25]) {
                append(out, raw.as_bytes());
                return Ok(());
            }
            let text = if first == b'"' { unquote(raw) } else { None }.ok_or("an RFC 3339 date-time")?;
            write_json(out, &parse_date_time(&text).ok_or("an RFC 3339 date-time")?);
        }
        FieldType::Struct if first == b'{' => out.extend_from_slice(compact(raw).as_bytes()),
        FieldType::Struct => return Err("an object"),
        FieldType::List if first == b'[' => out.extend_from_slice(compact(raw).as_bytes()),
        FieldType::List => return Err("a list"),
    }
    Ok(())
}

/// Whether `raw` is `-?[0-9]{1,18}` with no leading zero (`-0` aside): an i64 written as i64s are.
fn is_plain_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw).as_bytes();
    (1..=18).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
        && raw != "-0"
}

/// The text of a JSON string literal, unescaped only when it holds escapes.
fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// `raw` without line breaks, so that a record stays on one NDJSON line (GitLab sends compact JSON;
/// a pretty-printed upstream is re-serialized).
fn compact(raw: &str) -> Cow<'_, str> {
    if !has_line_breaks(raw.as_bytes()) {
        return Cow::Borrowed(raw);
    }
    serde_json::from_str::<Value>(raw).map_or(Cow::Borrowed(raw), |v| Cow::Owned(v.to_string()))
}

/// Whether `bytes` hold a line break (JSON strings cannot: only the whitespace between tokens can).
/// `memchr` searches 16 bytes at a time (simd128 in the plugin); a byte loop cost 0.37 ms a page.
fn has_line_breaks(bytes: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', bytes).is_some()
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn type_error(
    schema: &Schema,
    record: &RawRecord<'_>,
    field: &RecordField,
    raw: &str,
    expected: &str,
) -> ConnectorError {
    let id = field_of(record, "id").unwrap_or("?");
    let shown: String = raw.chars().take(80).collect();
    ConnectorError::Upstream(format!(
        "{} {id}: field '{}' should be {expected}, but GitLab sent {shown}",
        schema.spec.name, field.name
    ))
}

/// Write a whole page body (a JSON array of records) and return (record count, highest cursor value).
///
/// Records are normalized as they are scanned, one at a time, into one reused field list: the page
/// is never held as records.
pub fn write_page(
    out: &mut Vec<u8>,
    schema: &Schema,
    fields: &[&RecordField],
    body: &[u8],
    scope_id: Option<i64>,
) -> Result<(u32, Option<String>), ConnectorError> {
    let shape = PageShape::new(schema, fields, scope_id);
    out.reserve(body.len());
    let not_records = |e: json_scan::Error| {
        ConnectorError::Upstream(format!("GitLab sent a body that is not a JSON array of objects: {e}"))
    };
    let mut lookup = Lookup::new(fields.len());
    let (mut count, mut high) = (0usize, None::<String>);
    let mut record: RawRecord<'_> = Vec::new();
    let mut order = KeyOrder::default();
    // The scanner checks that strings are UTF-8 as it reads them (the rest must be ASCII to be JSON),
    // with no pass over the whole body first.
    let mut scanner = Scanner::new(body);
    scanner.open_array().map_err(not_records)?;
    while scanner.next_element().map_err(not_records)? {
        let same_keys = scan_record(&mut scanner, &mut record, &mut order).map_err(not_records)?;
        // GitLab sends compact JSON: the scanner noting line breaks as it skips whitespace spares a
        // search of every object and list (or of the whole body, 4 % of the plugin's time).
        let written = write_record(out, &shape, &mut lookup, &record, same_keys, scanner.saw_line_breaks())?;
        if let Some(value) = written.map(|at| &out[at])
            && high.as_ref().is_none_or(|h| value > h.as_bytes())
        {
            high = Some(String::from_utf8_lossy(value).into_owned());
        }
        count += 1;
    }
    scanner.finish().map_err(not_records)?;
    let count = u32::try_from(count).map_err(|_| invalid("page too large"))?;
    Ok((count, high))
}

/// Read the next record of the page into `record` (emptied first), its names expected in `order`;
/// whether they were the record before's, in the same order.
#[inline(never)]
fn scan_record<'a>(
    scanner: &mut Scanner<'a>,
    record: &mut RawRecord<'a>,
    order: &mut KeyOrder,
) -> Result<bool, json_scan::Error> {
    record.clear();
    scanner.object_in_order(order, |field| record.push(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::schema;
    use serde_json::json;

    /// Normalize one record of `object` with `fields` (all when empty): the NDJSON line and the cursor.
    fn one(
        object: &str,
        fields: &[&str],
        record: Value,
        scope_id: Option<i64>,
    ) -> Result<(String, Option<String>), ConnectorError> {
        let schema = schema(object).unwrap();
        let selected: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        let fields = projection(schema, &selected).unwrap();
        let mut out = Vec::new();
        let body = serde_json::to_vec(&json!([record])).unwrap();
        let (count, high) = write_page(&mut out, schema, &fields, &body, scope_id)?;
        assert_eq!(count, 1);
        Ok((String::from_utf8(out).unwrap(), high))
    }

    #[test]
    fn a_page_is_its_records_normalized_one_by_one_whatever_their_shapes() {
        // Runs of records with the same names (found where the last record had them, without a
        // comparison), with fields left out, renamed, reordered, added, and a name with an escape.
        let records = [
            r#"{"id":1,"iid":1,"title":"a","state":"opened"}"#,
            r#"{"id":2,"iid":2,"title":"b","state":"closed"}"#,
            r#"{"id":3,"iid":3,"title":"c","state":"opened"}"#,
            r#"{"iid":4,"id":4,"state":"closed","title":"d"}"#,
            r#"{"iid":5,"id":5,"state":"closed","title":"e"}"#,
            r#"{"id":6,"iid":6,"state":"opened"}"#,
            r#"{"id":7,"iid":7,"state":"opened"}"#,
            r#"{"id":8,"iid":8,"stat":"opened","title":"h"}"#,
            r#"{"id":9,"iid":9,"stat":"opened","title":"i"}"#,
            r#"{"id":10,"iid":10,"\u0074itle":"j","state":"opened","closed_at":null,"web_url":"u"}"#,
            r#"{"id":11,"iid":11,"\u0074itle":"k","state":"opened","closed_at":null,"web_url":"v"}"#,
            r#"{"id":12,"iid":12,"title":"l","state":"opened","closed_at":null,"web_url":"w"}"#,
            r#"{"id":13,"iid":13,"title":"m","state":"opened","closed_at":null,"web_url":"x"}"#,
        ];
        let schema = schema("issue").unwrap();
        let fields = projection(schema, &[]).unwrap();
        let page = |records: &[&str]| {
            let mut out = Vec::new();
            let body = format!("[{}]", records.join(","));
            write_page(&mut out, schema, &fields, body.as_bytes(), Some(7)).unwrap();
            String::from_utf8(out).unwrap()
        };
        let one_by_one: String = records.iter().map(|record| page(&[record])).collect();
        assert_eq!(page(&records), one_by_one);
        let nulls =
            |field: &str| one_by_one.lines().filter(|line| line.contains(&format!(r#""{field}":null"#))).count();
        assert_eq!((nulls("title"), nulls("state")), (2, 2));
    }

    #[test]
    fn a_prefix_adds_exactly_its_bytes_whatever_its_length_and_the_room_left() {
        for len in [1, 2, 31, 63, 64, 65, 100] {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let prefix = Prefix::new(bytes.clone());
            assert_eq!(matches!(prefix, Prefix::Block { .. }), len <= PREFIX_BLOCK, "{len}");
            for room in [0, 1, len, 70] {
                let mut out = Vec::with_capacity(2 + room);
                out.extend_from_slice(b"xy");
                prefix.write(&mut out);
                prefix.write(&mut out);
                assert_eq!(out, [&b"xy"[..], &bytes, &bytes].concat(), "{len} bytes, {room} room");
            }
        }
    }

    #[test]
    fn date_times_become_utc_with_millis() {
        assert_eq!(parse_date_time("2024-03-05T12:12:13.123+02:00").unwrap(), "2024-03-05T10:12:13.123Z");
        assert_eq!(parse_date_time("2024-03-05T10:12:13Z").unwrap(), "2024-03-05T10:12:13.000Z");
        assert_eq!(parse_date_time("2012-09-20T09:06:12+03:00").unwrap(), "2012-09-20T06:06:12.000Z");
        assert!(parse_date_time("yesterday").is_none());
        // GitLab's own form passes as it is, when it is a real moment.
        assert_eq!(parse_date_time("2024-02-29T23:59:59.999Z").unwrap(), "2024-02-29T23:59:59.999Z");
        for unreal in ["2023-02-29T10:00:00.000Z", "2024-13-01T10:00:00.000Z", "2024-01-01T24:00:00.000Z"] {
            assert!(!is_utc_millis(unreal), "{unreal}");
            assert!(parse_date_time(unreal).is_none(), "{unreal}");
        }
    }

    /// What `is_utc_millis` must say: the shape, then chrono's word on the date and the time (which
    /// takes a leap second, `:60`; GitLab never sends one, and one is left to `parse_date_time`).
    fn utc_millis_by_chrono(text: &str) -> bool {
        text.len() == 24
            && text.ends_with('Z')
            && text.as_bytes().iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                10 => *b == b'T',
                13 | 16 => *b == b':',
                19 => *b == b'.',
                23 => *b == b'Z',
                _ => b.is_ascii_digit(),
            })
            && chrono::NaiveDateTime::parse_from_str(&text[..23], "%Y-%m-%dT%H:%M:%S%.3f").is_ok()
            && &text[17..19] < "60"
    }

    #[test]
    fn utc_millis_are_told_as_chrono_tells_them() {
        let mut texts = Vec::new();
        for year in [0, 1, 1900, 1999, 2000, 2023, 2024, 2100, 9999] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    texts.push(format!("{year:04}-{month:02}-{day:02}T23:59:59.999Z"));
                }
            }
        }
        for (hour, minute, second) in [(0, 0, 0), (24, 0, 0), (23, 60, 0), (23, 59, 60), (99, 99, 99)] {
            texts.push(format!("2024-02-29T{hour:02}:{minute:02}:{second:02}.000Z"));
        }
        // Every byte of a valid one changed to every other byte.
        let valid = "2024-02-29T10:11:12.123Z";
        for at in 0..valid.len() {
            for byte in 0..=255u8 {
                let mut bytes = valid.as_bytes().to_vec();
                bytes[at] = byte;
                texts.extend(String::from_utf8(bytes).ok());
            }
        }
        texts.extend(
            ["", "2024-02-29T10:11:12.123", "2024-02-29T10:11:12.123Z ", "2024-02-29 10:11:12.123Z"].map(String::from),
        );
        for text in &texts {
            assert_eq!(is_utc_millis(text), utc_millis_by_chrono(text), "{text:?}");
        }
        assert!(texts.iter().filter(|t| is_utc_millis(t)).count() > 300);
    }

    #[test]
    fn records_are_typed_and_projected() {
        let record = json!({"id": 7, "title": "Ünïcode 🚀 \"quoted\"\n", "updated_at": "2024-01-01T01:00:00.000+01:00", "upvotes": "3", "extra": 1});
        let (line, cursor) = one("issue", &["title", "updated_at", "upvotes"], record, Some(1)).unwrap();
        assert_eq!(
            line,
            "{\"id\":7,\"title\":\"Ünïcode 🚀 \\\"quoted\\\"\\n\",\"updated_at\":\"2024-01-01T00:00:00.000Z\",\"upvotes\":3}\n"
        );
        assert_eq!(cursor.as_deref(), Some("2024-01-01T00:00:00.000Z"));
    }

    #[test]
    fn every_type_is_normalized() {
        let record = json!({
            "id": 5.0,                                   // a whole float is an integer
            "confidential": "true",                      // a boolean as text
            "author": {"id": 1, "name": "A"},            // a struct, kept as it came
            "labels": ["a", "b"],                        // a list, kept as it came
            "time_stats": {"x": [1, 2]},
            "project_id": null,                          // the scope field, filled in
            "closed_at": "2024-01-01T00:00:00Z",
            "upvotes": "7",
        });
        let (line, _) =
            one("issue", &["confidential", "author", "labels", "project_id", "closed_at", "upvotes"], record, Some(42))
                .unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["id"], 5);
        assert_eq!(value["confidential"], true);
        assert_eq!(value["author"], json!({"id": 1, "name": "A"}));
        assert_eq!(value["labels"], json!(["a", "b"]));
        assert_eq!(value["project_id"], 42);
        assert_eq!(value["closed_at"], "2024-01-01T00:00:00.000Z");
        assert_eq!(value["upvotes"], 7);
        // A date-time where a date is declared becomes its UTC date.
        let mut out = Vec::new();
        write_value(&mut out, "\"2024-02-29T23:30:00-02:00\"", FieldType::Date, false).unwrap();
        write_value(&mut out, "\"2024-02-29\"", FieldType::Date, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"2024-03-01\"\"2024-02-29\"");
    }

    #[test]
    fn integers_are_written_as_i64s_are() {
        let integer = |raw: &str| {
            let mut out = Vec::new();
            write_value(&mut out, raw, FieldType::Integer, false).map(|()| String::from_utf8(out).unwrap())
        };
        for (raw, written) in [
            ("0", "0"),
            ("-0", "0"),
            ("42", "42"),
            ("-7", "-7"),
            ("123456789012345678", "123456789012345678"),
            ("9223372036854775807", "9223372036854775807"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("12.0", "12"),
            ("1e3", "1000"),
            ("\" 12 \"", "12"),
        ] {
            assert_eq!(integer(raw).as_deref(), Ok(written), "{raw}");
        }
        for raw in ["9223372036854775808", "1.5", "\"x\"", "true"] {
            assert_eq!(integer(raw), Err("an integer"), "{raw}");
        }
    }

    #[test]
    fn values_the_table_calls_strings_keep_their_json_text() {
        // `issue.milestone_id`... any string field receiving a number or an object.
        let schema = schema("issue").unwrap();
        let field = schema.record_fields.iter().find(|f| f.field_type == FieldType::String).unwrap();
        let mut out = Vec::new();
        write_value(&mut out, "12", field.field_type, false).unwrap();
        write_value(&mut out, "{\"a\":1}", field.field_type, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"12\"\"{\\\"a\\\":1}\"");
    }

    #[test]
    fn a_pretty_printed_struct_stays_on_one_line() {
        let body = b"[{\"id\":1,\"author\":{\n  \"id\": 3\n}}]";
        let issue = schema("issue").unwrap();
        let fields = projection(issue, &["author".into()]).unwrap();
        let mut out = Vec::new();
        write_page(&mut out, issue, &fields, body, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"author\":{\"id\":3},\"id\":1}\n");
    }

    #[test]
    fn escaped_keys_are_read_too() {
        let body = br#"[{"\u0069d":1,"title":"t"}]"#;
        let issue = schema("issue").unwrap();
        let fields = projection(issue, &["title".into()]).unwrap();
        let mut out = Vec::new();
        write_page(&mut out, issue, &fields, body, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":1,\"title\":\"t\"}\n");
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_where_it_breaks() {
        let issue = schema("issue").unwrap();
        let fields = projection(issue, &["title".into()]).unwrap();
        let mut out = Vec::new();
        write_page(&mut out, issue, &fields, "[{\"id\":1,\"title\":\"Ünïcode ✅\"}]".as_bytes(), None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":1,\"title\":\"Ünïcode ✅\"}\n");
        let err = write_page(&mut Vec::new(), issue, &fields, b"[{\"id\":1,\"title\":\"caf\xe9\"}]", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upstream error: GitLab sent a body that is not a JSON array of objects: \
             a string that is not UTF-8 text at line 1 column 22"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_not_a_null() {
        let err = one("issue", &["upvotes"], json!({"id": 9, "upvotes": "many"}), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upstream error: issue 9: field 'upvotes' should be an integer, but GitLab sent \"many\""
        );
        for (field, value) in
            [("author", json!("x")), ("labels", json!({})), ("confidential", json!(1)), ("created_at", json!("soon"))]
        {
            let err = one("issue", &[field], json!({"id": 1, field: value}), None).unwrap_err().to_string();
            assert!(err.contains(&format!("field '{field}' should be")), "{err}");
        }
    }

    #[test]
    fn unknown_and_filter_only_fields_cannot_be_selected() {
        let issue = schema("issue").unwrap();
        let err = projection(issue, &["search".into()]).unwrap_err().to_string();
        assert!(err.contains("'search' is a filter, not a record field"), "{err}");
        let err = projection(issue, &["colour".into()]).unwrap_err().to_string();
        assert!(err.contains("'colour' is not a field"), "{err}");
    }

    #[test]
    fn a_page_reports_its_highest_cursor() {
        let issue = schema("issue").unwrap();
        let fields = projection(issue, &[]).unwrap();
        let body = br#"[{"id":1,"updated_at":"2024-01-02T00:00:00Z"},{"id":2,"updated_at":"2024-03-01T00:00:00+05:00"},{"id":3,"updated_at":null}]"#;
        let mut out = Vec::new();
        let (count, high) = write_page(&mut out, issue, &fields, body, None).unwrap();
        assert_eq!(count, 3);
        assert_eq!(high.as_deref(), Some("2024-02-29T19:00:00.000Z"));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 3);
    }
}
