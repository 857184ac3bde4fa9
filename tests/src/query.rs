//! The query string of a request, decoded once, with typed getters that fail the way GitLab's
//! parameter validation does (400 `{"error":"per_page is invalid"}`).
//!
//! An empty value (`?search=`) counts as absent. For a repeated key the last value wins, except
//! for list parameters (`iids[]=1&iids[]=2`), which collect every value.

use crate::reply::ApiError;
use crate::time::parse_datetime_micros;

/// Decoded `key=value` pairs, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes an `application/x-www-form-urlencoded` query string (`+` is a space).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|raw| form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default();
        Self { pairs }
    }

    /// The last non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// A boolean: `true/false`, `1/0`, `t/f`, `yes/no`, `on/off` (any case).
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" | "yes" | "y" | "on" => Ok(true),
                "false" | "0" | "f" | "no" | "n" | "off" => Ok(false),
                _ => Err(ApiError::invalid(key)),
            })
            .transpose()
    }

    /// An integer.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key).map(|v| v.trim().parse::<i64>().map_err(|_| ApiError::invalid(key))).transpose()
    }

    /// A non-negative id.
    pub fn id(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key).map(|v| v.trim().parse::<u64>().map_err(|_| ApiError::invalid(key))).transpose()
    }

    /// An ISO 8601 date-time, in microseconds since the epoch.
    pub fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key).map(|v| parse_datetime_micros(v).ok_or_else(|| ApiError::invalid(key))).transpose()
    }

    /// One of the allowed values (exact match).
    pub fn choice(&self, key: &str, allowed: &[&'static str]) -> Result<Option<&'static str>, ApiError> {
        self.get(key)
            .map(|v| allowed.iter().find(|a| **a == v).copied().ok_or_else(|| ApiError::bad_value(key)))
            .transpose()
    }

    /// `asc` or `desc`, default `default`.
    pub fn sort(&self, default_desc: bool) -> Result<bool, ApiError> {
        Ok(match self.choice("sort", &["asc", "desc"])? {
            Some(s) => s == "desc",
            None => default_desc,
        })
    }

    /// The values of a list parameter given as `key[]=a&key[]=b`, `key=a,b` or both.
    pub fn list(&self, key: &str) -> Vec<&str> {
        let bracketed = format!("{key}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| *k == key || *k == bracketed)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A list of integers (see [`Query::list`]); `None` when the parameter is absent.
    pub fn id_list(&self, key: &str) -> Result<Option<Vec<u64>>, ApiError> {
        let values = self.list(key);
        if values.is_empty() {
            return Ok(None);
        }
        values
            .into_iter()
            .map(|v| v.parse::<u64>().map_err(|_| ApiError::invalid(key)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_getters() {
        let q = Query::parse(Some(
            "a=1&b=x&flag=TRUE&iids[]=3&iids[]=4&iids=5,6&empty=&t=2024-01-02T03:04:05%2B02:00&s=a+b%2Cc",
        ));
        assert_eq!(q.int("a"), Ok(Some(1)));
        assert_eq!(q.int("b"), Err(ApiError::invalid("b")));
        assert_eq!(q.int("missing"), Ok(None));
        assert_eq!(q.int("empty"), Ok(None));
        assert_eq!(q.flag("flag"), Ok(Some(true)));
        assert_eq!(q.flag("b"), Err(ApiError::invalid("b")));
        assert_eq!(q.id_list("iids"), Ok(Some(vec![3, 4, 5, 6])));
        assert!(q.time("t").unwrap().is_some());
        assert_eq!(q.get("s"), Some("a b,c"));
        assert_eq!(q.choice("b", &["y"]), Err(ApiError::bad_value("b")));
    }
}
