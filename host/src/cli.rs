//! The command line: `host objects`, `host describe`, `host run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::dest::DestinationUrl;

#[derive(Parser, Debug)]
#[command(
    name = "host",
    version,
    about = "Runs source connectors (WebAssembly components) in a sandbox and writes what they read"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// Read objects from GitLab and write them to a destination.
    Run(Box<RunArgs>),
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
    pub plugin: PluginArg,
    /// GitLab's base URL, e.g. https://gitlab.com. The token comes from GITLAB_TOKEN (absent: anonymous).
    #[arg(long, value_name = "URL")]
    pub base_url: String,
    /// An object to read (repeatable); `host objects` lists them.
    #[arg(long = "object", value_name = "OBJECT", required = true)]
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
    /// Where to write: sqlite:FILE or jsonl:DIR.
    #[arg(long, default_value = "sqlite:gitlab.db", value_name = "URL")]
    pub dest: DestinationUrl,
    /// Records per page asked of GitLab (at most 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub page_size: u32,
    /// Partitions (object × scope) read at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Most memory one sandbox may use, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub memory_mib: u32,
    /// Longest one call into the plugin may take, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub call_timeout_secs: u64,
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
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
}
