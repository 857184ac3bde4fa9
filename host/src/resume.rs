//! Where a partition's read starts: from its checkpoint and what the flow asks.
//!
//! ```text
//!  checkpoint: a read in progress, of the same selection and mode? ──yes──► resume from its page token
//!            │ no (none, or the flow changed: restart and say so)
//!            ▼
//!  mode full, or no cursor, or no watermark of this selection ──► read everything
//!  mode incremental with a watermark ──► add `CURSOR >= watermark - lookback`
//! ```
//!
//! The *selection* (object, scope, fields and filters, as canonical JSON) is saved in the checkpoint
//! with the watermark: a watermark belongs to the records of one selection, so a changed selection
//! (another filter, a new field) reads in full once. The watermark only moves when a read completes
//! (see [`crate::run`]); upserts make the lookback's overlap harmless.

use std::time::Duration;

use serde_json::json;

use crate::flow::Mode;
use crate::flow::filter::operator_symbol;
use crate::plan::{Cursor, Partition, scope_id};
use crate::sandbox::wit::{self, FieldType, Filter, FilterOperator};
use crate::state::Checkpoint;

/// How a read started, for the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Start {
    /// It went on from an interrupted read's checkpoint.
    pub resumed: bool,
    /// The cursor filter's value, when the read is incremental.
    pub incremental_since: Option<String>,
    /// For people: `resumed from checkpoint`, `incremental from T`, `full: object has no cursor`.
    pub note: String,
}

/// The first request of `partition`'s read, and how it starts; `checkpoint` is updated to describe
/// the read about to start (the caller saves it with the first page).
pub fn start(partition: &Partition, checkpoint: &mut Checkpoint, lookback: Duration) -> (wit::ReadRequest, Start) {
    let mut request = partition.request.clone();
    let selection = selection(&partition.request);
    let same_selection = checkpoint.selection.as_deref() == Some(selection.as_str());
    let mode = partition.mode.name();
    let incremental = |checkpoint: &Checkpoint| match (partition.mode, &partition.cursor, &checkpoint.watermark) {
        (Mode::Incremental, Some(cursor), Some(watermark)) => {
            since(watermark, cursor.field_type, lookback).map(|since| (cursor, since))
        }
        _ => None,
    };

    let mut restarted = false;
    if checkpoint.in_progress() {
        if same_selection && checkpoint.read_mode.as_deref() == Some(mode) {
            // The page token carries the interrupted request (its cursor filter included); the request
            // is rebuilt alike so that both agree.
            request.page_token.clone_from(&checkpoint.page_token);
            let since = incremental(checkpoint).map(|(cursor, since)| {
                add_cursor_filter(&mut request.filters, cursor, &since);
                since
            });
            let note = match &since {
                Some(since) => format!("resumed from checkpoint (incremental from {since})"),
                None => "resumed from checkpoint".to_owned(),
            };
            return (request, Start { resumed: true, incremental_since: since, note });
        }
        restarted = true;
    }
    checkpoint.page_token = None;
    checkpoint.read_high = None;
    checkpoint.dest_marker = None;
    let changed = !same_selection && checkpoint.selection.is_some();
    if !same_selection {
        checkpoint.watermark = None;
    }
    checkpoint.selection = Some(selection);
    checkpoint.read_mode = Some(mode.to_owned());

    let mut note = match (partition.mode, &partition.cursor, incremental(checkpoint)) {
        (Mode::Full, _, _) => "full".to_owned(),
        (Mode::Incremental, None, _) => "full: object has no cursor".to_owned(),
        (Mode::Incremental, Some(_), Some((cursor, since))) => {
            add_cursor_filter(&mut request.filters, cursor, &since);
            let note = format!("incremental from {since}");
            return (request, Start { resumed: false, incremental_since: Some(since), note });
        }
        (Mode::Incremental, Some(_), None) if changed => {
            "full: the flow's selection changed since the last read".to_owned()
        }
        (Mode::Incremental, Some(_), None) => "full: no watermark yet".to_owned(),
    };
    if restarted {
        note = format!("{note}; restarted: the flow changed since the interrupted read");
    }
    (request, Start { resumed: false, incremental_since: None, note })
}

/// Add `CURSOR >= since` to `filters`. A `>=` filter of the flow's own on the cursor is kept if it is
/// the later bound, and replaced otherwise: the upstream takes one lower bound per parameter.
fn add_cursor_filter(filters: &mut Vec<Filter>, cursor: &Cursor, since: &str) {
    let own =
        filters.iter().position(|f| f.field == cursor.field && f.operator == FilterOperator::GreaterThanOrEqualTo);
    match own {
        Some(index) => {
            let later = match (instant(&filters[index].values[0]), instant(since)) {
                (Some(own), Some(since)) => own >= since,
                _ => filters[index].values[0].as_str() >= since,
            };
            if !later {
                filters[index] = cursor_filter(cursor, since);
            }
        }
        None => filters.push(cursor_filter(cursor, since)),
    }
}

/// A date-time or a date (as its midnight UTC), to compare bounds written either way.
fn instant(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().ok().or_else(|| {
        let day: jiff::civil::Date = text.parse().ok()?;
        jiff::tz::TimeZone::UTC.to_timestamp(day.into()).ok()
    })
}

/// `FIELD >= value` on the cursor.
pub fn cursor_filter(cursor: &Cursor, value: &str) -> Filter {
    Filter {
        field: cursor.field.clone(),
        operator: FilterOperator::GreaterThanOrEqualTo,
        values: vec![value.to_owned()],
    }
}

/// A value of a cursor of `field_type`, to check that the plugin takes the cursor filter; none for a
/// type incremental reads cannot use.
pub fn sample_value(field_type: FieldType) -> Option<&'static str> {
    match field_type {
        FieldType::DateTime => Some("2000-01-01T00:00:00.000Z"),
        FieldType::Date => Some("2000-01-01"),
        FieldType::Integer | FieldType::Number => Some("0"),
        _ => None,
    }
}

/// Where an incremental read starts: `watermark` minus `lookback` (date-times to the millisecond in
/// UTC, dates to the day before when the lookback is under one; numbers as they are). None when the
/// watermark cannot be read as its type.
pub fn since(watermark: &str, field_type: FieldType, lookback: Duration) -> Option<String> {
    match field_type {
        FieldType::DateTime => {
            let at: jiff::Timestamp = watermark.parse().ok()?;
            let lookback = jiff::SignedDuration::try_from(lookback).ok()?;
            let since = at.checked_sub(lookback).ok()?;
            Some(since.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        }
        FieldType::Date => {
            let day: jiff::civil::Date = watermark.parse().ok()?;
            let days = lookback.as_secs().div_ceil(86_400).max(1);
            Some(day.checked_sub(jiff::Span::new().days(i64::try_from(days).ok()?)).ok()?.to_string())
        }
        FieldType::Integer | FieldType::Number => watermark.parse::<f64>().ok().map(|_| watermark.to_owned()),
        _ => None,
    }
}

/// What a read of `request` selects (object, scope, fields, filters), as canonical JSON.
pub fn selection(request: &wit::ReadRequest) -> String {
    let scope = scope_id(&request.scope);
    let filters: Vec<_> =
        request.filters.iter().map(|f| json!([f.field, operator_symbol(f.operator), f.values])).collect();
    json!({ "object": request.object, "scope": scope, "fields": request.fields, "filters": filters }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PartitionKey;

    fn partition(mode: Mode, cursor: bool) -> Partition {
        Partition {
            request: wit::ReadRequest {
                object: "issue".into(),
                scope: wit::Scope::Project("7".into()),
                fields: vec![],
                filters: vec![],
                page_size: 100,
                page_token: None,
            },
            label: "project acme/api".into(),
            key: PartitionKey { flow: "f".into(), object: "issue".into(), scope: "project-7".into() },
            mode,
            cursor: cursor.then(|| Cursor { field: "updated_at".into(), field_type: FieldType::DateTime }),
            flow_key: "objects[0]".into(),
            position: (0, 0),
        }
    }

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn incremental_reads_start_a_lookback_before_the_watermark() {
        let p = partition(Mode::Incremental, true);
        let mut checkpoint = Checkpoint {
            watermark: Some("2024-03-05T10:12:13.123Z".into()),
            selection: Some(selection(&p.request)),
            ..Checkpoint::default()
        };
        let (request, began) = start(&p, &mut checkpoint, FIVE_MINUTES);
        assert_eq!(began.incremental_since.as_deref(), Some("2024-03-05T10:07:13.123Z"));
        assert_eq!(began.note, "incremental from 2024-03-05T10:07:13.123Z");
        let filters: Vec<String> = request
            .filters
            .iter()
            .map(|f| format!("{} {} {:?}", f.field, operator_symbol(f.operator), f.values))
            .collect();
        assert_eq!(filters, [r#"updated_at >= ["2024-03-05T10:07:13.123Z"]"#]);
        assert_eq!(checkpoint.read_mode.as_deref(), Some("incremental"));
    }

    #[test]
    fn first_reads_objects_without_cursor_and_full_mode_read_everything() {
        let mut checkpoint = Checkpoint::default();
        let (request, began) = start(&partition(Mode::Incremental, true), &mut checkpoint, FIVE_MINUTES);
        assert_eq!((request.filters.len(), began.note.as_str()), (0, "full: no watermark yet"));
        let mut checkpoint = Checkpoint { watermark: Some("2024-01-01T00:00:00.000Z".into()), ..checkpoint };
        let (_, began) = start(&partition(Mode::Incremental, false), &mut checkpoint, FIVE_MINUTES);
        assert_eq!(began.note, "full: object has no cursor");
        let (request, began) = start(&partition(Mode::Full, true), &mut checkpoint, FIVE_MINUTES);
        assert_eq!((request.filters.len(), began.note.as_str()), (0, "full"));
    }

    #[test]
    fn an_interrupted_read_resumes_only_if_the_flow_is_the_same() {
        let p = partition(Mode::Incremental, true);
        let interrupted = Checkpoint {
            page_token: Some("/projects/7/issues?page=5".into()),
            read_high: Some("2024-05-01T00:00:00.000Z".into()),
            watermark: Some("2024-03-05T10:12:13.123Z".into()),
            dest_marker: Some("part:9".into()),
            selection: Some(selection(&p.request)),
            read_mode: Some("incremental".into()),
        };
        let mut checkpoint = interrupted.clone();
        let (request, began) = start(&p, &mut checkpoint, FIVE_MINUTES);
        assert!(began.resumed);
        assert_eq!(request.page_token.as_deref(), Some("/projects/7/issues?page=5"));
        assert_eq!(checkpoint, interrupted, "a resumed read keeps its progress");

        // Another mode: the interrupted read is not this one.
        let mut checkpoint = interrupted.clone();
        let (request, began) = start(&partition(Mode::Full, true), &mut checkpoint, FIVE_MINUTES);
        assert!(!began.resumed && request.page_token.is_none());
        assert_eq!(began.note, "full; restarted: the flow changed since the interrupted read");
        assert_eq!((checkpoint.read_high, checkpoint.dest_marker), (None, None));
        assert_eq!(checkpoint.watermark, interrupted.watermark, "same selection: the watermark still holds");

        // Another filter: neither the read in progress nor the watermark belong to it.
        let mut filtered = p.clone();
        filtered.request.filters.push(Filter {
            field: "state".into(),
            operator: FilterOperator::EqualTo,
            values: vec!["opened".into()],
        });
        let mut checkpoint = interrupted.clone();
        let (request, began) = start(&filtered, &mut checkpoint, FIVE_MINUTES);
        assert!(!began.resumed && request.page_token.is_none());
        assert!(began.note.starts_with("full: the flow's selection changed"), "{}", began.note);
        assert_eq!(checkpoint.watermark, None);
        assert_eq!(checkpoint.selection, Some(selection(&filtered.request)));
    }

    #[test]
    fn the_later_of_the_flows_own_bound_and_the_watermark_wins() {
        let cursor = Cursor { field: "updated_at".into(), field_type: FieldType::DateTime };
        let own = |value: &str| vec![cursor_filter(&cursor, value)];
        let mut filters = own("2030-01-01");
        add_cursor_filter(&mut filters, &cursor, "2024-03-05T10:07:13.123Z");
        assert_eq!(filters[0].values, ["2030-01-01"]);
        let mut filters = own("2020-01-01");
        add_cursor_filter(&mut filters, &cursor, "2024-03-05T10:07:13.123Z");
        assert_eq!((filters.len(), filters[0].values[0].as_str()), (1, "2024-03-05T10:07:13.123Z"));
    }

    #[test]
    fn since_subtracts_the_lookback_by_type() {
        let date_time = since("2024-03-05T00:01:00.000Z", FieldType::DateTime, FIVE_MINUTES);
        assert_eq!(date_time.as_deref(), Some("2024-03-04T23:56:00.000Z"));
        assert_eq!(since("2024-03-05", FieldType::Date, FIVE_MINUTES).as_deref(), Some("2024-03-04"));
        assert_eq!(since("42", FieldType::Integer, FIVE_MINUTES).as_deref(), Some("42"));
        assert_eq!(since("yesterday", FieldType::DateTime, FIVE_MINUTES), None);
    }
}
