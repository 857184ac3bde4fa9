//! Flow files: a [`Flow`] written in TOML.
//!
//! ```toml
//! id = "acme-nightly"              # optional; default: the file's stem
//! plugin = "gitlab.wasm"           # paths are relative to this file
//! mode = "incremental"             # or "full" (the default)
//! lookback = "5m"                  # incremental reads start this far before the watermark
//! concurrency = 8                  # partitions read at once
//! page_size = 100
//!
//! [connection]
//! base_url = "https://gitlab.example.com"
//! [connection.credential]          # omit for anonymous access
//! env = "GITLAB_TOKEN"             # or file = "token.txt", or oauth = { client_id = "...", token_file = "..." }
//! kind = "private-token"           # or "bearer"
//!
//! [[objects]]
//! object = "issue"
//! projects = ["acme/api", 42]      # and/or groups = ["acme"], instance = true
//! fields = ["title", "state"]      # optional; default: every field
//! filters = ["state = opened"]     # optional; FIELD OP VALUE
//! mode = "full"                    # optional; overrides the flow's mode for this object
//!
//! [destination]
//! url = "sqlite:gitlab.db"
//!
//! [state]                          # optional; default: beside the destination
//! url = "sqlite:state.db"
//!
//! [tenant]                         # optional; see crate::tenant for its keys
//! id = "acme"                      # alone, under `host run --tenants`: the tenants file has the rest
//! memory_mib = 64
//! ```
//!
//! The text goes through serde (`toml` with spans, `serde_path_to_error` for the key path of a value
//! serde refuses) into raw structs that keep every value's span; the raw flow is then checked for
//! form and turned into a [`Flow`] whose [`Origins`] hold the line of every key, so that errors found
//! later (by the plugin, by the upstream) still name `file:line: key`. Unknown keys are errors.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::connection::{ConnectionSpec, CredentialSource, TokenKind};
use super::flags::Overrides;
use super::origin::{Origins, Place};
use super::{
    DEFAULT_CONCURRENCY, DEFAULT_LOOKBACK, DEFAULT_PAGE_SIZE, Flow, MAX_CONCURRENCY, Mode, ObjectFlow, ScopeRef,
    check_flow_id, filter, parse_lookback,
};
use crate::dest::DestinationUrl;
use crate::gate::Origin;
use crate::sandbox::wit::Scope;
use crate::state::StateUrl;
use crate::tenant::TenantSpec;

/// A flow file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    id: Option<Spanned<String>>,
    plugin: Option<Spanned<String>>,
    mode: Option<Spanned<Mode>>,
    lookback: Option<Spanned<String>>,
    concurrency: Option<Spanned<u32>>,
    page_size: Option<Spanned<u32>>,
    connection: Option<Spanned<RawConnection>>,
    objects: Option<Spanned<Vec<Spanned<RawObject>>>>,
    destination: Option<Spanned<RawUrl>>,
    state: Option<Spanned<RawUrl>>,
    /// Whose flow it is (`id`), and for a flow run alone, that tenant's credential, origins and limits.
    tenant: Option<Spanned<TenantSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    base_url: Spanned<String>,
    credential: Option<Spanned<RawCredential>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    oauth: Option<Spanned<RawOAuth>>,
    kind: Option<Spanned<TokenKind>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    client_id: Spanned<String>,
    token_file: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    object: Spanned<String>,
    #[serde(default)]
    projects: Vec<Spanned<IdOrPath>>,
    #[serde(default)]
    groups: Vec<Spanned<IdOrPath>>,
    instance: Option<Spanned<bool>>,
    fields: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    filters: Vec<Spanned<String>>,
    mode: Option<Spanned<Mode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUrl {
    url: Spanned<String>,
}

/// A project or group as a flow names it: a numeric id (`42`) or a full path (`"acme/api"`).
struct IdOrPath(String);

impl<'de> Deserialize<'de> for IdOrPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdOrPathVisitor;
        impl Visitor<'_> for IdOrPathVisitor {
            type Value = IdOrPath;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a numeric id or a full path such as \"acme/api\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<IdOrPath, E> {
                match text.trim() {
                    "" => Err(E::custom("an empty path: write a numeric id or a full path such as \"acme/api\"")),
                    text => Ok(IdOrPath(text.to_owned())),
                }
            }
            fn visit_i64<E: de::Error>(self, id: i64) -> Result<IdOrPath, E> {
                if id > 0 { Ok(IdOrPath(id.to_string())) } else { Err(E::custom(format!("{id} is not an id"))) }
            }
            fn visit_u64<E: de::Error>(self, id: u64) -> Result<IdOrPath, E> {
                self.visit_i64(i64::try_from(id).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_any(IdOrPathVisitor)
    }
}

/// Read and check the flow file at `path`; `overrides` (from flags) win over what it says.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Flow> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read the flow file {name}: {e}"))?;
    let folder = path.parent().unwrap_or(Path::new("")).to_owned();
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    parse(&text, &FileInfo { name, folder, stem }, overrides)
}

/// What a flow file's name tells.
struct FileInfo {
    /// The file as the user named it, for errors.
    name: String,
    /// Its folder: relative paths in the file are relative to it.
    folder: PathBuf,
    /// Its stem: the flow's id unless it names one.
    stem: String,
}

/// The 1-based line of each byte offset of a text.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Lines {
        Lines(text.match_indices('\n').map(|(i, _)| i).collect())
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&newline| newline < offset) + 1
    }
}

/// Turns a raw flow into a [`Flow`], noting where each key was written.
struct Reader<'a> {
    file: &'a FileInfo,
    lines: Lines,
    origins: Origins,
}

impl Reader<'_> {
    /// Note the line of `key`; give back its value.
    fn note<'v, T>(&mut self, key: &str, value: &'v Spanned<T>) -> &'v T {
        self.origins.record(key, Place::Line(self.lines.line(value.span().start)));
        value.get_ref()
    }

    fn error(&self, key: &str, message: impl std::fmt::Display) -> anyhow::Error {
        self.origins.error(key, message)
    }

    /// `path` from the file, relative to the file's folder.
    fn path(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_owned() } else { self.file.folder.join(path) }
    }

    /// A `kind:PATH` URL from the file with a relative PATH made relative to the file's folder;
    /// network URLs (`postgres://...`) are left as they are.
    fn url(&self, url: &str) -> String {
        match url.split_once(':') {
            Some((kind, rest))
                if !kind.is_empty()
                    && kind.chars().all(|c| c.is_ascii_alphanumeric())
                    && !rest.is_empty()
                    && !rest.starts_with('/') =>
            {
                format!("{kind}:{}", self.path(rest).display())
            }
            _ => url.to_owned(),
        }
    }
}

/// Parse and check a flow file's `text`.
fn parse(text: &str, file: &FileInfo, overrides: &Overrides) -> Result<Flow> {
    let lines = Lines::of(text);
    let raw = deserialize(text, &file.name, &lines)?;
    let mut reader = Reader { file, lines, origins: Origins::file(&file.name) };
    let r = &mut reader;

    let id = match &raw.id {
        Some(id) => {
            let id = r.note("id", id).clone();
            check_flow_id(&id).map_err(|e| r.error("id", e))?;
            id
        }
        None => {
            check_flow_id(&file.stem)
                .map_err(|e| r.error("id", format!("the file name gives no id ({e}); add id = \"...\"")))?;
            file.stem.clone()
        }
    };
    let plugin = match (&overrides.plugin, &raw.plugin) {
        (Some(plugin), _) => plugin.clone(),
        (None, Some(plugin)) => {
            let plugin = r.note("plugin", plugin).clone();
            r.path(&plugin)
        }
        (None, None) => {
            return Err(
                r.error("plugin", "missing: add plugin = \"gitlab.wasm\" (relative to this file) or pass --plugin")
            );
        }
    };
    let mut connection = connection(r, raw.connection.as_ref())?;
    let tenant = match &raw.tenant {
        Some(tenant) => {
            let mut tenant = r.note("tenant", tenant).clone();
            tenant.check().map_err(|e| r.error("tenant", e))?;
            tenant.resolve_paths(&file.folder);
            if let Some(credential) = tenant.credential.take() {
                if connection.credential.is_some() {
                    return Err(
                        r.error("tenant", "a credential is given both here and in [connection.credential]: keep one")
                    );
                }
                connection.credential = Some(credential);
            }
            Some(tenant)
        }
        None => None,
    };

    let mode = raw.mode.as_ref().map_or(Mode::Full, |m| *r.note("mode", m));
    let lookback = match &raw.lookback {
        Some(text) => {
            let text: &String = r.note("lookback", text);
            parse_lookback(text).map_err(|e| r.error("lookback", e))?
        }
        None => DEFAULT_LOOKBACK,
    };
    let concurrency = match &raw.concurrency {
        Some(n) => match *r.note("concurrency", n) {
            n @ 1..=MAX_CONCURRENCY => n,
            n => return Err(r.error("concurrency", format!("{n} is out of range: use 1 to {MAX_CONCURRENCY}"))),
        },
        None => DEFAULT_CONCURRENCY,
    };
    let page_size = match &raw.page_size {
        Some(n) => match *r.note("page_size", n) {
            n @ 1..=DEFAULT_PAGE_SIZE => n,
            n => return Err(r.error("page_size", format!("{n} is out of range: use 1 to {DEFAULT_PAGE_SIZE}"))),
        },
        None => DEFAULT_PAGE_SIZE,
    };

    let Some(raw_objects) = &raw.objects else {
        return Err(r.error(
            "objects",
            "nothing to read: add an [[objects]] table with object = \"issue\" and projects, groups or instance",
        ));
    };
    let raw_objects = r.note("objects", raw_objects);
    if raw_objects.is_empty() {
        return Err(r.error("objects", "nothing to read: add an [[objects]] table"));
    }
    let mut objects = Vec::new();
    for (index, raw_object) in raw_objects.iter().enumerate() {
        let key = format!("objects[{index}]");
        let raw_object = r.note(&key, raw_object);
        objects.push(object(r, key, raw_object, mode)?);
    }

    let destination = match (&overrides.destination, &raw.destination) {
        (Some(destination), _) => destination.clone(),
        (None, Some(raw)) => {
            r.note("destination", raw);
            let url: &String = r.note("destination.url", &raw.get_ref().url);
            let url = r.url(url);
            url.parse::<DestinationUrl>().map_err(|e| r.error("destination.url", e))?
        }
        (None, None) => {
            return Err(r.error(
                "destination",
                "missing: add [destination] with url = \"sqlite:gitlab.db\" (or jsonl:DIR, csv:DIR, parquet:DIR, \
                 postgres://..., s3://...), or pass --dest",
            ));
        }
    };
    let state = match &raw.state {
        Some(raw) => {
            r.note("state", raw);
            let url: &String = r.note("state.url", &raw.get_ref().url);
            let url = r.url(url);
            Some(url.parse::<StateUrl>().map_err(|e| r.error("state.url", e))?)
        }
        None => None,
    };

    let mut flow = Flow {
        id,
        plugin,
        connection,
        objects,
        lookback,
        page_size,
        concurrency: concurrency as usize,
        destination,
        state,
        tenant,
        origins: reader.origins,
    };
    overrides.apply(&mut flow)?;
    Ok(flow)
}

/// Deserialize `text`, or say where and what is wrong: `flow.toml:7: objects[0].projects[1]: ...`.
fn deserialize(text: &str, name: &str, lines: &Lines) -> Result<RawFlow> {
    let located = |span: Option<std::ops::Range<usize>>| match span {
        Some(span) => format!("{name}:{}", lines.line(span.start)),
        None => name.to_owned(),
    };
    let document = toml::Deserializer::parse(text)
        .map_err(|e| anyhow!("{}: not valid TOML: {}", located(e.span()), e.message().trim()))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let key = key_of(e.path());
        let place = located(e.inner().span());
        let message = e.inner().message().trim();
        if key.is_empty() { anyhow!("{place}: {message}") } else { anyhow!("{place}: {key}: {message}") }
    })
}

/// A serde path as a flow key (`objects[1].filters[0]`), without the fields `Spanned` adds.
fn key_of(path: &serde_path_to_error::Path) -> String {
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key: name } | serde_path_to_error::Segment::Enum { variant: name } => {
                if name.starts_with("$__serde_spanned") {
                    continue;
                }
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    key
}

/// The `[connection]` section.
fn connection(r: &mut Reader, raw: Option<&Spanned<RawConnection>>) -> Result<ConnectionSpec> {
    let Some(raw) = raw else {
        return Err(r.error("connection", "missing: add [connection] with base_url = \"https://gitlab.com\""));
    };
    let raw = r.note("connection", raw);
    let base_url = r.note("connection.base_url", &raw.base_url).trim().to_owned();
    Origin::of_url(&base_url).map_err(|e| {
        r.error("connection.base_url", format!("must be GitLab's address, like https://gitlab.com: {e}"))
    })?;
    let credential = match &raw.credential {
        Some(credential) => Some(credential_spec(r, credential)?),
        None => None,
    };
    Ok(ConnectionSpec { base_url, credential })
}

/// The `[connection.credential]` section: exactly one source, and how the token is sent.
fn credential_spec(r: &mut Reader, raw: &Spanned<RawCredential>) -> Result<CredentialSource> {
    let key = "connection.credential";
    let raw = r.note(key, raw);
    let usage =
        "name one source: env = \"VAR\", file = \"PATH\" or oauth = { client_id = \"...\", token_file = \"PATH\" }";
    let kind = raw.kind.as_ref().map(|kind| *r.note("connection.credential.kind", kind));
    match (&raw.env, &raw.file, &raw.oauth) {
        (Some(var), None, None) => {
            let var = r.note("connection.credential.env", var).trim().to_owned();
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(
                    r.error("connection.credential.env", format!("'{var}' is not an environment variable name"))
                );
            }
            Ok(CredentialSource::Env { var, kind: kind.unwrap_or_default() })
        }
        (None, Some(path), None) => {
            let path = r.note("connection.credential.file", path).clone();
            Ok(CredentialSource::File { path: r.path(&path), kind: kind.unwrap_or_default() })
        }
        (None, None, Some(oauth)) => {
            if kind == Some(TokenKind::PrivateToken) {
                return Err(r.error("connection.credential.kind", "an OAuth2 token is sent as a bearer token"));
            }
            let oauth = r.note("connection.credential.oauth", oauth);
            let client_id = r.note("connection.credential.oauth.client_id", &oauth.client_id).clone();
            let token_file = r.note("connection.credential.oauth.token_file", &oauth.token_file).clone();
            Ok(CredentialSource::OAuth { client_id: Some(client_id), token_file: Some(r.path(&token_file)) })
        }
        (None, None, None) => Err(r.error(key, format!("no source: {usage}"))),
        _ => Err(r.error(key, format!("more than one source: {usage}"))),
    }
}

/// One `[[objects]]` table.
fn object(r: &mut Reader, key: String, raw: &RawObject, flow_mode: Mode) -> Result<ObjectFlow> {
    let name = r.note(&format!("{key}.object"), &raw.object).trim().to_owned();
    if name.is_empty() {
        return Err(r.error(&format!("{key}.object"), "empty: name an object, as `host objects` lists them"));
    }
    let mut scopes = Vec::new();
    for (kind, list) in [("projects", &raw.projects), ("groups", &raw.groups)] {
        for (n, value) in list.iter().enumerate() {
            let scope_key = format!("{key}.{kind}[{n}]");
            let IdOrPath(reference) = r.note(&scope_key, value);
            let scope =
                if kind == "projects" { Scope::Project(reference.clone()) } else { Scope::Group(reference.clone()) };
            scopes.push(ScopeRef { scope, key: scope_key });
        }
    }
    if let Some(instance) = &raw.instance
        && *r.note(&format!("{key}.instance"), instance)
    {
        scopes.push(ScopeRef { scope: Scope::Instance, key: format!("{key}.instance") });
    }
    if scopes.is_empty() {
        return Err(r.error(
            &key,
            format!(
                "no scope to read '{name}' under: add projects = [\"group/project\"], groups = [\"group\"] or \
                 instance = true"
            ),
        ));
    }
    let mut fields = Vec::new();
    if let Some(list) = &raw.fields {
        for (n, field) in r.note(&format!("{key}.fields"), list).iter().enumerate() {
            let field_key = format!("{key}.fields[{n}]");
            let field = r.note(&field_key, field).trim().to_owned();
            if field.is_empty() {
                return Err(r.error(&field_key, "an empty field name"));
            }
            fields.push(field);
        }
    }
    let mut filters = Vec::new();
    for (n, text) in raw.filters.iter().enumerate() {
        let filter_key = format!("{key}.filters[{n}]");
        let text = r.note(&filter_key, text);
        filters.push(filter::parse_filter(text).map_err(|e| r.error(&filter_key, e))?);
    }
    let mode = raw.mode.as_ref().map_or(flow_mode, |m| *r.note(&format!("{key}.mode"), m));
    Ok(ObjectFlow { object: name, scopes, fields, filters, mode, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> FileInfo {
        FileInfo { name: "flows/nightly.toml".into(), folder: PathBuf::from("flows"), stem: "nightly".into() }
    }

    fn flow(text: &str) -> Result<Flow> {
        parse(text, &info(), &Overrides::default())
    }

    fn error(text: &str) -> String {
        format!("{:#}", flow(text).expect_err("should be refused"))
    }

    const GOOD: &str = r#"
plugin = "gitlab.wasm"
mode = "incremental"
lookback = "10m"

[connection]
base_url = "https://gitlab.example.com"

[connection.credential]
file = "token.txt"
kind = "bearer"

[[objects]]
object = "issue"
projects = ["acme/api", 42]
filters = ["state = opened"]

[[objects]]
object = "project"
groups = ["acme"]
fields = ["name"]
mode = "full"

[destination]
url = "sqlite:out.db"

[state]
url = "postgres://u@db.example/state"
"#;

    #[test]
    fn a_good_file_fills_the_model() {
        let flow = flow(GOOD).unwrap();
        assert_eq!(flow.id, "nightly");
        assert_eq!(flow.plugin, PathBuf::from("flows/gitlab.wasm"));
        assert_eq!(flow.lookback, std::time::Duration::from_secs(600));
        assert_eq!(
            flow.connection.credential,
            Some(CredentialSource::File { path: "flows/token.txt".into(), kind: TokenKind::Bearer })
        );
        assert_eq!(flow.objects.len(), 2);
        let issue = &flow.objects[0];
        assert_eq!(issue.mode, Mode::Incremental);
        assert_eq!(issue.scopes[1].key, "objects[0].projects[1]");
        assert!(matches!(&issue.scopes[1].scope, Scope::Project(id) if id == "42"));
        assert_eq!(flow.objects[1].mode, Mode::Full);
        assert_eq!(flow.destination, DestinationUrl::Sqlite("flows/out.db".into()));
        assert_eq!(flow.state, Some(StateUrl::Postgres(Box::new("postgres://u@db.example/state".parse().unwrap()))));
        // Lines are kept for errors found later.
        assert_eq!(flow.origins.message("objects[1].fields", "x"), "flows/nightly.toml:21: objects[1].fields: x");
        assert_eq!(
            flow.origins.message("objects[0].filters[0]", "x"),
            "flows/nightly.toml:16: objects[0].filters[0]: x"
        );
        assert_eq!(flow.origins.message("objects[1]", "x"), "flows/nightly.toml:18: objects[1]: x");
    }

    #[test]
    fn overrides_win_and_are_located_at_their_flag() {
        let overrides = Overrides {
            mode: Some(Mode::Full),
            destination: Some("jsonl:elsewhere".parse().unwrap()),
            ..Overrides::default()
        };
        let flow = parse(GOOD, &info(), &overrides).unwrap();
        assert!(flow.objects.iter().all(|o| o.mode == Mode::Full));
        assert_eq!(flow.destination, DestinationUrl::Files(crate::dest::FileFormat::Jsonl, "elsewhere".into()));
        assert_eq!(flow.origins.message("objects[0].mode", "x"), "--mode full: x");
    }

    #[test]
    fn every_error_names_file_line_and_key() {
        let cases = [
            (
                GOOD.replace("lookback = \"10m\"", "colour = \"red\""),
                "flows/nightly.toml:4: colour: unknown field `colour`",
            ),
            (
                GOOD.replace("object = \"project\"", "object = \"project\"\ncolour = 1"),
                "flows/nightly.toml:20: objects[1].colour: unknown field `colour`",
            ),
            (
                GOOD.replace("lookback = \"10m\"", "concurrency = \"eight\""),
                "flows/nightly.toml:4: concurrency: invalid type: string \"eight\", expected u32",
            ),
            (
                GOOD.replace("\"state = opened\"", "\"state\""),
                "flows/nightly.toml:16: objects[0].filters[0]: filter 'state' is incomplete",
            ),
            (GOOD.replace("42]", "-1]"), "flows/nightly.toml:15: objects[0].projects[1]: -1 is not an id"),
            (
                GOOD.replace("groups = [\"acme\"]\n", ""),
                "flows/nightly.toml:18: objects[1]: no scope to read 'project' under",
            ),
            (
                GOOD.replace("\"incremental\"", "\"sometimes\""),
                "flows/nightly.toml:3: mode: unknown variant `sometimes`, expected `full` or `incremental`",
            ),
            (
                GOOD.replace("\"10m\"", "\"ten minutes\""),
                "flows/nightly.toml:4: lookback: 'ten minutes' is not a duration",
            ),
            (
                GOOD.replace("file = \"token.txt\"", "file = \"token.txt\"\nenv = \"T\""),
                "flows/nightly.toml:9: connection.credential: more than one source",
            ),
            (
                GOOD.replace("https://gitlab.example.com", "gitlab.example.com"),
                "flows/nightly.toml:7: connection.base_url: must be GitLab's address",
            ),
            (
                GOOD.replace("sqlite:out.db", "parquet"),
                "flows/nightly.toml:25: destination.url: destination 'parquet' has no kind",
            ),
            (GOOD.replace("plugin = \"gitlab.wasm\"\n", ""), "flows/nightly.toml: plugin: missing"),
            (
                GOOD.replace("[destination]\nurl = \"sqlite:out.db\"\n", ""),
                "flows/nightly.toml: destination: missing: add [destination] with url = \"sqlite:gitlab.db\" (or \
                 jsonl:DIR, csv:DIR, parquet:DIR, postgres://..., s3://...), or pass --dest",
            ),
            (GOOD.replace("[[objects]]", "[[objects]"), "flows/nightly.toml:13: not valid TOML"),
        ];
        for (text, expected) in cases {
            let error = error(&text);
            assert!(error.starts_with(expected), "expected '{expected}', got '{error}'");
        }
    }

    #[test]
    fn oauth_names_its_application_and_token_file() {
        let text = GOOD.replace(
            "file = \"token.txt\"\nkind = \"bearer\"",
            "oauth = { client_id = \"app\", token_file = \"oauth.json\" }",
        );
        let flow = flow(&text).unwrap();
        assert_eq!(
            flow.connection.credential,
            Some(CredentialSource::OAuth {
                client_id: Some("app".into()),
                token_file: Some("flows/oauth.json".into())
            })
        );
        let text = text.replace("oauth = {", "kind = \"private-token\"\noauth = {");
        assert!(error(&text).contains("an OAuth2 token is sent as a bearer token"), "{}", error(&text));
    }
}
