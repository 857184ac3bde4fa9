//! The command line: `host objects`, `host describe`, `host run`, `host check`, `host auth login`.
//!
//! `run` and `check` take a flow ([`FlowArgs`]): a flow file, or flags that map onto the same model
//! (see [`crate::flow::flags`]).

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use crate::credential::{CredentialSource, TokenKind};
use crate::dest::DestinationUrl;
use crate::flow::Mode;
use crate::state::StateUrl;

#[derive(Parser, Debug)]
#[command(
    name = "host",
    version,
    about = "Runs source connectors (WebAssembly components) in a sandbox and writes what they read"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Where compiled plugins are cached (default: $XDG_CACHE_HOME/gitlab-host, else
    /// ~/.cache/gitlab-host); empty: no cache.
    #[arg(long, global = true, env = "HOST_CACHE_DIR", value_name = "DIR",
          value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the objects a connector offers.
    Objects {
        #[command(flatten)]
        plugin: PluginArg,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one object's schema: its fields, their types, and the filters each accepts.
    Describe {
        #[command(flatten)]
        plugin: PluginArg,
        /// The object, as `host objects` names it.
        object: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read objects from GitLab and write them to a destination, as a flow file or flags say.
    ///
    /// Ctrl-C stops a run in order: the pages already read are written, the summary is printed and
    /// the exit status is 130; the same command then resumes each partition from its checkpoint.
    Run(Box<RunArgs>),
    /// Check a flow without reading anything: validate it whole (sending nothing), then test the
    /// credential (`check-connection`) and resolve the scopes it names.
    Check(Box<FlowArgs>),
    /// Sign in to GitLab with an OAuth2 application and store the tokens for `host run`.
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Authorize an OAuth2 application in a browser (authorization code with PKCE) and store its tokens
    /// in a file only you can read. The application (GitLab: Preferences > Applications) must list the
    /// redirect URI http://127.0.0.1:PORT/callback; one marked Confidential also needs its secret
    /// (--client-secret-file, or GITLAB_OAUTH_CLIENT_SECRET), which is stored with the tokens.
    Login(LoginArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// GitLab's base URL, e.g. https://gitlab.com.
    #[arg(long, value_name = "URL")]
    pub base_url: String,
    /// The application's ID.
    #[arg(long, env = "GITLAB_OAUTH_CLIENT_ID", value_name = "ID")]
    pub client_id: String,
    /// For an application marked Confidential: a file holding its secret alone, which only you may read
    /// (chmod 600); else the secret is taken from GITLAB_OAUTH_CLIENT_SECRET, if set. It is stored with
    /// the tokens, since GitLab asks for it at each refresh too.
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,
    /// The scopes to ask for, comma-separated.
    #[arg(long, default_value = "read_api", value_name = "SCOPE,...")]
    pub scopes: String,
    /// Where to store the tokens [default: $XDG_CONFIG_HOME/gitlab-host/oauth-HOST-HASH.json, else under
    /// ~/.config/gitlab-host/, one file per base URL and application].
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// The port of the redirect URI on 127.0.0.1 (0: any free port); it must match the application's.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How long to wait for the browser to come back, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout_secs: u64,
}

/// Where `host run` takes the GitLab credential from. The first that applies: --token-file; the OAuth2
/// tokens of --oauth-token-file or --oauth-client-id; GITLAB_TOKEN (a private token); GITLAB_OAUTH_TOKEN
/// (a bearer token); none (anonymous).
#[derive(Args, Debug)]
pub struct CredentialArgs {
    /// Read the GitLab token from this file, which only you may read (chmod 600).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// How to send the token of --token-file.
    #[arg(long, value_enum, default_value = "private-token", value_name = "KIND")]
    pub token_kind: TokenKind,
    /// Use the OAuth2 tokens `host auth login` stored for this application (refreshed as they expire).
    #[arg(long, env = "GITLAB_OAUTH_CLIENT_ID", value_name = "ID")]
    pub oauth_client_id: Option<String>,
    /// Use the OAuth2 tokens stored in this file by `host auth login --token-file`.
    #[arg(long, env = "GITLAB_OAUTH_TOKEN_FILE", value_name = "PATH")]
    pub oauth_token_file: Option<PathBuf>,
}

impl CredentialArgs {
    /// The credential source these flags (and the environment) select; none for anonymous access.
    pub fn source(&self) -> Option<CredentialSource> {
        self.explicit().or_else(CredentialSource::from_environment)
    }

    /// The credential source the flags name (`--token-file`, `--oauth-*` and their variables), if any:
    /// it replaces a flow file's.
    pub fn explicit(&self) -> Option<CredentialSource> {
        if let Some(path) = &self.token_file {
            return Some(CredentialSource::File { path: path.clone(), kind: self.token_kind });
        }
        if self.oauth_client_id.is_some() || self.oauth_token_file.is_some() {
            return Some(CredentialSource::OAuth {
                client_id: self.oauth_client_id.clone(),
                token_file: self.oauth_token_file.clone(),
            });
        }
        None
    }
}

#[derive(Args, Debug)]
pub struct PluginArg {
    /// The connector component (gitlab.wasm).
    #[arg(long, env = "HOST_PLUGIN", value_name = "WASM")]
    pub plugin: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
}

/// A flow: from a flow file (`--flow`), or from flags. `--plugin`, `--dest`, `--state`, `--mode`,
/// `--lookback`, `--page-size` and `--concurrency` also override a flow file's settings.
#[derive(Args, Debug)]
pub struct FlowArgs {
    /// A flow file (TOML) naming the plugin, the connection, the objects and the destination.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["base_url", "objects", "projects", "groups", "instance", "fields", "filters", "flow_id"]
    )]
    pub flow: Option<PathBuf>,
    /// A tenants file (TOML): each tenant's id, credential, allowed origins and limits. With --flows,
    /// runs every flow of every tenant side by side.
    #[arg(
        long,
        value_name = "FILE",
        requires = "flows",
        conflicts_with_all = ["flow", "base_url", "objects", "projects", "groups", "instance", "fields", "filters", "flow_id", "dest", "state"]
    )]
    pub tenants: Option<PathBuf>,
    /// A folder of flow files (`*.toml`), each naming its tenant with `[tenant] id = "..."`.
    #[arg(long, value_name = "DIR", requires = "tenants")]
    pub flows: Option<PathBuf>,
    /// The connector component (gitlab.wasm); overrides the flow file's `plugin`.
    #[arg(long, env = "HOST_PLUGIN", value_name = "WASM")]
    pub plugin: Option<PathBuf>,
    /// GitLab's base URL, e.g. https://gitlab.com. The token comes from GITLAB_TOKEN (a private token) or
    /// GITLAB_OAUTH_TOKEN (an OAuth2 token); neither: anonymous.
    #[arg(long, value_name = "URL", required_unless_present_any = ["flow", "tenants"])]
    pub base_url: Option<String>,
    #[command(flatten)]
    pub credential: CredentialArgs,
    /// An object to read (repeatable); `host objects` lists them.
    #[arg(long = "object", value_name = "OBJECT", required_unless_present_any = ["flow", "tenants"])]
    pub objects: Vec<String>,
    /// A project to read under, by id or full path (repeatable).
    #[arg(long = "project", value_name = "ID_OR_PATH")]
    pub projects: Vec<String>,
    /// A group to read under, by id or full path (repeatable).
    #[arg(long = "group", value_name = "ID_OR_PATH")]
    pub groups: Vec<String>,
    /// Read under the whole instance (everything the token is a member of).
    #[arg(long)]
    pub instance: bool,
    /// The record fields to keep, comma-separated (the primary key is always kept); default: all.
    #[arg(long, value_delimiter = ',', value_name = "FIELD,...")]
    pub fields: Vec<String>,
    /// A filter 'FIELD OP VALUE' with OP one of =, >=, <=, between (repeatable; all must hold).
    #[arg(long = "filter", value_name = "'FIELD OP VALUE'")]
    pub filters: Vec<String>,
    /// The flow's id, which keys its checkpoints (default: `cli`).
    #[arg(long = "flow-id", value_name = "ID")]
    pub flow_id: Option<String>,
    /// Where to write: sqlite:FILE, jsonl:DIR, csv:DIR, parquet:DIR, postgres://USER@HOST:PORT/DATABASE or
    /// s3://BUCKET/PREFIX[?format=jsonl|csv|parquet] (default: sqlite:gitlab.db).
    #[arg(long, value_name = "URL")]
    pub dest: Option<DestinationUrl>,
    /// Where to keep checkpoints: sqlite:PATH or postgres://... (default: beside the destination).
    #[arg(long, value_name = "URL")]
    pub state: Option<StateUrl>,
    /// `full` reads everything; `incremental` reads what changed since the last completed read
    /// (default: full).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// How far before the watermark an incremental read starts, e.g. 5m, 1h, 90s (default: 5m).
    #[arg(long, value_name = "DURATION")]
    pub lookback: Option<String>,
    /// Records per page asked of GitLab, at most 100 (default: 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub page_size: Option<u32>,
    /// Partitions (object × scope) read at once (default: 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,
    /// Most memory one sandbox may use, in MiB (default: the tenant's, else 64).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub memory_mib: Option<u32>,
    /// Longest one call into the plugin may take, in seconds (default: the tenant's, else 30).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub call_timeout_secs: Option<u64>,
    /// Another origin the plugin may reach besides --base-url's (repeatable). It gets no credential and
    /// must be at a public address: private, loopback and link-local addresses are refused.
    #[arg(long = "allow-origin", value_name = "URL")]
    pub allow_origins: Vec<String>,
    /// At most this many requests a minute to GitLab, evenly spaced (default: as many as GitLab's
    /// RateLimit headers allow).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_requests_per_minute: Option<u32>,
    /// Attempts of one page (the first included) on a 429, a 500/502/503/504, or a network failure.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub retry_attempts: u32,
    /// Longest total wait between the attempts of one page, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub retry_max_wait_secs: u64,
    /// First retry backoff, in milliseconds; it doubles at each retry (at most 60 s), with random jitter.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub retry_backoff_ms: u64,
    /// Longest wait to connect, for the response headers, and between two chunks of a body, in seconds
    /// (default: 20, and always shorter than --call-timeout-secs).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_timeout_secs: Option<u64>,
}
