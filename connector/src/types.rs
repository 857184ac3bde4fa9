//! Plain Rust mirrors of the contract's types (`wit/connector.wit`).
//!
//! The connector's logic works on these so that it runs natively too (tests, benchmarks); the guest
//! module converts them to and from the generated WIT bindings at the boundary, field for field.

/// Where an object is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    Instance,
    Group,
    Project,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Instance => "instance",
            ScopeKind::Group => "group",
            ScopeKind::Project => "project",
        }
    }
}

/// The normalized type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Boolean,
    Integer,
    Number,
    String,
    Date,
    DateTime,
    Struct,
    List,
}

impl FieldType {
    /// The type named in the AppFlow table (`Boolean`, `DateTime`...).
    pub fn from_table(name: &str) -> Option<FieldType> {
        Some(match name {
            "Boolean" => FieldType::Boolean,
            "Integer" => FieldType::Integer,
            "Number" | "Double" => FieldType::Number,
            "String" => FieldType::String,
            "Date" => FieldType::Date,
            "DateTime" => FieldType::DateTime,
            "Struct" => FieldType::Struct,
            "List" => FieldType::List,
            _ => return None,
        })
    }
}

/// How a filter compares a field with its value(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOperator {
    EqualTo,
    GreaterThanOrEqualTo,
    LessThanOrEqualTo,
    Between,
}

impl FilterOperator {
    /// The operator named in the AppFlow table (`EQUAL_TO`...).
    pub fn from_table(name: &str) -> Option<FilterOperator> {
        Some(match name {
            "EQUAL_TO" => FilterOperator::EqualTo,
            "GREATER_THAN_OR_EQUAL_TO" => FilterOperator::GreaterThanOrEqualTo,
            "LESS_THAN_OR_EQUAL_TO" => FilterOperator::LessThanOrEqualTo,
            "BETWEEN" => FilterOperator::Between,
            _ => return None,
        })
    }

    /// The operator as users write it in error messages and on the command line.
    pub fn symbol(self) -> &'static str {
        match self {
            FilterOperator::EqualTo => "=",
            FilterOperator::GreaterThanOrEqualTo => ">=",
            FilterOperator::LessThanOrEqualTo => "<=",
            FilterOperator::Between => "between",
        }
    }
}

/// One object, as `list-objects` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    pub name: String,
    pub label: String,
    pub scopes: Vec<ScopeKind>,
    pub primary_key: Vec<String>,
    pub cursor_field: Option<String>,
    pub readable: bool,
}

/// One field of an object's schema.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldInfo {
    pub name: String,
    pub field_type: FieldType,
    pub nullable: bool,
    pub filter_operators: Vec<FilterOperator>,
    pub filter_values: Vec<String>,
    pub filter_only: bool,
}

/// What `describe-schema` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectSchema {
    pub object: ObjectInfo,
    pub fields: Vec<FieldInfo>,
}

/// The upstream's address; never a credential.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub base_url: String,
    pub options: Vec<(String, String)>,
}

/// The scope of one read.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    Instance,
    Group(String),
    Project(String),
}

impl Scope {
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Instance => ScopeKind::Instance,
            Scope::Group(_) => ScopeKind::Group,
            Scope::Project(_) => ScopeKind::Project,
        }
    }

    /// The group or project reference (id or path), none for the instance.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Scope::Instance => None,
            Scope::Group(r) | Scope::Project(r) => Some(r),
        }
    }
}

/// One filter of a read request.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub field: String,
    pub operator: FilterOperator,
    pub values: Vec<String>,
}

/// Everything one page read needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadRequest {
    pub object: String,
    pub scope: Scope,
    pub fields: Vec<String>,
    pub filters: Vec<Filter>,
    pub page_size: u32,
    pub page_token: Option<String>,
}

/// One page of records as newline-delimited JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub records: Vec<u8>,
    pub record_count: u32,
    pub next_page_token: Option<String>,
    pub high_watermark: Option<String>,
}
