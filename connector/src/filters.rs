//! Filters: check each against the object's schema, then push it down as GitLab query parameters.
//!
//! The mapping is generic, driven by the field's name and operator:
//! - `=` sends `field=value` (list parameters such as `iids` send `iids[]=` once per comma-separated value);
//! - `>=` / `<=` rows are GitLab's own `*_after` / `*_before` / `since` / `until` parameters; on the
//!   object's cursor field, `>=` becomes the cursor's parameter (`updated_at >=` → `updated_after`);
//! - `between` on `X_before_after` sends `X_after` and `X_before`; on `since_until`, `since` and `until`.
//!
//! Every value is checked against the field's type, and against the values GitLab accepts where it
//! accepts a fixed set (`state`, `sort`...), before any request is sent; date-times are sent in RFC
//! 3339 UTC.

use crate::catalogue::{FilterSpec, Schema};
use crate::error::{ConnectorError, invalid};
use crate::normalize::{parse_date, parse_date_time};
use crate::types::{FieldType, Filter, FilterOperator};

/// GitLab parameters that take an array (`name[]=a&name[]=b`).
const ARRAY_PARAMS: &[&str] = &["iids", "user_ids", "skip_users", "skip_groups"];

/// Check `filters` against `schema` and return the query parameters they become, in order.
pub fn to_query(schema: &Schema, filters: &[Filter]) -> Result<Vec<(String, String)>, ConnectorError> {
    let mut query = Vec::new();
    for filter in filters {
        push_filter(schema, filter, &mut query)?;
    }
    Ok(query)
}

fn push_filter(schema: &Schema, filter: &Filter, query: &mut Vec<(String, String)>) -> Result<(), ConnectorError> {
    let object = schema.spec.name;
    let field = filter.field.as_str();
    let Some(FilterSpec { field_type, operators, values: allowed_values }) = schema.filters.get(field) else {
        let mut filterable: Vec<&str> = schema.filters.keys().copied().collect();
        filterable.sort_unstable();
        let what = if schema.record_field(field).is_some() {
            format!("field '{field}' of object '{object}' cannot be filtered on{}", range_filters(schema, field))
        } else {
            format!("object '{object}' has no field '{field}'")
        };
        return Err(invalid(format!("{what}; filterable fields: {}", filterable.join(", "))));
    };
    if !operators.contains(&filter.operator) {
        let allowed: Vec<&str> = operators.iter().map(|op| op.symbol()).collect();
        return Err(invalid(format!(
            "filter on '{object}.{field}' does not accept '{}'; allowed: {}{}",
            filter.operator.symbol(),
            allowed.join(", "),
            range_filters(schema, field)
        )));
    }
    let expected_values = if filter.operator == FilterOperator::Between { 2 } else { 1 };
    if filter.values.len() != expected_values {
        return Err(invalid(format!(
            "filter '{object}.{field} {}' takes {expected_values} value(s), got {}",
            filter.operator.symbol(),
            filter.values.len()
        )));
    }
    let values =
        filter.values.iter().map(|v| check_value(object, field, *field_type, v)).collect::<Result<Vec<_>, _>>()?;
    if let Some(unknown) = values.iter().find(|v| !allowed_values.is_empty() && !allowed_values.contains(&v.as_str())) {
        return Err(invalid(format!(
            "filter '{object}.{field}': GitLab does not accept '{unknown}'; allowed: {}",
            allowed_values.join(", ")
        )));
    }

    match filter.operator {
        FilterOperator::EqualTo if ARRAY_PARAMS.contains(&field) => {
            for item in values[0].split(',') {
                query.push((format!("{field}[]"), item.trim().to_owned()));
            }
        }
        FilterOperator::EqualTo | FilterOperator::LessThanOrEqualTo => {
            query.push((field.to_owned(), values[0].clone()));
        }
        FilterOperator::GreaterThanOrEqualTo => {
            let param = match &schema.spec.cursor {
                Some(cursor) if cursor.field == field => cursor.after_param,
                _ => field,
            };
            query.push((param.to_owned(), values[0].clone()));
        }
        FilterOperator::Between => {
            let (after, before) = between_params(field)
                .ok_or_else(|| invalid(format!("filter '{object}.{field}' has no GitLab range parameters")))?;
            if matches!(field_type, FieldType::DateTime | FieldType::Date) && values[0] > values[1] {
                return Err(invalid(format!(
                    "filter '{object}.{field} between' has its low bound {} after its high bound {}: write the earlier \
                     one first",
                    values[0], values[1]
                )));
            }
            query.push((after, values[0].clone()));
            query.push((before, values[1].clone()));
        }
    }
    Ok(())
}

/// For a time field filtered through GitLab's range parameters (`created_at`: `created_after`,
/// `created_before`, `created_before_after`), the filters to use instead, each with its operators;
/// else nothing.
fn range_filters(schema: &Schema, field: &str) -> String {
    let Some(stem) = field.strip_suffix("_at") else { return String::new() };
    let ranges: Vec<String> = ["after", "before", "before_after"]
        .iter()
        .filter_map(|end| {
            let name = format!("{stem}_{end}");
            let spec = schema.filters.get(name.as_str())?;
            let operators: Vec<&str> = spec.operators.iter().map(|op| op.symbol()).collect();
            Some(format!("'{name}' ({})", operators.join(", ")))
        })
        .collect();
    if ranges.is_empty() { String::new() } else { format!("; for a range of {field}, filter on {}", ranges.join(", ")) }
}

/// The (low, high) GitLab parameters of a BETWEEN row.
fn between_params(field: &str) -> Option<(String, String)> {
    if field == "since_until" {
        return Some(("since".into(), "until".into()));
    }
    let stem = field.strip_suffix("_before_after")?;
    Some((format!("{stem}_after"), format!("{stem}_before")))
}

/// Check one value against the field's type; return it as GitLab should receive it.
fn check_value(object: &str, field: &str, field_type: FieldType, value: &str) -> Result<String, ConnectorError> {
    let value = value.trim();
    let refuse = |expected: &str| invalid(format!("filter '{object}.{field}': '{value}' is not {expected}"));
    match field_type {
        FieldType::Boolean => match value {
            "true" | "false" => Ok(value.to_owned()),
            _ => Err(refuse("a boolean (true or false)")),
        },
        FieldType::Integer => {
            let all_integers = !value.is_empty() && value.split(',').all(|v| v.trim().parse::<i64>().is_ok());
            if all_integers && (ARRAY_PARAMS.contains(&field) || !value.contains(',')) {
                Ok(value.to_owned())
            } else {
                Err(refuse("an integer"))
            }
        }
        FieldType::Number => value.parse::<f64>().map(|_| value.to_owned()).map_err(|_| refuse("a number")),
        FieldType::DateTime => parse_date_time(value)
            .or_else(|| parse_date(value).map(|d| format!("{d}T00:00:00.000Z")))
            .ok_or_else(|| refuse("a date-time (RFC 3339, e.g. 2024-01-31T12:00:00Z, or a date 2024-01-31)")),
        FieldType::Date => parse_date(value).ok_or_else(|| refuse("a date (YYYY-MM-DD)")),
        FieldType::String | FieldType::Struct | FieldType::List => {
            if value.is_empty() {
                Err(refuse("a non-empty string"))
            } else {
                Ok(value.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::schema;

    fn filter(field: &str, operator: FilterOperator, values: &[&str]) -> Filter {
        Filter { field: field.into(), operator, values: values.iter().map(|v| (*v).into()).collect() }
    }

    fn query(object: &str, filters: &[Filter]) -> Result<Vec<(String, String)>, ConnectorError> {
        to_query(schema(object).unwrap(), filters)
    }

    #[test]
    fn between_becomes_after_and_before() {
        let q = query(
            "issue",
            &[filter("updated_before_after", FilterOperator::Between, &["2024-01-01", "2024-02-01T10:00:00+02:00"])],
        )
        .unwrap();
        assert_eq!(
            q,
            vec![
                ("updated_after".into(), "2024-01-01T00:00:00.000Z".into()),
                ("updated_before".into(), "2024-02-01T08:00:00.000Z".into())
            ]
        );
    }

    #[test]
    fn cursor_field_greater_than_uses_the_cursor_parameter() {
        let q =
            query("issue", &[filter("updated_at", FilterOperator::GreaterThanOrEqualTo, &["2024-05-01T00:00:00Z"])])
                .unwrap();
        assert_eq!(q, vec![("updated_after".into(), "2024-05-01T00:00:00.000Z".into())]);
    }

    #[test]
    fn list_parameters_repeat() {
        let q = query("issue", &[filter("iids", FilterOperator::EqualTo, &["1,2,3"])]).unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q[0], ("iids[]".into(), "1".into()));
    }

    #[test]
    fn wrong_operator_names_the_allowed_ones() {
        let err = query("issue", &[filter("state", FilterOperator::GreaterThanOrEqualTo, &["opened"])]).unwrap_err();
        assert_eq!(err.to_string(), "invalid request: filter on 'issue.state' does not accept '>='; allowed: =");
    }

    #[test]
    fn values_are_type_checked() {
        for (field, value) in [("confidential", "yes"), ("assignee_id", "abc"), ("updated_after", "last tuesday")] {
            let op =
                if field == "updated_after" { FilterOperator::GreaterThanOrEqualTo } else { FilterOperator::EqualTo };
            let err = query("issue", &[filter(field, op, &[value])]).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn a_value_outside_gitlab_s_fixed_set_is_refused_with_the_set() {
        let err = query("issue", &[filter("state", FilterOperator::EqualTo, &["bogus"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid request: filter 'issue.state': GitLab does not accept 'bogus'; allowed: opened, closed, all"
        );
        let err = query("project_milestone", &[filter("state", FilterOperator::EqualTo, &["opened"])]).unwrap_err();
        assert!(err.to_string().ends_with("allowed: active, closed"), "{err}");
        let q = query("project_milestone", &[filter("state", FilterOperator::EqualTo, &[" closed "])]).unwrap();
        assert_eq!(q, vec![("state".into(), "closed".into())]);
        let q = query("tag", &[filter("sort", FilterOperator::EqualTo, &["asc"])]).unwrap();
        assert_eq!(q, vec![("sort".into(), "asc".into())]);
    }

    #[test]
    fn unknown_and_unfilterable_fields_are_refused() {
        let err = query("issue", &[filter("colour", FilterOperator::EqualTo, &["red"])]).unwrap_err().to_string();
        assert!(err.contains("has no field 'colour'") && err.contains("updated_after"), "{err}");
        let err = query("issue", &[filter("title", FilterOperator::EqualTo, &["x"])]).unwrap_err().to_string();
        assert!(err.contains("cannot be filtered on; filterable fields:"), "{err}");
    }

    #[test]
    fn a_time_field_filtered_through_range_parameters_names_them() {
        let err = query("issue", &[filter("created_at", FilterOperator::GreaterThanOrEqualTo, &["2024-01-01"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "field 'created_at' of object 'issue' cannot be filtered on; for a range of created_at, filter on \
                 'created_after' (>=), 'created_before' (<=), 'created_before_after' (between); filterable fields:"
            ),
            "{err}"
        );
        let err = query("issue", &[filter("updated_at", FilterOperator::LessThanOrEqualTo, &["2024-01-01"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "filter on 'issue.updated_at' does not accept '<='; allowed: >=; for a range of updated_at, filter on \
                 'updated_after' (>=), 'updated_before' (<=), 'updated_before_after' (between)"
            ),
            "{err}"
        );
    }
}
