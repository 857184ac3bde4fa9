//! The catalogue: every object the connector knows, its fields with their types, and its filters.
//!
//! It is built once, from data: the AppFlow table (`appflow-fields.tsv`, one row per object and field,
//! embedded at compile time) and our own table of the objects beyond it (`beyond-fields.tsv`, same
//! columns) give the fields, types and filter operators; `filter-values.tsv` gives the values of the
//! filters GitLab accepts only from a fixed set (`state`, `sort`...); [`objects::OBJECTS`] gives
//! the GitLab side (endpoints, keys, cursors, corrections). [`schema`] joins them into an
//! [`ObjectSchema`] plus the lookups the reader needs. No object has code of its own.

pub mod objects;

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::{ConnectorError, invalid};
use crate::types::{FieldInfo, FieldType, FilterOperator, ObjectInfo, ObjectSchema};
pub use objects::{Children, Cursor, Endpoint, OBJECTS, ObjectSpec};

/// The AppFlow table: `object<TAB>field<TAB>type<TAB>filter operator or empty`, with a header line.
const APPFLOW_TABLE: &str = include_str!("appflow-fields.tsv");
/// The objects we offer beyond AppFlow's, in the same form.
const BEYOND_TABLE: &str = include_str!("beyond-fields.tsv");
/// The filters whose values GitLab takes from a fixed set: `object<TAB>field<TAB>value,value...<TAB>where
/// GitLab says so`, with a header line; the object `*` stands for every object with that filter.
const FILTER_VALUES_TABLE: &str = include_str!("filter-values.tsv");

/// One field that appears in records.
#[derive(Debug)]
pub struct RecordField {
    /// The name in records and in the schema.
    pub name: String,
    /// The key in GitLab's JSON (differs from `name` only where the table misspells it).
    pub source: String,
    /// The normalized type.
    pub field_type: FieldType,
}

/// One object's compiled schema: the contract's view plus the lookups reading needs.
#[derive(Debug)]
pub struct Schema {
    pub spec: &'static ObjectSpec,
    /// What `describe-schema` returns.
    pub described: ObjectSchema,
    /// The record fields, in record order.
    pub record_fields: Vec<RecordField>,
    /// Every filterable field (record or filter-only), by name.
    pub filters: HashMap<String, FilterSpec>,
}

/// What a filter on one field accepts.
#[derive(Debug)]
pub struct FilterSpec {
    /// The type every value must have.
    pub field_type: FieldType,
    /// The operators it may use.
    pub operators: Vec<FilterOperator>,
    /// The only values GitLab accepts, when it accepts a fixed set; empty when any value of the type goes.
    pub values: Vec<&'static str>,
}

impl Schema {
    /// The record field named `name`, if any.
    pub fn record_field(&self, name: &str) -> Option<&RecordField> {
        self.record_fields.iter().find(|f| f.name == name)
    }
}

/// A slot per object of [`OBJECTS`], each filled on first use: a sandbox reading one object compiles
/// only that object's schema (compiling all of them would be most of a short partition's work).
fn slots() -> &'static [OnceLock<Schema>] {
    static SCHEMAS: OnceLock<Vec<OnceLock<Schema>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| OBJECTS.iter().map(|_| OnceLock::new()).collect())
}

/// The compiled schema of `object`, or an invalid-request error listing the known objects.
pub fn schema(object: &str) -> Result<&'static Schema, ConnectorError> {
    let index = OBJECTS.iter().position(|o| o.name == object).ok_or_else(|| {
        let known: Vec<&str> = OBJECTS.iter().map(|o| o.name).collect();
        invalid(format!("unknown object '{object}'; known objects: {}", known.join(", ")))
    })?;
    Ok(slots()[index].get_or_init(|| compile(&OBJECTS[index])))
}

/// What `list-objects` returns: from the objects' specs alone, no schema compiled (a host plans
/// with it before each run, and a tenant's run reads one object or two of the 21).
pub fn object_infos() -> Vec<ObjectInfo> {
    OBJECTS.iter().map(object_info).collect()
}

/// What the contract says of `spec` as an object.
fn object_info(spec: &ObjectSpec) -> ObjectInfo {
    ObjectInfo {
        name: spec.name.to_owned(),
        label: spec.label.to_owned(),
        scopes: spec.endpoints.iter().map(|e| e.scope).collect(),
        primary_key: spec.primary_key.iter().map(|k| (*k).to_owned()).collect(),
        cursor_field: spec.cursor.as_ref().map(|c| c.field.to_owned()),
        readable: spec.readable,
    }
}

/// Join the table's rows for `spec` with `spec`'s GitLab metadata.
fn compile(spec: &'static ObjectSpec) -> Schema {
    let mut record_fields = Vec::new();
    let mut record_infos = Vec::new();
    let mut filter_infos = Vec::new();
    let mut filters = HashMap::new();
    let rows: Vec<_> = table_rows(spec.label).collect();
    let value_sets = filter_value_sets(spec.name);

    if let Some(scope_field) = spec.scope_field {
        let in_table = rows.iter().any(|(field, _, _)| *field == scope_field);
        if !in_table {
            record_fields.push(RecordField {
                name: scope_field.to_owned(),
                source: scope_field.to_owned(),
                field_type: FieldType::Integer,
            });
            record_infos.push(field_info(spec, scope_field, FieldType::Integer, Vec::new(), &[], false));
        }
    }

    for (table_name, table_type, operator) in rows {
        let name = spec.renames.iter().find(|(from, _)| *from == table_name).map_or(table_name, |(_, to)| *to);
        let field_type = spec
            .retypes
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, t)| *t)
            .or_else(|| FieldType::from_table(table_type))
            .unwrap_or(FieldType::String);
        let mut operators: Vec<FilterOperator> = operator.into_iter().collect();
        if spec.cursor.as_ref().is_some_and(|c| c.field == name) {
            // The cursor field itself accepts `>=`: the host's incremental reads use it.
            operators.push(FilterOperator::GreaterThanOrEqualTo);
        }
        let filter_only = operator.is_some() && !spec.record_filters.contains(&name);
        let values = if operators.is_empty() { Vec::new() } else { filter_values(&value_sets, name) };
        let info = field_info(spec, name, field_type, operators.clone(), &values, filter_only);
        if !operators.is_empty() {
            filters.insert(name.to_owned(), FilterSpec { field_type, operators, values });
        }
        if filter_only {
            filter_infos.push(info);
        } else {
            record_fields.push(RecordField { name: name.to_owned(), source: name.to_owned(), field_type });
            record_infos.push(info);
        }
    }

    record_infos.extend(filter_infos);
    Schema { spec, described: ObjectSchema { object: object_info(spec), fields: record_infos }, record_fields, filters }
}

fn field_info(
    spec: &ObjectSpec,
    name: &str,
    field_type: FieldType,
    filter_operators: Vec<FilterOperator>,
    filter_values: &[&str],
    filter_only: bool,
) -> FieldInfo {
    FieldInfo {
        name: name.to_owned(),
        field_type,
        nullable: !spec.primary_key.contains(&name),
        filter_operators,
        filter_values: filter_values.iter().map(|v| (*v).to_owned()).collect(),
        filter_only,
    }
}

/// The fixed value sets of `object`'s filters, from the filter-values table: (field, values), the
/// object's own rows before the rows for every object (`*`), so that the first match of a field wins.
fn filter_value_sets(object: &str) -> Vec<(&'static str, &'static str)> {
    let mut sets: Vec<(bool, &str, &str)> = FILTER_VALUES_TABLE
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split('\t');
            let (row_object, field, values) = (cells.next()?, cells.next()?, cells.next()?);
            (row_object == object || row_object == "*").then_some((row_object == "*", field, values))
        })
        .collect();
    sets.sort_by_key(|(for_every_object, _, _)| *for_every_object);
    sets.into_iter().map(|(_, field, values)| (field, values)).collect()
}

/// The values of `field` in `sets` (see [`filter_value_sets`]); empty when its values are not a fixed set.
fn filter_values(sets: &[(&str, &'static str)], field: &str) -> Vec<&'static str> {
    sets.iter().find(|(f, _)| *f == field).map_or_else(Vec::new, |(_, values)| values.split(',').collect())
}

/// The table's rows for one object label: (field, type, filter operator).
fn table_rows(label: &str) -> impl Iterator<Item = (&'static str, &'static str, Option<FilterOperator>)> {
    let rows = lines_of(APPFLOW_TABLE, label).chain(lines_of(BEYOND_TABLE, label));
    rows.filter_map(|line| {
        let mut cells = line.split('\t');
        let (field, kind) = (cells.next()?, cells.next()?);
        let operator = cells.next().and_then(FilterOperator::from_table);
        Some((field, kind, operator))
    })
}

/// The lines of `table` that start with `label` and a tab, each without them. Most lines are
/// another object's, and every sandbox compiles the schema it reads anew: the rows are found with
/// one SIMD substring search for the label at a line's start (a line at a time, this was a tenth of
/// a one-page partition's CPU).
fn lines_of(table: &'static str, label: &str) -> impl Iterator<Item = &'static str> {
    let needle = format!("\n{label}\t");
    let starts: Vec<usize> = memchr::memmem::find_iter(table.as_bytes(), needle.as_bytes()).collect();
    starts.into_iter().map(move |at| {
        let line = &table[at + needle.len()..];
        line.split_once('\n').map_or(line, |(line, _)| line).trim_end_matches('\r')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_row_belongs_to_a_catalogued_object() {
        let labels: Vec<&str> = OBJECTS.iter().map(|o| o.label).collect();
        let rows = APPFLOW_TABLE.lines().skip(1).filter(|l| !l.is_empty());
        let mut count = 0;
        for line in rows {
            let label = line.split('\t').next().unwrap();
            assert!(labels.contains(&label), "row of unknown object: {line}");
            count += 1;
        }
        assert_eq!(count, 467);
        // AppFlow's 16; deployments, environments, issue and merge request notes and merge request
        // approvals beyond them.
        assert_eq!(OBJECTS.len(), 21);
    }

    #[test]
    fn an_objects_rows_are_the_lines_that_start_with_its_label() {
        for table in [APPFLOW_TABLE, BEYOND_TABLE] {
            for label in OBJECTS.iter().map(|o| o.label).chain(["object", "Issue Not", "ssue", ""]) {
                let expected: Vec<&str> =
                    table.lines().skip(1).filter_map(|line| line.strip_prefix(label)?.strip_prefix('\t')).collect();
                assert_eq!(lines_of(table, label).collect::<Vec<_>>(), expected, "{label}");
            }
        }
        assert_eq!(lines_of("object\tfield\nIssue\tid\r\nIssue\ttitle", "Issue").collect::<Vec<_>>(), ["id", "title"]);
    }

    #[test]
    fn every_table_row_is_described_with_its_operator() {
        let (mut rows, mut filter_rows) = (0, 0);
        for line in APPFLOW_TABLE.lines().skip(1).filter(|l| !l.is_empty()) {
            let cells: Vec<&str> = line.split('\t').collect();
            let spec = OBJECTS.iter().find(|o| o.label == cells[0]).unwrap();
            let name = spec.renames.iter().find(|(from, _)| *from == cells[1]).map_or(cells[1], |(_, to)| *to);
            let schema = schema(spec.name).unwrap();
            let described: Vec<&FieldInfo> = schema.described.fields.iter().filter(|f| f.name == name).collect();
            assert_eq!(described.len(), 1, "{line}");
            if let Some(operator) = cells.get(3).and_then(|op| FilterOperator::from_table(op)) {
                assert!(described[0].filter_operators.contains(&operator), "{line}");
                filter_rows += 1;
            }
            rows += 1;
        }
        assert_eq!(rows, 467);
        // The AppFlow page (and so the table) has 140 filterable rows.
        assert_eq!(filter_rows, 140);
    }

    #[test]
    fn filter_only_rows_are_not_record_fields() {
        let issue = schema("issue").unwrap();
        assert!(issue.record_field("updated_before_after").is_none());
        assert!(issue.record_field("search").is_none());
        assert!(issue.record_field("state").is_some(), "state is both a field and a filter");
        let search = issue.described.fields.iter().find(|f| f.name == "search").unwrap();
        assert!(search.filter_only);
    }

    #[test]
    fn every_filter_values_row_names_a_string_filter_its_object_has() {
        for line in FILTER_VALUES_TABLE.lines().skip(1).filter(|l| !l.is_empty()) {
            let cells: Vec<&str> = line.split('\t').collect();
            assert_eq!(cells.len(), 4, "object, field, values, source: {line}");
            let objects: Vec<&ObjectSpec> = OBJECTS.iter().filter(|o| cells[0] == "*" || o.name == cells[0]).collect();
            let with_filter: Vec<&Schema> =
                objects.iter().map(|o| schema(o.name).unwrap()).filter(|s| s.filters.contains_key(cells[1])).collect();
            assert!(!with_filter.is_empty(), "no object has the filter of: {line}");
            for schema in with_filter {
                let filter = &schema.filters[cells[1]];
                assert_eq!(filter.field_type, FieldType::String, "{line}");
                assert!(filter.values.iter().all(|v| !v.is_empty() && v.trim() == *v), "{line}");
            }
        }
    }

    #[test]
    fn an_object_row_overrides_the_row_for_every_object() {
        assert_eq!(schema("issue").unwrap().filters["state"].values, ["opened", "closed", "all"]);
        assert_eq!(schema("tag").unwrap().filters["sort"].values, ["asc", "desc"]);
        assert_eq!(schema("tag").unwrap().filters["order_by"].values, ["name", "updated", "version"]);
        assert!(schema("issue").unwrap().filters["search"].values.is_empty());
        let described = schema("project").unwrap().described.fields.iter().find(|f| f.name == "visibility").cloned();
        assert_eq!(described.unwrap().filter_values, ["public", "internal", "private"]);
    }

    #[test]
    fn scope_ids_are_added_where_gitlab_omits_them() {
        let branch = schema("branch").unwrap();
        assert_eq!(branch.record_fields[0].name, "project_id");
        assert_eq!(branch.record_fields[0].field_type, FieldType::Integer);
        assert_eq!(schema("issue").unwrap().record_fields.iter().filter(|f| f.name == "project_id").count(), 1);
    }

    #[test]
    fn list_objects_says_what_each_schema_says() {
        let infos = object_infos();
        assert_eq!(infos.len(), OBJECTS.len());
        for info in infos {
            assert_eq!(info, schema(&info.name).unwrap().described.object);
        }
    }

    #[test]
    fn unknown_object_lists_the_known_ones() {
        let err = schema("issues").unwrap_err().to_string();
        assert!(err.contains("unknown object 'issues'"), "{err}");
        assert!(err.contains("project_merge_request"), "{err}");
    }

    #[test]
    fn corrections_apply() {
        let project = schema("project").unwrap();
        assert!(project.record_field("empty_repo").is_some());
        assert!(project.record_field("empty_Repo").is_none());
        let mr = schema("project_merge_request").unwrap();
        assert_eq!(mr.filters["author_username"].field_type, FieldType::String);
    }
}
