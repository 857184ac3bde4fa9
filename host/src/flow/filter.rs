//! Filters as people write them, in flow files and with `--filter`: `FIELD OP VALUE`.
//!
//! `state = opened`, `updated_after >= 2024-01-01`, `updated_at >= 2024-01-01T00:00:00Z`,
//! `created_before_after between 2024-01-01 and 2024-02-01`. The operator names of the AppFlow table
//! (`EQUAL_TO`, `GREATER_THAN_OR_EQUAL_TO`, `LESS_THAN_OR_EQUAL_TO`, `BETWEEN`) work too. Whether the
//! field and value suit the object is for the plugin to say (`validate-request`, see [`crate::plan`]).

use anyhow::{Result, bail};

use crate::sandbox::wit::{Filter, FilterOperator};

/// Parse `FIELD OP VALUE` (see the module docs).
pub fn parse_filter(text: &str) -> Result<Filter> {
    let usage = "write a filter as 'FIELD OP VALUE', with OP one of =, >=, <=, between (e.g. 'state = opened', \
                 'updated_before_after between 2024-01-01 and 2024-02-01')";
    let text = text.trim();
    let Some((field, rest)) = text.split_once(char::is_whitespace) else {
        bail!("filter '{text}' is incomplete: {usage}");
    };
    let rest = rest.trim_start();
    let (op_word, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let value = value.trim();
    let operator = match op_word.to_ascii_uppercase().as_str() {
        "=" | "==" | "EQ" | "EQUAL_TO" => FilterOperator::EqualTo,
        ">=" | "GE" | "GREATER_THAN_OR_EQUAL_TO" => FilterOperator::GreaterThanOrEqualTo,
        "<=" | "LE" | "LESS_THAN_OR_EQUAL_TO" => FilterOperator::LessThanOrEqualTo,
        "BETWEEN" => FilterOperator::Between,
        other => bail!("filter '{text}' has an unknown operator '{other}': {usage}"),
    };
    if value.is_empty() {
        bail!("filter '{text}' has no value: {usage}");
    }
    let values = if operator == FilterOperator::Between {
        let split = value.split_once(" and ").or_else(|| value.split_once(" AND ")).or_else(|| value.split_once(','));
        let Some((low, high)) = split else {
            bail!("filter '{text}' needs two bounds: 'FIELD between LOW and HIGH'");
        };
        vec![low.trim().to_owned(), high.trim().to_owned()]
    } else {
        vec![value.trim_matches(|c| c == '\'' || c == '"').to_owned()]
    };
    Ok(Filter { field: field.to_owned(), operator, values })
}

/// The operator as people write it: `=`, `>=`, `<=`, `between`.
pub fn operator_symbol(operator: FilterOperator) -> &'static str {
    match operator {
        FilterOperator::EqualTo => "=",
        FilterOperator::GreaterThanOrEqualTo => ">=",
        FilterOperator::LessThanOrEqualTo => "<=",
        FilterOperator::Between => "between",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_operator() {
        let f = parse_filter("state = opened").unwrap();
        assert_eq!(
            (f.field.as_str(), f.operator, f.values),
            ("state", FilterOperator::EqualTo, vec!["opened".to_owned()])
        );
        let f = parse_filter("updated_before_after between 2024-01-01 and 2024-02-01").unwrap();
        assert_eq!(f.operator, FilterOperator::Between);
        assert_eq!(f.values, ["2024-01-01", "2024-02-01"]);
        let f = parse_filter("updated_at GREATER_THAN_OR_EQUAL_TO 2024-01-01T00:00:00Z").unwrap();
        assert_eq!(f.operator, FilterOperator::GreaterThanOrEqualTo);
        assert_eq!(parse_filter("search = 'two words'").unwrap().values, ["two words"]);
    }

    #[test]
    fn rejects_malformed_filters() {
        for bad in ["state", "state ~ opened", "state =", "updated_before_after between 2024-01-01"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
