//! Every filter row of the AppFlow table (and of our own table), pushed down: for each row, the
//! request the connector plans carries exactly the GitLab query parameters the row's kind calls
//! for, and nothing else but the endpoint's own parameters and `per_page`.
//!
//! The rule per row kind is written out here, independently of `filters.rs`:
//! - `EQUAL_TO`: `field=value`; for GitLab's array parameters (`iids`, `user_ids`, `skip_users`,
//!   `skip_groups`) `field[]=` once per comma-separated value;
//! - `GREATER_THAN_OR_EQUAL_TO`: the row is GitLab's own lower-bound parameter (`since`,
//!   `*_after`): `field=value`;
//! - `LESS_THAN_OR_EQUAL_TO`: the upper-bound parameter (`until`, `*_before`): `field=value`;
//! - `BETWEEN`: `since_until` sends `since` and `until`; `X_before_after` sends `X_after` and
//!   `X_before`.
//!
//! Values are one sample per type (date-times are sent in UTC with milliseconds).

use gitlab::catalogue::{OBJECTS, ObjectSpec, schema};
use gitlab::request::plan;
use gitlab::types::{Connection, FieldType, Filter, FilterOperator, ReadRequest, Scope, ScopeKind};
use percent_encoding::percent_decode_str;

const APPFLOW: &str = include_str!("../src/catalogue/appflow-fields.tsv");
const BEYOND: &str = include_str!("../src/catalogue/beyond-fields.tsv");

/// GitLab's array parameters.
const ARRAYS: &[&str] = &["iids", "user_ids", "skip_users", "skip_groups"];

/// A sample date-time with an offset, and how GitLab receives it.
const DATE_TIME: (&str, &str) = ("2024-02-29T12:34:56+02:00", "2024-02-29T10:34:56.000Z");
/// The low bound of BETWEEN rows, and how GitLab receives it.
const LOW: (&str, &str) = ("2024-01-01", "2024-01-01T00:00:00.000Z");

/// One filter row: (object label, field, type, operator).
struct Row<'t> {
    label: &'t str,
    field: &'t str,
    operator: FilterOperator,
}

fn filter_rows(table: &str) -> Vec<Row<'_>> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let operator = FilterOperator::from_table(cells.get(3)?)?;
            Some(Row { label: cells[0], field: cells[1], operator })
        })
        .collect()
}

fn spec(label: &str) -> &'static ObjectSpec {
    OBJECTS.iter().find(|o| o.label == label).unwrap_or_else(|| panic!("no object labelled {label}"))
}

/// The scope of the object's natural (first) endpoint.
fn natural_scope(spec: &ObjectSpec) -> Scope {
    match spec.endpoints[0].scope {
        ScopeKind::Project => Scope::Project("42".into()),
        ScopeKind::Group => Scope::Group("7".into()),
        ScopeKind::Instance => Scope::Instance,
    }
}

/// The value sent for a filter of `field_type`, and the values GitLab must receive for it.
fn sample(field: &str, field_type: FieldType) -> (String, Vec<String>) {
    match field_type {
        FieldType::Boolean => ("true".into(), vec!["true".into()]),
        FieldType::Integer if ARRAYS.contains(&field) => ("3,5".into(), vec!["3".into(), "5".into()]),
        FieldType::Integer => ("7".into(), vec!["7".into()]),
        FieldType::Number => ("2.5".into(), vec!["2.5".into()]),
        FieldType::Date => ("2024-02-29".into(), vec!["2024-02-29".into()]),
        FieldType::DateTime => (DATE_TIME.0.into(), vec![DATE_TIME.1.into()]),
        FieldType::String | FieldType::Struct | FieldType::List => ("ünï cødé/x&y".into(), vec!["ünï cødé/x&y".into()]),
    }
}

/// The GitLab parameters a row must become, by the rules of the module docs.
fn expected_params(row: &Row<'_>, field_type: FieldType) -> (Vec<String>, Vec<(String, String)>) {
    let field = row.field;
    match row.operator {
        FilterOperator::EqualTo => {
            let (value, sent) = sample(field, field_type);
            let key = if ARRAYS.contains(&field) { format!("{field}[]") } else { field.to_owned() };
            (vec![value], sent.into_iter().map(|v| (key.clone(), v)).collect())
        }
        FilterOperator::GreaterThanOrEqualTo => {
            assert!(field == "since" || field.ends_with("_after"), "{}.{field}: not a lower bound", row.label);
            let (value, sent) = sample(field, field_type);
            (vec![value], vec![(field.to_owned(), sent[0].clone())])
        }
        FilterOperator::LessThanOrEqualTo => {
            assert!(field == "until" || field.ends_with("_before"), "{}.{field}: not an upper bound", row.label);
            let (value, sent) = sample(field, field_type);
            (vec![value], vec![(field.to_owned(), sent[0].clone())])
        }
        FilterOperator::Between => {
            let (low, high) = if field == "since_until" {
                ("since".to_owned(), "until".to_owned())
            } else {
                let stem = field.strip_suffix("_before_after").unwrap_or_else(|| panic!("{field}: not a range row"));
                (format!("{stem}_after"), format!("{stem}_before"))
            };
            (vec![LOW.0.into(), DATE_TIME.0.into()], vec![(low, LOW.1.into()), (high, DATE_TIME.1.into())])
        }
    }
}

/// The decoded query pairs of a URL.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn request(spec: &ObjectSpec, filters: Vec<Filter>) -> ReadRequest {
    ReadRequest {
        object: spec.name.into(),
        scope: natural_scope(spec),
        fields: vec![],
        filters,
        page_size: 100,
        page_token: None,
    }
}

fn connection() -> Connection {
    Connection { base_url: "https://gitlab.example.com".into(), options: vec![] }
}

/// Checks every filter row of `table`; returns how many there were.
fn check_table(table: &str) -> usize {
    let rows = filter_rows(table);
    for row in &rows {
        let spec = spec(row.label);
        let schema = schema(spec.name).unwrap();
        let filter = &schema.filters[row.field];
        let (values, params) = match filter.values.last() {
            // A filter GitLab takes from a fixed set is sent one of its values.
            Some(value) => (vec![(*value).to_owned()], vec![(row.field.to_owned(), (*value).to_owned())]),
            None => expected_params(row, filter.field_type),
        };
        let filter = Filter { field: row.field.into(), operator: row.operator, values };
        let planned = plan(&connection(), &request(spec, vec![filter]))
            .unwrap_or_else(|e| panic!("{}.{} {:?}: {e}", spec.name, row.field, row.operator));

        let endpoint = &spec.endpoints[0];
        let reference = match natural_scope(spec) {
            Scope::Project(r) | Scope::Group(r) => r,
            Scope::Instance => String::new(),
        };
        let path = endpoint.path.replace("{id}", &reference);
        assert!(
            planned.url.starts_with(&format!("https://gitlab.example.com/api/v4{path}?")),
            "{}: {}",
            spec.name,
            planned.url
        );
        // The endpoint's own parameters, except one the filter sets itself.
        let mut expected: Vec<(String, String)> = endpoint
            .params
            .iter()
            .filter(|(k, _)| !params.iter().any(|(p, _)| p == k))
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // Keyset pagination is dropped when the request orders the list itself.
        if row.field != "order_by" && row.field != "sort" {
            expected.extend(endpoint.keyset.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        }
        expected.extend(params);
        expected.push(("per_page".into(), "100".into()));
        assert_eq!(query_pairs(&planned.url), expected, "{}.{} {:?}", spec.name, row.field, row.operator);
    }
    rows.len()
}

#[test]
fn every_appflow_filter_row_becomes_exactly_its_gitlab_parameters() {
    // The AppFlow page lists 140 filterable rows (141 lines with the header).
    assert_eq!(check_table(APPFLOW), 140);
}

#[test]
fn every_filter_row_beyond_appflow_becomes_exactly_its_gitlab_parameters() {
    // Deployments and environments (10), issue and merge request notes (5 each), approvals (4).
    assert_eq!(check_table(BEYOND), 24);
}

#[test]
fn an_operator_a_row_does_not_allow_is_refused_naming_the_allowed_ones() {
    let all = [
        FilterOperator::EqualTo,
        FilterOperator::GreaterThanOrEqualTo,
        FilterOperator::LessThanOrEqualTo,
        FilterOperator::Between,
    ];
    for row in filter_rows(APPFLOW).iter().chain(&filter_rows(BEYOND)) {
        let spec = spec(row.label);
        let allowed = &schema(spec.name).unwrap().filters[row.field].operators;
        for operator in all.iter().filter(|op| !allowed.contains(op)) {
            let values =
                if *operator == FilterOperator::Between { vec!["1".into(), "2".into()] } else { vec!["1".into()] };
            let filter = Filter { field: row.field.into(), operator: *operator, values };
            let err = plan(&connection(), &request(spec, vec![filter])).unwrap_err().to_string();
            let expected =
                format!("filter on '{}.{}' does not accept '{}'; allowed: ", spec.name, row.field, operator.symbol());
            assert!(err.contains(&expected), "{err}");
        }
    }
}

#[test]
fn a_filter_gitlab_takes_from_a_fixed_set_takes_each_of_its_values_and_nothing_else() {
    let mut checked = 0;
    for row in filter_rows(APPFLOW).iter().chain(&filter_rows(BEYOND)) {
        let spec = spec(row.label);
        let allowed = &schema(spec.name).unwrap().filters[row.field].values;
        if allowed.is_empty() {
            continue;
        }
        for value in allowed.iter().copied().chain(["bogus"]) {
            let filter = Filter { field: row.field.into(), operator: row.operator, values: vec![value.into()] };
            let planned = plan(&connection(), &request(spec, vec![filter]));
            if value == "bogus" {
                let err = planned.unwrap_err().to_string();
                let expected = format!(
                    "filter '{}.{}': GitLab does not accept 'bogus'; allowed: {}",
                    spec.name,
                    row.field,
                    allowed.join(", ")
                );
                assert!(err.ends_with(&expected), "{err}");
            } else {
                let url = planned.unwrap_or_else(|e| panic!("{}.{} = {value}: {e}", spec.name, row.field)).url;
                assert!(query_pairs(&url).contains(&(row.field.to_owned(), value.to_owned())), "{url}");
            }
        }
        checked += 1;
    }
    // `sort` on 8 objects; `order_by` on 5; `state` on 4; `scope` on 2; `visibility`, `order`, `view`, `wip`
    // on one each.
    assert_eq!(checked, 23);
}

#[test]
fn a_value_of_the_wrong_type_is_refused_before_any_request() {
    let wrong = |t: FieldType| match t {
        FieldType::Boolean => Some("maybe"),
        FieldType::Integer => Some("seven"),
        FieldType::DateTime => Some("last tuesday"),
        _ => None,
    };
    let mut checked = 0;
    for row in filter_rows(APPFLOW).iter().chain(&filter_rows(BEYOND)) {
        let spec = spec(row.label);
        let field_type = schema(spec.name).unwrap().filters[row.field].field_type;
        let Some(bad) = wrong(field_type) else { continue };
        let values =
            if row.operator == FilterOperator::Between { vec![bad.into(), bad.into()] } else { vec![bad.into()] };
        let filter = Filter { field: row.field.into(), operator: row.operator, values };
        let err = plan(&connection(), &request(spec, vec![filter])).unwrap_err().to_string();
        assert!(err.contains(&format!("filter '{}.{}': '{bad}' is not", spec.name, row.field)), "{err}");
        checked += 1;
    }
    // Every boolean, integer and date-time filter row: AppFlow's 80, and 13 date-time rows of ours.
    assert_eq!(checked, 93);
}

#[test]
fn an_incremental_read_sends_the_cursor_parameter() {
    for spec in OBJECTS.iter().filter(|o| o.cursor.is_some()) {
        let cursor = spec.cursor.as_ref().unwrap();
        let filter = Filter {
            field: cursor.field.into(),
            operator: FilterOperator::GreaterThanOrEqualTo,
            values: vec![DATE_TIME.0.into()],
        };
        let planned = plan(&connection(), &request(spec, vec![filter])).unwrap();
        let pairs = query_pairs(&planned.url);
        assert!(pairs.contains(&(cursor.after_param.to_owned(), DATE_TIME.1.to_owned())), "{}: {pairs:?}", spec.name);
    }
}
