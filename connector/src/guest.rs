//! The component boundary: the generated WIT bindings, and conversions between them and [`crate::types`].
//!
//! `read-page` is plan (check and build the URL) → one GET through `wasi:http` (perhaps read ahead by
//! the previous call, see `read_ahead`) → interpret (status, `Link`, records). This module only translates; the logic lives in the modules it calls.

wit_bindgen::generate!({
    path: "../wit",
    world: "dataflow:connector/connector",
    generate_all,
});

use dataflow::connector::types as wit;
use exports::dataflow::connector::source::Guest;

use crate::error::ConnectorError;
use crate::{catalogue, fanout, http, identity, read_ahead, request, response, scopes, types};

struct GitLab;

export!(GitLab);

impl Guest for GitLab {
    fn list_objects() -> Vec<wit::ObjectInfo> {
        catalogue::object_infos().into_iter().map(object_info).collect()
    }

    fn check_connection(connection: wit::Connection) -> Result<String, wit::ConnectorError> {
        let connection = types::Connection { base_url: connection.base_url, options: connection.options };
        let answer = http::get(&identity::url(&connection).map_err(error)?).map_err(error)?;
        answer.view(identity::interpret).map_err(error)
    }

    fn describe_schema(object: String) -> Result<wit::ObjectSchema, wit::ConnectorError> {
        let schema = catalogue::schema(&object).map_err(error)?;
        let described = schema.described();
        Ok(wit::ObjectSchema {
            object: object_info(described.object.clone()),
            fields: described.fields.iter().map(field_info).collect(),
        })
    }

    fn list_scopes(
        connection: wit::Connection,
        within: wit::Scope,
        kind: wit::ScopeKind,
        page_token: Option<String>,
    ) -> Result<wit::ScopePage, wit::ConnectorError> {
        let connection = types::Connection { base_url: connection.base_url, options: connection.options };
        let plan = scopes::plan(&connection, &scope_from_wit(within), scope_kind_from_wit(kind), page_token.as_deref())
            .map_err(error)?;
        let answer = http::get(&plan.url).map_err(error)?;
        let page = answer.view(|r| scopes::interpret(&plan, r)).map_err(error)?;
        Ok(wit::ScopePage {
            scopes: page
                .scopes
                .into_iter()
                .map(|e| wit::ScopeEntry { scope: scope_to_wit(e.scope), label: e.label })
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    fn validate_request(connection: wit::Connection, request: wit::ReadRequest) -> Result<(), wit::ConnectorError> {
        let connection = types::Connection { base_url: connection.base_url, options: connection.options };
        request::plan(&connection, &read_request(request)).map(drop).map_err(error)
    }

    fn read_page(connection: wit::Connection, request: wit::ReadRequest) -> Result<wit::Page, wit::ConnectorError> {
        let connection = types::Connection { base_url: connection.base_url, options: connection.options };
        let request = read_request(request);
        let plan = request::plan(&connection, &request).map_err(error)?;
        let page = if plan.per_parent.is_some() {
            fanout::read_page(&plan, &mut |urls| http::get_all(urls))
        } else {
            read_ahead::get(&plan.url).and_then(|answer| {
                if let Some(next) = answer.view(|r| response::ahead_url(&plan, r)) {
                    read_ahead::send(next);
                }
                answer.view(|r| response::interpret(&plan, r))
            })
        }
        .map_err(error)?;
        Ok(wit::Page {
            records: page.records,
            record_count: page.record_count,
            next_page_token: page.next_page_token,
            high_watermark: page.high_watermark,
        })
    }
}

fn object_info(info: types::ObjectInfo) -> wit::ObjectInfo {
    wit::ObjectInfo {
        name: info.name,
        label: info.label,
        scopes: info.scopes.into_iter().map(scope_kind).collect(),
        primary_key: info.primary_key,
        cursor_field: info.cursor_field,
        readable: info.readable,
    }
}

fn scope_kind(kind: types::ScopeKind) -> wit::ScopeKind {
    match kind {
        types::ScopeKind::Instance => wit::ScopeKind::Instance,
        types::ScopeKind::Group => wit::ScopeKind::Group,
        types::ScopeKind::Project => wit::ScopeKind::Project,
    }
}

fn field_info(field: &types::FieldInfo) -> wit::FieldInfo {
    wit::FieldInfo {
        name: field.name.clone(),
        field_type: match field.field_type {
            types::FieldType::Boolean => wit::FieldType::Boolean,
            types::FieldType::Integer => wit::FieldType::Integer,
            types::FieldType::Number => wit::FieldType::Number,
            types::FieldType::String => wit::FieldType::String,
            types::FieldType::Date => wit::FieldType::Date,
            types::FieldType::DateTime => wit::FieldType::DateTime,
            types::FieldType::Struct => wit::FieldType::Struct,
            types::FieldType::List => wit::FieldType::List,
        },
        nullable: field.nullable,
        filter_operators: field.filter_operators.iter().map(|op| operator_to_wit(*op)).collect(),
        filter_values: field.filter_values.clone(),
        filter_only: field.filter_only,
    }
}

fn operator_to_wit(op: types::FilterOperator) -> wit::FilterOperator {
    match op {
        types::FilterOperator::EqualTo => wit::FilterOperator::EqualTo,
        types::FilterOperator::GreaterThanOrEqualTo => wit::FilterOperator::GreaterThanOrEqualTo,
        types::FilterOperator::LessThanOrEqualTo => wit::FilterOperator::LessThanOrEqualTo,
        types::FilterOperator::Between => wit::FilterOperator::Between,
    }
}

fn operator_from_wit(op: wit::FilterOperator) -> types::FilterOperator {
    match op {
        wit::FilterOperator::EqualTo => types::FilterOperator::EqualTo,
        wit::FilterOperator::GreaterThanOrEqualTo => types::FilterOperator::GreaterThanOrEqualTo,
        wit::FilterOperator::LessThanOrEqualTo => types::FilterOperator::LessThanOrEqualTo,
        wit::FilterOperator::Between => types::FilterOperator::Between,
    }
}

fn read_request(request: wit::ReadRequest) -> types::ReadRequest {
    types::ReadRequest {
        object: request.object,
        scope: scope_from_wit(request.scope),
        fields: request.fields,
        filters: request
            .filters
            .into_iter()
            .map(|f| types::Filter { field: f.field, operator: operator_from_wit(f.operator), values: f.values })
            .collect(),
        page_size: request.page_size,
        page_token: request.page_token,
    }
}

fn scope_from_wit(scope: wit::Scope) -> types::Scope {
    match scope {
        wit::Scope::Instance => types::Scope::Instance,
        wit::Scope::Group(r) => types::Scope::Group(r),
        wit::Scope::Project(r) => types::Scope::Project(r),
    }
}

fn scope_to_wit(scope: types::Scope) -> wit::Scope {
    match scope {
        types::Scope::Instance => wit::Scope::Instance,
        types::Scope::Group(r) => wit::Scope::Group(r),
        types::Scope::Project(r) => wit::Scope::Project(r),
    }
}

fn scope_kind_from_wit(kind: wit::ScopeKind) -> types::ScopeKind {
    match kind {
        wit::ScopeKind::Instance => types::ScopeKind::Instance,
        wit::ScopeKind::Group => types::ScopeKind::Group,
        wit::ScopeKind::Project => types::ScopeKind::Project,
    }
}

fn error(e: ConnectorError) -> wit::ConnectorError {
    match e {
        ConnectorError::InvalidRequest(m) => wit::ConnectorError::InvalidRequest(m),
        ConnectorError::Unsupported(m) => wit::ConnectorError::Unsupported(m),
        ConnectorError::Unauthorized(m) => wit::ConnectorError::Unauthorized(m),
        ConnectorError::Forbidden(m) => wit::ConnectorError::Forbidden(m),
        ConnectorError::NotFound(m) => wit::ConnectorError::NotFound(m),
        ConnectorError::RateLimited { retry_after_seconds, message } => {
            wit::ConnectorError::RateLimited(wit::RateLimit { retry_after_seconds, message })
        }
        ConnectorError::Upstream(m) => wit::ConnectorError::Upstream(m),
        ConnectorError::Transport(m) => wit::ConnectorError::Transport(m),
    }
}
