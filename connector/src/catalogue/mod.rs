//! The catalogue: every object the connector knows, its fields with their types, and its filters.
//!
//! It is built once, from data: the AppFlow table (`appflow-fields.tsv`, one row per object and field)
//! and our own table of the objects beyond it (`beyond-fields.tsv`, same columns) give the fields,
//! types and filter operators; `filter-values.tsv` gives the values of the filters GitLab accepts
//! only from a fixed set (`state`, `sort`...); [`objects::OBJECTS`] gives the GitLab side
//! (endpoints, keys, cursors, corrections). [`schema`] joins them into an [`ObjectSchema`] plus the
//! lookups the reader needs. No object has code of its own.
//!
//! ```text
//!  *.tsv ──► build.rs (at build time: rows split into cells, by object) ──► tables::FIELD_ROWS,
//!                                                                           tables::FILTER_VALUE_ROWS
//!  schema(object), once per sandbox ──► compile: its rows + its ObjectSpec ──► Schema
//! ```

pub mod objects;

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::{ConnectorError, invalid};
use crate::types::{FieldInfo, FieldType, FilterOperator, ObjectInfo, ObjectSchema};
pub use objects::{Children, Cursor, Endpoint, OBJECTS, ObjectSpec};

/// The tables' rows, split into cells by `build.rs`.
mod tables {
    include!(concat!(env!("OUT_DIR"), "/tables.rs"));
}

/// The AppFlow table: `object<TAB>field<TAB>type<TAB>filter operator or empty`, with a header line.
#[cfg(test)]
const APPFLOW_TABLE: &str = include_str!("appflow-fields.tsv");
/// The objects we offer beyond AppFlow's, in the same form.
#[cfg(test)]
const BEYOND_TABLE: &str = include_str!("beyond-fields.tsv");
/// The filters whose values GitLab takes from a fixed set: `object<TAB>field<TAB>value,value...<TAB>where
/// GitLab says so`, with a header line; the object `*` stands for every object with that filter.
#[cfg(test)]
const FILTER_VALUES_TABLE: &str = include_str!("filter-values.tsv");

/// One field that appears in records.
#[derive(Debug)]
pub struct RecordField {
    /// The name in records and in the schema.
    pub name: &'static str,
    /// The key in GitLab's JSON (differs from `name` only where the table misspells it).
    pub source: &'static str,
    /// The normalized type.
    pub field_type: FieldType,
}

/// One object's compiled schema: the lookups reading needs, and the contract's view of it.
#[derive(Debug)]
pub struct Schema {
    pub spec: &'static ObjectSpec,
    /// The record fields, in record order.
    pub record_fields: Vec<RecordField>,
    /// Every filterable field (record or filter-only), by name.
    pub filters: HashMap<&'static str, FilterSpec>,
    /// The fields that exist only as filters, in table order.
    filter_only: Vec<&'static str>,
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

    /// What `describe-schema` returns: the record fields, then the filter-only ones. Built when
    /// asked: a sandbox that reads pages never needs it.
    pub fn described(&self) -> ObjectSchema {
        let field = |name: &str, field_type, filter_only| {
            let (operators, values) =
                self.filters.get(name).map_or((Vec::new(), &[][..]), |f| (f.operators.clone(), &f.values[..]));
            field_info(self.spec, name, field_type, operators, values, filter_only)
        };
        let records = self.record_fields.iter().map(|f| field(f.name, f.field_type, false));
        let filters = self.filter_only.iter().map(|name| field(name, self.filters[name].field_type, true));
        ObjectSchema { object: object_info(self.spec), fields: records.chain(filters).collect() }
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
    let mut filter_only = Vec::new();
    let mut filters = HashMap::new();
    let rows: Vec<_> = table_rows(spec.label).collect();
    let value_sets = filter_value_sets(spec.name);

    if let Some(scope_field) = spec.scope_field {
        let in_table = rows.iter().any(|(field, _, _)| *field == scope_field);
        if !in_table {
            record_fields.push(RecordField { name: scope_field, source: scope_field, field_type: FieldType::Integer });
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
        if operator.is_some() && !spec.record_filters.contains(&name) {
            filter_only.push(name);
        } else {
            record_fields.push(RecordField { name, source: name, field_type });
        }
        if !operators.is_empty() {
            let values = filter_values(&value_sets, name);
            filters.insert(name, FilterSpec { field_type, operators, values });
        }
    }
    Schema { spec, record_fields, filters, filter_only }
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
    let mut sets: Vec<(bool, &str, &str)> = tables::FILTER_VALUE_ROWS
        .iter()
        .filter(|(row_object, _, _)| *row_object == object || *row_object == "*")
        .map(|&(row_object, field, values)| (row_object == "*", field, values))
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
    let rows = tables::FIELD_ROWS.iter().find(|(l, _)| *l == label).map_or(&[][..], |(_, rows)| rows);
    rows.iter().map(|&(field, kind, operator)| (field, kind, FilterOperator::from_table(operator)))
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
    fn the_rows_split_at_build_time_are_the_tables_lines() {
        for spec in OBJECTS {
            let lines = APPFLOW_TABLE.lines().skip(1).chain(BEYOND_TABLE.lines().skip(1));
            let expected: Vec<(&str, &str, Option<FilterOperator>)> = lines
                .filter_map(|line| {
                    let mut cells = line.strip_prefix(spec.label)?.strip_prefix('\t')?.split('\t');
                    Some((cells.next()?, cells.next()?, cells.next().and_then(FilterOperator::from_table)))
                })
                .collect();
            assert!(!expected.is_empty(), "{}", spec.label);
            assert_eq!(table_rows(spec.label).collect::<Vec<_>>(), expected, "{}", spec.label);
        }
        let labels: Vec<&str> = OBJECTS.iter().map(|o| o.label).collect();
        assert!(tables::FIELD_ROWS.iter().all(|(label, _)| labels.contains(label)), "a row of an unknown object");
        assert_eq!(table_rows("Issue Not").count() + table_rows("object").count(), 0);
        let value_rows: Vec<(&str, &str, &str)> = FILTER_VALUES_TABLE
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cells = line.split('\t');
                Some((cells.next()?, cells.next()?, cells.next()?))
            })
            .collect();
        assert_eq!(tables::FILTER_VALUE_ROWS, value_rows);
    }

    #[test]
    fn every_table_row_is_described_with_its_operator() {
        let (mut rows, mut filter_rows) = (0, 0);
        for line in APPFLOW_TABLE.lines().skip(1).filter(|l| !l.is_empty()) {
            let cells: Vec<&str> = line.split('\t').collect();
            let spec = OBJECTS.iter().find(|o| o.label == cells[0]).unwrap();
            let name = spec.renames.iter().find(|(from, _)| *from == cells[1]).map_or(cells[1], |(_, to)| *to);
            let schema = schema(spec.name).unwrap();
            let described = schema.described();
            let described: Vec<&FieldInfo> = described.fields.iter().filter(|f| f.name == name).collect();
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
        let described = issue.described();
        let search = described.fields.iter().find(|f| f.name == "search").unwrap();
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
        let described = schema("project").unwrap().described().fields.iter().find(|f| f.name == "visibility").cloned();
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
            assert_eq!(info, schema(&info.name).unwrap().described().object);
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
