//! A flow from the command line: `--flow FILE` (with flags overriding some of its settings), or the
//! flags alone (`--base-url`, `--object`, `--project`...), mapped onto the same [`Flow`] as a file.
//!
//! A flow of flags is keyed like a file (`objects[0].filters[1]`); its [`Origins`] point each key at
//! the flag it came from, so errors read `--filter 'state >= opened': ...`. Its id is `cli` unless
//! `--flow-id` names another, and its credential comes from `GITLAB_TOKEN` (a private token) or
//! `GITLAB_OAUTH_TOKEN` (an OAuth2 bearer token).

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use super::connection::{ConnectionSpec, CredentialSource};
use super::origin::{Origins, Place};
use super::{
    DEFAULT_CONCURRENCY, DEFAULT_LOOKBACK, DEFAULT_PAGE_SIZE, Flow, Mode, ObjectFlow, ScopeRef, check_flow_id, file,
    filter, parse_lookback,
};
use crate::cli::FlowArgs;
use crate::dest::DestinationUrl;
use crate::gate::Origin;
use crate::sandbox::wit::Scope;
use crate::state::StateUrl;

/// The id of a flow given by flags, unless `--flow-id` names another.
pub const CLI_FLOW_ID: &str = "cli";
/// Where a flow of flags writes, unless `--dest` says otherwise.
const DEFAULT_DESTINATION: &str = "sqlite:gitlab.db";

/// The settings flags give a flow file; each, when given, wins over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub plugin: Option<PathBuf>,
    pub destination: Option<DestinationUrl>,
    pub state: Option<StateUrl>,
    pub mode: Option<Mode>,
    pub lookback: Option<String>,
    pub page_size: Option<u32>,
    pub concurrency: Option<u32>,
    /// A credential named by flags (`--token-file`, `--oauth-*`), not by the environment.
    pub credential: Option<CredentialSource>,
}

impl Overrides {
    fn of(args: &FlowArgs) -> Overrides {
        Overrides {
            plugin: args.plugin.clone(),
            destination: args.dest.clone(),
            state: args.state.clone(),
            mode: args.mode,
            lookback: args.lookback.clone(),
            page_size: args.page_size,
            concurrency: args.concurrency,
            credential: args.credential.explicit(),
        }
    }

    /// Apply the overrides given to `flow`, noting each as written by its flag.
    pub fn apply(&self, flow: &mut Flow) -> Result<()> {
        let origins = &mut flow.origins;
        if let Some(plugin) = &self.plugin {
            flow.plugin.clone_from(plugin);
            origins.record("plugin", Place::Flag(format!("--plugin {}", plugin.display())));
        }
        if let Some(destination) = &self.destination {
            flow.destination = destination.clone();
            origins.record("destination.url", Place::Flag(format!("--dest {destination}")));
        }
        if let Some(source) = &self.credential {
            flow.connection.credential = Some(source.clone());
            origins.record("connection.credential", Place::Flag(source.describe()));
        }
        if let Some(state) = &self.state {
            flow.state = Some(state.clone());
            origins.record("state.url", Place::Flag(format!("--state {state}")));
        }
        if let Some(mode) = self.mode {
            origins.record("mode", Place::Flag(format!("--mode {}", mode.name())));
            for object in &mut flow.objects {
                object.mode = mode;
                origins.record(object.key_of("mode"), Place::Flag(format!("--mode {}", mode.name())));
            }
        }
        if let Some(text) = &self.lookback {
            let flag = format!("--lookback {text}");
            flow.lookback = parse_lookback(text).map_err(|e| anyhow!("{flag}: {e}"))?;
            origins.record("lookback", Place::Flag(flag));
        }
        if let Some(page_size) = self.page_size {
            flow.page_size = page_size;
            origins.record("page_size", Place::Flag(format!("--page-size {page_size}")));
        }
        if let Some(concurrency) = self.concurrency {
            flow.concurrency = concurrency as usize;
            origins.record("concurrency", Place::Flag(format!("--concurrency {concurrency}")));
        }
        Ok(())
    }
}

/// The flow `args` describe: a flow file with the flags' overrides, or the flags alone.
pub fn flow_of(args: &FlowArgs) -> Result<Flow> {
    let overrides = Overrides::of(args);
    match &args.flow {
        Some(path) => file::load(path, &overrides),
        None => from_flags(args, &overrides),
    }
}

/// A flow of flags alone.
fn from_flags(args: &FlowArgs, overrides: &Overrides) -> Result<Flow> {
    let mut origins = Origins::flags();
    let Some(plugin) = &args.plugin else {
        bail!("say which connector to run: --plugin gitlab.wasm (or HOST_PLUGIN=gitlab.wasm)");
    };
    let base_url = args.base_url.clone().ok_or_else(|| anyhow!("say where GitLab is: --base-url URL"))?;
    Origin::of_url(&base_url)
        .map_err(|e| anyhow!("--base-url must be GitLab's address, like https://gitlab.com: {e}"))?;
    origins.record("connection.base_url", Place::Flag(format!("--base-url {base_url}")));

    // Where the token is (--token-file, --oauth-*, else GITLAB_TOKEN or GITLAB_OAUTH_TOKEN); it is read
    // when the flow is run.
    let credential = args.credential.source();
    if let Some(source) = &credential {
        origins.record("connection.credential", Place::Flag(source.describe()));
    }

    let mut scopes: Vec<(Scope, &str, String)> = Vec::new();
    scopes.extend(args.projects.iter().map(|p| (Scope::Project(p.clone()), "projects", format!("--project {p}"))));
    scopes.extend(args.groups.iter().map(|g| (Scope::Group(g.clone()), "groups", format!("--group {g}"))));
    if args.instance {
        scopes.push((Scope::Instance, "instance", "--instance".to_owned()));
    }
    if scopes.is_empty() {
        bail!("say where to read: --project ID_OR_PATH, --group ID_OR_PATH (both repeatable) or --instance");
    }
    let filters = args
        .filters
        .iter()
        .map(|text| filter::parse_filter(text).map_err(|e| anyhow!("--filter '{text}': {e}")))
        .collect::<Result<Vec<_>>>()?;

    let mut objects = Vec::new();
    for (index, object) in args.objects.iter().enumerate() {
        let key = format!("objects[{index}]");
        origins.record(format!("{key}.object"), Place::Flag(format!("--object {object}")));
        let mut counts = std::collections::HashMap::new();
        let scopes = scopes
            .iter()
            .map(|(scope, kind, flag)| {
                let n = counts.entry(*kind).or_insert(0);
                let scope_key =
                    if *kind == "instance" { format!("{key}.instance") } else { format!("{key}.{kind}[{n}]") };
                *n += 1;
                origins.record(scope_key.clone(), Place::Flag(flag.clone()));
                ScopeRef { scope: scope.clone(), key: scope_key }
            })
            .collect();
        if !args.fields.is_empty() {
            origins.record(format!("{key}.fields"), Place::Flag(format!("--fields {}", args.fields.join(","))));
        }
        for (n, text) in args.filters.iter().enumerate() {
            origins.record(format!("{key}.filters[{n}]"), Place::Flag(format!("--filter '{text}'")));
        }
        objects.push(ObjectFlow {
            object: object.clone(),
            scopes,
            fields: args.fields.clone(),
            filters: filters.clone(),
            mode: Mode::Full,
            key,
        });
    }

    let id = args.flow_id.clone().unwrap_or_else(|| CLI_FLOW_ID.to_owned());
    check_flow_id(&id).map_err(|e| anyhow!("--flow-id: {e}"))?;
    let mut flow = Flow {
        id,
        plugin: plugin.clone(),
        connection: ConnectionSpec { base_url, credential },
        objects,
        lookback: DEFAULT_LOOKBACK,
        page_size: DEFAULT_PAGE_SIZE,
        concurrency: DEFAULT_CONCURRENCY as usize,
        destination: DEFAULT_DESTINATION.parse()?,
        state: None,
        tenant: None,
        origins,
    };
    overrides.apply(&mut flow)?;
    Ok(flow)
}
