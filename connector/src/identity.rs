//! `check-connection`: one cheap request (`GET /user`) that proves GitLab answers and accepts the
//! credential the host adds, and says whose it is.

use serde_json::Value;

use crate::error::ConnectorError;
use crate::request::api_root;
use crate::response::{Response, status_error_for};
use crate::types::Connection;

/// The URL that tells who the credential belongs to.
pub fn url(connection: &Connection) -> Result<String, ConnectorError> {
    Ok(format!("{}/user", api_root(&connection.base_url)?))
}

/// `@username (Name)` from GitLab's answer to [`url`], or the typed error its status means.
pub fn interpret(response: &Response<'_>) -> Result<String, ConnectorError> {
    if !(200..300).contains(&response.status) {
        return Err(status_error_for("the current user (GET /user)", response));
    }
    let user: Value = serde_json::from_slice(response.body)
        .map_err(|e| ConnectorError::Upstream(format!("GitLab's answer to GET /user is not JSON: {e}")))?;
    let username = user.get("username").and_then(Value::as_str).ok_or_else(|| {
        ConnectorError::Upstream("GitLab's answer to GET /user has no username: is the base URL GitLab's?".into())
    })?;
    Ok(match user.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => format!("@{username} ({name})"),
        _ => format!("@{username}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_user_or_says_what_went_wrong() {
        let ok =
            Response { status: 200, header: &|_| None, body: br#"{"id":1,"username":"root","name":"\u00c4dmin"}"# };
        assert_eq!(interpret(&ok).unwrap(), "@root (Ädmin)");
        let refused = Response { status: 401, header: &|_| None, body: br#"{"message":"401 Unauthorized"}"# };
        assert!(matches!(interpret(&refused), Err(ConnectorError::Unauthorized(_))));
        let not_gitlab = Response { status: 200, header: &|_| None, body: b"<html></html>" };
        assert!(matches!(interpret(&not_gitlab), Err(ConnectorError::Upstream(_))));
    }
}
