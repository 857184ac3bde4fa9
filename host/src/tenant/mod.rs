//! Tenants: whose flows a host runs, side by side, each in sandboxes of its own.
//!
//! A tenant is one GitLab account's worth of work: a credential, the origins its plugin may reach, and
//! the limits that keep it from reading, slowing or crashing another tenant. It is written either in a
//! tenants file, for `host run --tenants tenants.toml --flows DIR`, or as the `[tenant]` section of a
//! single flow file:
//!
//! ```toml
//! [[tenants]]
//! id = "acme"
//! credential = { source = "env", var = "ACME_GITLAB_TOKEN" }   # or file / oauth (see credential)
//! allowed_origins = ["https://cdn.acme.example"]   # besides its flows' GitLab origin, which is always in
//! memory_mib = 64               # per sandbox (default 64)
//! call_timeout_secs = 30        # per call into the plugin (default 30)
//! concurrency = 8               # partitions at once, over all its flows (default 8)
//! requests_per_minute = 600     # to its GitLab (default: as GitLab's RateLimit headers allow)
//! max_response_bytes = 16777216 # per response body (default: none)
//! max_run_bytes = 1073741824    # response bodies over the whole run (default: none)
//! ```
//!
//! Each flow file in DIR says whose it is with `[tenant] id = "acme"`. From here, [`run`] starts one
//! engine for the process, one compiled plugin per wasm file, one gate (allow-list, credential, pace,
//! byte budget) and one partition semaphore per tenant, and runs every flow at once
//! ([`crate::run::run`]); a tenant's failure ends only its own partitions or flows.

pub mod run;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;

use crate::credential::CredentialSource;
use crate::gate::Origin;

/// Memory per sandbox, unless the tenant says otherwise.
pub const DEFAULT_MEMORY_MIB: u32 = 64;
/// Longest call into the plugin, unless the tenant says otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Partitions a tenant reads at once, unless it says otherwise.
pub const DEFAULT_CONCURRENCY: u32 = 8;

/// One tenant, as a tenants file or a flow's `[tenant]` section writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// Letters, digits, `-` and `_`: it names the tenant in logs and summaries.
    pub id: String,
    /// The tenant's GitLab credential (none: its flows' own, or anonymous).
    pub credential: Option<CredentialSource>,
    /// Origins the plugin may reach besides the tenant's GitLab (no credential goes there).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub memory_mib: Option<u32>,
    pub call_timeout_secs: Option<u64>,
    pub concurrency: Option<u32>,
    pub requests_per_minute: Option<u32>,
    pub max_response_bytes: Option<u64>,
    pub max_run_bytes: Option<u64>,
}

impl TenantSpec {
    /// Check the values for form; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.id.is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("id '{}' must be letters, digits, '-' and '_'", self.id));
        }
        let range = |key: &str, value: Option<u64>, low: u64, high: u64| match value {
            Some(v) if !(low..=high).contains(&v) => Err(format!("{key} = {v} is out of range: use {low} to {high}")),
            _ => Ok(()),
        };
        range("memory_mib", self.memory_mib.map(u64::from), 1, 4096)?;
        range("call_timeout_secs", self.call_timeout_secs, 1, 3600)?;
        range("concurrency", self.concurrency.map(u64::from), 1, u64::from(crate::flow::MAX_CONCURRENCY))?;
        range("requests_per_minute", self.requests_per_minute.map(u64::from), 1, u64::from(u32::MAX))?;
        range("max_response_bytes", self.max_response_bytes, 1, u64::MAX)?;
        range("max_run_bytes", self.max_run_bytes, 1, u64::MAX)?;
        for url in &self.allowed_origins {
            Origin::of_url(url)
                .map_err(|e| format!("allowed_origins: '{url}' must be an origin like https://example.com: {e}"))?;
        }
        Ok(())
    }

    /// Whether it sets anything besides its id.
    pub fn has_settings(&self) -> bool {
        *self != TenantSpec { id: self.id.clone(), ..TenantSpec::default() }
    }

    /// Partitions the tenant reads at once.
    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }

    /// Make the paths of its credential relative to `folder` (the file that wrote it).
    pub fn resolve_paths(&mut self, folder: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        };
        match &mut self.credential {
            Some(CredentialSource::File { path, .. }) => resolve(path),
            Some(CredentialSource::OAuth { token_file: Some(path), .. }) => resolve(path),
            _ => {}
        }
    }
}

/// A tenants file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    tenants: Vec<TenantSpec>,
}

/// Read and check the tenants file at `path`: every tenant well formed, ids unique.
pub fn load(path: &Path) -> Result<Vec<TenantSpec>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read the tenants file {name}: {e}"))?;
    let file: TenantsFile = toml::from_str(&text).map_err(|e| anyhow!("{name}: {}", e.to_string().trim_end()))?;
    if file.tenants.is_empty() {
        bail!("{name}: no tenant: add a [[tenants]] table with an id");
    }
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut seen = HashSet::new();
    let mut tenants = file.tenants;
    for (index, tenant) in tenants.iter_mut().enumerate() {
        tenant.check().map_err(|e| anyhow!("{name}: tenants[{index}]: {e}"))?;
        if !seen.insert(tenant.id.clone()) {
            bail!("{name}: tenants[{index}]: the id '{}' is given twice", tenant.id);
        }
        tenant.resolve_paths(folder);
    }
    Ok(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<TenantSpec>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn reads_tenants_with_defaults_and_paths_beside_the_file() {
        let tenants = parse(
            "[[tenants]]\nid = \"acme\"\ncredential = { source = \"file\", path = \"acme.token\" }\n\
             memory_mib = 32\nmax_run_bytes = 1000\n[[tenants]]\nid = \"globex\"\n",
        )
        .unwrap();
        assert_eq!(tenants.len(), 2);
        assert_eq!(tenants[0].memory_mib, Some(32));
        assert!(matches!(&tenants[0].credential, Some(CredentialSource::File { path, .. }) if path.is_absolute()));
        assert_eq!(tenants[1].concurrency(), DEFAULT_CONCURRENCY);
        assert!(tenants[0].has_settings() && !tenants[1].has_settings());
    }

    #[test]
    fn bad_tenants_are_refused_naming_the_tenant_and_key() {
        for (text, says) in [
            ("[[tenants]]\nid = \"a b\"\n", "tenants[0]: id 'a b' must be"),
            ("[[tenants]]\nid = \"a\"\n[[tenants]]\nid = \"a\"\n", "tenants[1]: the id 'a' is given twice"),
            ("[[tenants]]\nid = \"a\"\nmemory_mib = 0\n", "tenants[0]: memory_mib = 0 is out of range"),
            ("[[tenants]]\nid = \"a\"\nallowed_origins = [\"nope\"]\n", "allowed_origins: 'nope' must be an origin"),
            ("[[tenants]]\nid = \"a\"\nmemroy_mib = 1\n", "unknown field `memroy_mib`"),
            ("tenants = []\n", "no tenant"),
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
