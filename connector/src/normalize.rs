//! Normalization: GitLab JSON records in, typed and projected NDJSON out.
//!
//! Each record field is written with the type its schema declares: date-times as RFC 3339 UTC with
//! milliseconds (GitLab sends git dates with the committer's offset), dates as `YYYY-MM-DD`, integers
//! as JSON integers (a numeric string becomes one), structs and lists as they came, absent as null.
//! A value that cannot take its declared type is an error naming the object, record, field and value:
//! never a silent null. Records are written straight into the page's one output buffer.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::catalogue::{RecordField, Schema};
use crate::error::{ConnectorError, invalid};
use crate::types::FieldType;

/// Parse an RFC 3339 / ISO 8601 date-time with any offset; return it in UTC with milliseconds.
pub fn parse_date_time(text: &str) -> Option<String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %z"))
        .ok()?;
    Some(parsed.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Millis, true))
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
            let why = if schema.filters.contains_key(name) {
                "is a filter, not a record field"
            } else {
                "is not a field of this object"
            };
            let known: Vec<&str> = schema.record_fields.iter().map(|f| f.name.as_str()).collect();
            return Err(invalid(format!("'{name}' {why}; the fields of '{object}' are: {}", known.join(", "))));
        }
    }
    Ok(schema
        .record_fields
        .iter()
        .filter(|f| selected.contains(&f.name) || schema.spec.primary_key.contains(&f.name.as_str()))
        .collect())
}

/// Write one GitLab record as one NDJSON line of `fields` into `out`.
///
/// `scope_id` fills the object's scope field when GitLab leaves it out. Returns the record's
/// normalized cursor value, when the object has a cursor and the record a value for it.
pub fn write_record(
    out: &mut Vec<u8>,
    schema: &Schema,
    fields: &[&RecordField],
    record: &Map<String, Value>,
    scope_id: Option<i64>,
) -> Result<Option<String>, ConnectorError> {
    let cursor_field = schema.spec.cursor.as_ref().map(|c| c.field);
    let mut cursor = None;
    out.push(b'{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, &Value::from(field.name.as_str()));
        out.push(b':');
        let raw = match record.get(&field.source) {
            None if schema.spec.scope_field == Some(field.name.as_str()) => scope_id.map(Value::from),
            other => other.cloned(),
        };
        let value = normalize(raw.unwrap_or(Value::Null), field.field_type)
            .map_err(|expected| type_error(schema, record, field, expected))?;
        if cursor_field == Some(field.name.as_str())
            && let Value::String(text) = &value
        {
            cursor = Some(text.clone());
        }
        write_json(out, &value);
    }
    out.extend_from_slice(b"}\n");
    Ok(cursor)
}

fn write_json(out: &mut Vec<u8>, value: &Value) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The value in its declared type, or the name of the type it could not take.
fn normalize(value: Value, field_type: FieldType) -> Result<Value, &'static str> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match field_type {
        FieldType::Boolean => match value {
            Value::Bool(_) => Ok(value),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err("a boolean"),
        },
        FieldType::Integer => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                _ => Err("an integer"),
            },
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).map_err(|_| "an integer"),
            _ => Err("an integer"),
        },
        FieldType::Number => match &value {
            Value::Number(_) => Ok(value),
            Value::String(s) => {
                s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).ok_or("a number")
            }
            _ => Err("a number"),
        },
        FieldType::String => match value {
            Value::String(_) => Ok(value),
            Value::Bool(_) | Value::Number(_) => Ok(Value::String(value.to_string())),
            // The table calls some of GitLab's objects strings; keep them whole, as JSON text.
            Value::Array(_) | Value::Object(_) => Ok(Value::String(value.to_string())),
            Value::Null => Ok(Value::Null),
        },
        FieldType::Date => match &value {
            Value::String(s) => parse_date(s)
                .or_else(|| parse_date_time(s).map(|t| t[..10].to_owned()))
                .map(Value::String)
                .ok_or("a date (YYYY-MM-DD)"),
            _ => Err("a date (YYYY-MM-DD)"),
        },
        FieldType::DateTime => match &value {
            Value::String(s) => parse_date_time(s).map(Value::String).ok_or("an RFC 3339 date-time"),
            _ => Err("an RFC 3339 date-time"),
        },
        FieldType::Struct => match value {
            Value::Object(_) => Ok(value),
            _ => Err("an object"),
        },
        FieldType::List => match value {
            Value::Array(_) => Ok(value),
            _ => Err("a list"),
        },
    }
}

fn type_error(schema: &Schema, record: &Map<String, Value>, field: &RecordField, expected: &str) -> ConnectorError {
    let id = record.get("id").map_or_else(|| "?".to_owned(), Value::to_string);
    let value = record.get(&field.source).map_or_else(String::new, Value::to_string);
    let shown: String = value.chars().take(80).collect();
    ConnectorError::Upstream(format!(
        "{} {id}: field '{}' should be {expected}, but GitLab sent {shown}",
        schema.spec.name, field.name
    ))
}

/// Write a whole page body (a JSON array of records) and return (record count, highest cursor value).
pub fn write_page(
    out: &mut Vec<u8>,
    schema: &Schema,
    fields: &[&RecordField],
    body: &[u8],
    scope_id: Option<i64>,
) -> Result<(u32, Option<String>), ConnectorError> {
    let records: Vec<Map<String, Value>> = serde_json::from_slice(body).map_err(|e| {
        ConnectorError::Upstream(format!("GitLab sent a body that is not a JSON array of objects: {e}"))
    })?;
    let mut high: Option<String> = None;
    for record in &records {
        if let Some(value) = write_record(out, schema, fields, record, scope_id)?
            && high.as_ref().is_none_or(|h| value > *h)
        {
            high = Some(value);
        }
    }
    let count = u32::try_from(records.len()).map_err(|_| invalid("page too large"))?;
    Ok((count, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::schema;
    use serde_json::json;

    #[test]
    fn date_times_become_utc_with_millis() {
        assert_eq!(parse_date_time("2024-03-05T12:12:13.123+02:00").unwrap(), "2024-03-05T10:12:13.123Z");
        assert_eq!(parse_date_time("2024-03-05T10:12:13Z").unwrap(), "2024-03-05T10:12:13.000Z");
        assert_eq!(parse_date_time("2012-09-20T09:06:12+03:00").unwrap(), "2012-09-20T06:06:12.000Z");
        assert!(parse_date_time("yesterday").is_none());
    }

    #[test]
    fn records_are_typed_and_projected() {
        let issue = schema("issue").unwrap();
        let fields = projection(issue, &["title".into(), "updated_at".into(), "upvotes".into()]).unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "title", "updated_at", "upvotes"]);
        let record = json!({"id": 7, "title": "Ünïcode 🚀", "updated_at": "2024-01-01T01:00:00.000+01:00", "upvotes": "3", "extra": 1});
        let mut out = Vec::new();
        let cursor = write_record(&mut out, issue, &fields, record.as_object().unwrap(), Some(1)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\":7,\"title\":\"Ünïcode 🚀\",\"updated_at\":\"2024-01-01T00:00:00.000Z\",\"upvotes\":3}\n"
        );
        assert_eq!(cursor.as_deref(), Some("2024-01-01T00:00:00.000Z"));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_not_a_null() {
        let issue = schema("issue").unwrap();
        let fields = projection(issue, &["upvotes".into()]).unwrap();
        let record = json!({"id": 9, "upvotes": "many"});
        let err = write_record(&mut Vec::new(), issue, &fields, record.as_object().unwrap(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "upstream error: issue 9: field 'upvotes' should be an integer, but GitLab sent \"many\""
        );
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
