//! PostgreSQL connections: the URL (whose password is never shown) and a client on its own I/O thread.
//!
//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTION=VALUE...]` as libpq reads it (tokio-postgres
//! parses it: `sslmode`, `connect_timeout`, `options`, several hosts...). A missing user comes from
//! `PGUSER` (else `USER`), a missing password from `PGPASSWORD`. The URL shows itself as
//! `postgres://USER@HOST:PORT/DATABASE`, without its password, wherever it is displayed or debugged.
//!
//! A [`PgClient`] holds one connection, driven by an [`IoThread`]; [`PgClient::run`] runs an async
//! closure over the client and waits for it, from any thread. Both the PostgreSQL destination and the
//! PostgreSQL checkpoint store use it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};

use crate::io_thread::IoThread;

/// A parsed `postgres://` URL.
#[derive(Clone)]
pub struct PgUrl {
    config: Config,
    /// The URL without its password.
    shown: String,
}

/// Whether `text` is a PostgreSQL URL (as opposed to another kind of destination or store).
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// `text` with the password of its user info, if any, replaced by `***`.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, hosts)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{hosts}{tail}")
        }
        None => text.to_owned(),
    }
}

impl std::str::FromStr for PgUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let usage = "write postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
        if !is_postgres_url(text) {
            bail!("'{}' is not a PostgreSQL URL: {usage}", redact(text));
        }
        let mut config: Config =
            text.parse().map_err(|e| anyhow!("'{}' is not a valid PostgreSQL URL ({e}): {usage}", redact(text)))?;
        if config.get_hosts().is_empty() {
            bail!("the PostgreSQL URL '{}' names no host: {usage}", redact(text));
        }
        if config.get_user().is_none() {
            match std::env::var("PGUSER").or_else(|_| std::env::var("USER")) {
                Ok(user) if !user.is_empty() => {
                    config.user(user);
                }
                _ => bail!("the PostgreSQL URL '{}' names no user (nor do PGUSER or USER): {usage}", redact(text)),
            }
        }
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_ssl_mode() == SslMode::Require {
            bail!(
                "the PostgreSQL URL '{}' asks for sslmode=require, but this host speaks to PostgreSQL without TLS: \
                 reach it over a trusted network or a tunnel, with sslmode=disable or prefer",
                redact(text)
            );
        }
        let shown = shown(&config);
        Ok(PgUrl { config, shown })
    }
}

/// `postgres://USER@HOST:PORT/DATABASE`.
fn shown(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match host {
                Host::Tcp(_) => format!("{name}:{}", ports.get(i).or(ports.first()).copied().unwrap_or(5432)),
                Host::Unix(_) => name,
            }
        })
        .collect();
    let user = config.get_user().unwrap_or_default();
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}/{database}", hosts.join(","))
}

impl PgUrl {
    /// Whether `other` names this same database (host, port, user and database alike).
    pub fn same_database(&self, other: &PgUrl) -> bool {
        other.shown == self.shown
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.shown)
    }
}

impl PartialEq for PgUrl {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.config.get_password() == other.config.get_password()
    }
}

/// How long a connection to each of a URL's hosts may take, up to its authentication, where the URL
/// names no `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to PostgreSQL, driven by its own I/O thread.
pub struct PgClient {
    client: Arc<Client>,
    shown: String,
    // Dropped last: the connection task lives on it.
    io: IoThread,
}

impl PgClient {
    /// Connect to `url`, within the URL's `connect_timeout` (else [`CONNECT_TIMEOUT`]) per host.
    ///
    /// tokio-postgres bounds only each TCP connect by `connect_timeout`: a server that takes the
    /// connection and never answers (a port that is not PostgreSQL's, a proxy with nothing behind
    /// it) held the flow for ever. The limit here covers everything up to a usable connection:
    /// the TCP connects, the startup and the authentication, the per-host limit times the hosts.
    pub fn connect(url: &PgUrl) -> Result<PgClient> {
        let io = IoThread::start("postgres")?;
        let mut config = url.config.clone();
        let per_host = config.get_connect_timeout().copied().unwrap_or(CONNECT_TIMEOUT);
        // A host that does not answer the TCP connect at all is given up on in time, for the next.
        config.connect_timeout(per_host);
        let hosts = u32::try_from(config.get_hosts().len()).unwrap_or(u32::MAX).max(1);
        let limit = per_host.saturating_mul(hosts);
        let client = io
            .run(async move {
                let Ok(connected) = tokio::time::timeout(limit, config.connect(NoTls)).await else {
                    return Err(None);
                };
                let (client, connection) = connected.map_err(Some)?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::warn!("the PostgreSQL connection ended: {error}");
                    }
                });
                Ok(client)
            })?
            .map_err(|error| match error {
                Some(error) => anyhow!("cannot connect to PostgreSQL at {}: {}", url.shown, describe(&error)),
                None => anyhow!(
                    "cannot connect to PostgreSQL at {}: no answer within {} s; is it PostgreSQL listening \
                     there? (`connect_timeout=SECONDS` in the URL waits longer)",
                    url.shown,
                    limit.as_secs_f64()
                ),
            })?;
        Ok(PgClient { client: Arc::new(client), shown: url.shown.clone(), io })
    }

    /// Run `work` over the client and wait for it.
    pub fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.io.run(work(self.client.clone()))?.map_err(|e| anyhow!("PostgreSQL at {}: {}", self.shown, describe(&e)))
    }
}

/// A tokio-postgres error with the server's message, detail and hint, on one line.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            if let Some(position) = db.where_() {
                text.push_str(&format!("; where: {}", position.replace('\n', "; ")));
            }
            text
        }
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_password() {
        let url: PgUrl = "postgres://etl:s3cret@db.example.com:5433/warehouse".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://etl@db.example.com:5433/warehouse");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(redact("postgres://etl:s3cret@db/x?sslmode=disable"), "postgres://etl:***@db/x?sslmode=disable");
        assert_eq!(redact("postgres://etl@db/x"), "postgres://etl@db/x");
        let err = "postgres://etl:s3cret@db:notaport/x".parse::<PgUrl>().unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("postgres://etl:***@db:notaport/x"), "{err}");
    }

    #[test]
    fn a_server_that_takes_the_connection_and_never_answers_is_given_up_on_in_time() {
        // tokio-postgres's own connect_timeout covers only the TCP connect, which succeeds here.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url: PgUrl = format!("postgres://etl:s3cret@127.0.0.1:{port}/warehouse?connect_timeout=1").parse().unwrap();
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || answer.send(PgClient::connect(&url).err().map(|e| e.to_string())));
        let error = answered.recv_timeout(Duration::from_secs(20)).expect("given up on within 20 s").expect("an error");
        assert_eq!(
            error,
            format!(
                "cannot connect to PostgreSQL at postgres://etl@127.0.0.1:{port}/warehouse: no answer within 1 s; \
                 is it PostgreSQL listening there? (`connect_timeout=SECONDS` in the URL waits longer)"
            )
        );
        assert!(listener.accept().is_ok(), "the connection was made, and not answered");
    }

    #[test]
    fn fills_in_the_usual_defaults() {
        let url: PgUrl = "postgresql://app@localhost/db".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app@localhost:5432/db");
        assert!("postgres://app@localhost/db?sslmode=require".parse::<PgUrl>().is_err());
        assert!("mysql://app@localhost/db".parse::<PgUrl>().is_err());
    }
}
