//! Destinations: where pages of records are written.
//!
//! A destination is opened from a URL (`sqlite:PATH`, `jsonl:DIR`), told each object's table schema
//! once, then handed pages of NDJSON records. All writes go through one [`Writer`] thread per run, so a
//! destination is only ever used from one thread; a partition waits for its page to be durably written
//! before it asks for the next one.

pub mod jsonl;
pub mod sqlite;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::{mpsc, oneshot};

use crate::sandbox::wit::FieldType;

/// A parsed `--dest` value.
#[derive(Clone, Debug, PartialEq)]
pub enum DestinationUrl {
    Sqlite(PathBuf),
    Jsonl(PathBuf),
}

impl std::str::FromStr for DestinationUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let (kind, path) = text
            .split_once(':')
            .ok_or_else(|| anyhow!("destination '{text}' has no kind: write sqlite:FILE or jsonl:DIR"))?;
        if path.is_empty() {
            bail!("destination '{text}' has no path: write sqlite:FILE or jsonl:DIR");
        }
        match kind {
            "sqlite" => Ok(DestinationUrl::Sqlite(PathBuf::from(path))),
            "jsonl" => Ok(DestinationUrl::Jsonl(PathBuf::from(path))),
            other => bail!("unknown destination kind '{other}' in '{text}': supported are sqlite:FILE and jsonl:DIR"),
        }
    }
}

impl std::fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestinationUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            DestinationUrl::Jsonl(p) => write!(f, "jsonl:{}", p.display()),
        }
    }
}

/// A column of an object's table.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub field_type: FieldType,
}

/// An object's table: its record fields (never its filter-only fields) and primary key.
#[derive(Clone, Debug)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

/// What every destination does.
pub trait Destination: Send {
    /// Make ready to receive `table`'s records (create the table or file; add new columns).
    fn prepare(&mut self, table: &TableSchema) -> Result<()>;
    /// Durably write one page of NDJSON records of `object`.
    fn write_page(&mut self, object: &str, records: &[u8]) -> Result<()>;
    /// Finish the run (publish files written under temporary names).
    fn finish(self: Box<Self>) -> Result<()>;
    /// Give up on the run: remove whatever was written under temporary names and never published.
    fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Open the destination at `url`.
pub fn open(url: &DestinationUrl) -> Result<Box<dyn Destination>> {
    match url {
        DestinationUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteDestination::open(path)?)),
        DestinationUrl::Jsonl(dir) => Ok(Box::new(jsonl::JsonlDestination::open(dir)?)),
    }
}

enum Job {
    Prepare(TableSchema, oneshot::Sender<Result<()>>),
    Write { object: String, records: Vec<u8>, done: oneshot::Sender<Result<()>> },
    Finish(oneshot::Sender<Result<()>>),
    Abort(oneshot::Sender<Result<()>>),
}

/// The one thread that writes to a run's destination.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer thread for `destination`.
    pub fn start(mut destination: Box<dyn Destination>) -> Writer {
        let (jobs, mut queue) = mpsc::channel::<Job>(64);
        std::thread::Builder::new()
            .name("destination-writer".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    match job {
                        Job::Prepare(table, done) => {
                            let _ = done.send(destination.prepare(&table));
                        }
                        Job::Write { object, records, done } => {
                            let _ = done.send(destination.write_page(&object, &records));
                        }
                        Job::Finish(done) => {
                            let _ = done.send(destination.finish());
                            return;
                        }
                        Job::Abort(done) => {
                            let _ = done.send(destination.abort());
                            return;
                        }
                    }
                }
            })
            .expect("spawning the destination writer");
        Writer { jobs }
    }

    async fn submit(&self, job: impl FnOnce(oneshot::Sender<Result<()>>) -> Job) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.jobs.send(job(done)).await.map_err(|_| anyhow!("the destination writer has stopped"))?;
        wait.await.map_err(|_| anyhow!("the destination writer has stopped"))?
    }

    /// Prepare `table`.
    pub async fn prepare(&self, table: TableSchema) -> Result<()> {
        let name = table.name.clone();
        self.submit(|done| Job::Prepare(table, done)).await.with_context(|| format!("cannot prepare '{name}'"))
    }

    /// Write one page; returns once it is durable.
    pub async fn write(&self, object: &str, records: Vec<u8>) -> Result<()> {
        self.submit(|done| Job::Write { object: object.to_owned(), records, done })
            .await
            .with_context(|| format!("cannot write a page of '{object}'"))
    }

    /// Finish the destination and stop the thread.
    pub async fn finish(self) -> Result<()> {
        self.submit(Job::Finish).await
    }

    /// Abort the destination and stop the thread.
    pub async fn abort(self) -> Result<()> {
        self.submit(Job::Abort).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_destination_urls() {
        assert_eq!("sqlite:out.db".parse::<DestinationUrl>().unwrap(), DestinationUrl::Sqlite("out.db".into()));
        assert_eq!("jsonl:/tmp/x".parse::<DestinationUrl>().unwrap(), DestinationUrl::Jsonl("/tmp/x".into()));
        let err = "parquet:x".parse::<DestinationUrl>().unwrap_err().to_string();
        assert!(err.contains("unknown destination kind 'parquet'"), "{err}");
        assert!("out.db".parse::<DestinationUrl>().is_err());
    }
}
