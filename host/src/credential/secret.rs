//! Secrets: a string that never prints itself, and the process-wide list of every secret the host has
//! held, so that any text leaving the process (errors, the summary) can be scrubbed of them.
//!
//! A value becomes a [`Secret`] the moment it is read (from the environment, a token file, a token
//! response); creating one remembers it, and [`redact`] replaces every remembered secret in a text with
//! `[redacted]`. Tokens rotate during a run (OAuth2 refresh), so the list grows; it is never shrunk:
//! an old token must stay out of the output as much as the current one.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Every secret this process has held.
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What replaces a secret in text.
pub const REDACTED: &str = "[redacted]";

/// A token or other secret. `Debug` and `Display` print `[redacted]`; only [`Secret::expose`] gives
/// the value, for the one place that must send it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(#[serde(deserialize_with = "remembered")] String);

impl Secret {
    /// Wrap `value` and remember it for [`redact`].
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        remember(&value);
        Secret(value)
    }

    /// The secret itself, to be put on the wire (a header, a form field) and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

fn remembered<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    remember(&value);
    Ok(value)
}

fn remember(value: &str) {
    if value.is_empty() {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| k == value) {
        known.push(value.to_owned());
        // Longest first, so that a secret containing another is replaced whole.
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// `text` with every secret this process has held replaced by `[redacted]`.
pub fn redact(text: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = text.to_owned();
    for secret in known.iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_and_is_scrubbed_everywhere() {
        let secret = Secret::new("s3cr3t-value-for-redaction");
        assert_eq!(format!("{secret} {secret:?}"), "[redacted] [redacted]");
        assert_eq!(redact("a s3cr3t-value-for-redaction b"), "a [redacted] b");
        let parsed: Secret = serde_json::from_str("\"parsed-secret-for-redaction\"").unwrap();
        assert_eq!(parsed.expose(), "parsed-secret-for-redaction");
        assert_eq!(redact("x parsed-secret-for-redaction"), "x [redacted]");
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"parsed-secret-for-redaction\"");
    }
}
