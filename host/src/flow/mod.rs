//! A flow: what to read (objects, scopes, fields, filters, mode) from where, and where to write it.
//!
//! Two front ends fill the same [`Flow`]: a flow file ([`file`], `host run --flow flow.toml`) and the
//! command-line flags ([`flags`], `host run --object issue --project acme/api ...`). Every part of a
//! flow remembers where it was written ([`origin`]), so that an error found at any stage (the file
//! parser, the plugin's checks while planning, the credential, the upstream's 401) names the file, line
//! and key it came from: `flow.toml:12: objects[1].filters[0]: ...`.
//!
//! - [`filter`]: filters as people write them, `FIELD OP VALUE`.
//! - [`connection`]: the base URL and the credential's source.
//! - [`origin`]: where each key was written.
//!
//! A flow is only a description: checking it against the plugin and turning it into partitions is
//! [`crate::plan`]'s job, reading them [`crate::run`]'s.

pub mod connection;
pub mod file;
pub mod filter;
pub mod flags;
pub mod origin;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dest::DestinationUrl;
use crate::sandbox::wit::{Filter, Scope};
use crate::state::StateUrl;
use crate::tenant::TenantSpec;
use connection::ConnectionSpec;
use origin::Origins;

/// How far back before the watermark an incremental read starts, unless the flow says otherwise.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(5 * 60);
/// Partitions read at once, unless the flow says otherwise.
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// The most partitions a flow may read at once.
pub const MAX_CONCURRENCY: u32 = 1024;
/// Records per page asked of the upstream, unless the flow says otherwise (also the most allowed).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// How an object is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every record, every run.
    Full,
    /// The records whose cursor moved since the last completed read (minus the lookback); objects
    /// without a cursor are read in full.
    Incremental,
}

impl Mode {
    /// `full` or `incremental`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// A scope as the flow names it (a path or an id), with the key it was written under.
#[derive(Clone, Debug)]
pub struct ScopeRef {
    pub scope: Scope,
    /// `objects[0].projects[1]`, `objects[0].instance`.
    pub key: String,
}

/// One object to read, under one or more scopes.
#[derive(Clone, Debug)]
pub struct ObjectFlow {
    /// The object, as `list-objects` names it.
    pub object: String,
    pub scopes: Vec<ScopeRef>,
    /// Selected record fields; empty for all.
    pub fields: Vec<String>,
    pub filters: Vec<Filter>,
    pub mode: Mode,
    /// This object's key in the flow: `objects[1]`.
    pub key: String,
}

impl ObjectFlow {
    /// The key of one of its parts: `objects[1].filters[0]`.
    pub fn key_of(&self, part: &str) -> String {
        format!("{}.{part}", self.key)
    }
}

/// Everything a run needs, checked for form (the plugin checks the rest while planning).
#[derive(Clone, Debug)]
pub struct Flow {
    /// The flow's stable name, part of every partition key (so that its checkpoints are its own).
    pub id: String,
    /// The connector component.
    pub plugin: PathBuf,
    pub connection: ConnectionSpec,
    pub objects: Vec<ObjectFlow>,
    /// How far before the watermark incremental reads start.
    pub lookback: Duration,
    /// Records per page asked of the upstream.
    pub page_size: u32,
    /// Partitions read at once.
    pub concurrency: usize,
    pub destination: DestinationUrl,
    /// Where checkpoints are kept; none for the default beside the destination.
    pub state: Option<StateUrl>,
    /// Whose flow it is, and that tenant's limits (a flow file's `[tenant]` section).
    pub tenant: Option<TenantSpec>,
    /// Where each key was written.
    pub origins: Origins,
}

/// Parse a lookback such as `5m`, `1h30m`, `90s` or `PT5M` (ISO 8601).
pub fn parse_lookback(text: &str) -> Result<Duration, String> {
    let usage = "write a duration in hours, minutes or seconds, such as 5m, 1h30m, 48h, 90s or PT5M";
    let parsed: jiff::SignedDuration =
        text.trim().parse().map_err(|_| format!("'{text}' is not a duration: {usage}"))?;
    Duration::try_from(parsed).map_err(|_| format!("'{text}' is negative: {usage}"))
}

/// Check a flow id: letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn check_flow_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && id.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        Ok(())
    } else {
        Err(format!(
            "'{id}' is not a usable flow id: use up to 64 letters, digits, '-', '_' or '.', starting with a \
             letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookbacks_read_as_people_write_them() {
        assert_eq!(parse_lookback("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_lookback("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_lookback("PT90S").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_lookback("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_lookback("48h").unwrap(), Duration::from_secs(48 * 3600));
        assert!(parse_lookback("2d").unwrap_err().contains("hours, minutes or seconds"));
        assert!(parse_lookback("five minutes").unwrap_err().contains("not a duration"));
        assert!(parse_lookback("-5m").unwrap_err().contains("negative"));
    }

    #[test]
    fn flow_ids_are_plain_names() {
        assert!(check_flow_id("nightly-acme_2.v1").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_flow_id(bad).is_err(), "{bad}");
        }
    }
}
