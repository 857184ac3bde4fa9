//! Destinations: where pages of records are written.
//!
//! A destination is opened from a URL (`sqlite:PATH`, `jsonl:DIR`), told each object's table schema
//! once, then handed pages of NDJSON records, partition by partition (see [`Destination`]). All writes
//! and checkpoint saves go through one [`Writer`] thread per run, so a destination is only ever used
//! from one thread; a partition waits for its page to be durably written, and its checkpoint saved,
//! before it asks for the next one.

pub mod jsonl;
pub mod sqlite;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::{mpsc, oneshot};

use crate::sandbox::wit::FieldType;
use crate::state::{Checkpoint, CheckpointStore, PartitionKey};

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
///
/// The run drives it per partition: `open_part`, then `write_page` for each page, then `close_part`
/// when the partition's read completed; `finish` (or `abort`) ends the run. A destination is only ever
/// used from the run's writer thread.
pub trait Destination: Send {
    /// Make ready to receive `table`'s records (create the table or folder; add new columns; never drop).
    fn prepare(&mut self, table: &TableSchema) -> Result<()>;

    /// The destination's own checkpoint store, when it keeps checkpoints beside its data so that a page
    /// and its checkpoint commit together (`write_page` then receives the checkpoint to save).
    fn checkpoints(&mut self) -> Option<&mut dyn CheckpointStore> {
        None
    }

    /// Start writing `part`, or resume it: `resume` is the marker `write_page` returned for the last
    /// page of an interrupted run whose checkpoint was saved (whatever was written after it is cut off).
    fn open_part(&mut self, part: &PartitionKey, resume: Option<&str>) -> Result<()>;

    /// Durably write one page of NDJSON records of `part`. When the destination keeps the checkpoints
    /// (see [`Destination::checkpoints`]), `checkpoint` is saved in the same transaction. Returns the
    /// part's resume marker after this page, if the destination needs one.
    fn write_page(
        &mut self,
        part: &PartitionKey,
        records: &[u8],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<Option<String>>;

    /// The read of `part` completed: publish what was written (files: move the part into place).
    fn close_part(&mut self, part: &PartitionKey) -> Result<()>;

    /// Finish the run (write its manifest, close connections).
    fn finish(self: Box<Self>) -> Result<()>;

    /// Give up on the run: leave published data as it was; keep resumable parts where a checkpoint
    /// refers to them.
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

type Reply<T> = oneshot::Sender<Result<T>>;

enum Job {
    Prepare(TableSchema, Reply<()>),
    Load(PartitionKey, Reply<Option<Checkpoint>>),
    Open(PartitionKey, Option<String>, Reply<()>),
    // Checkpoints are boxed: they are large, and every other job small.
    Write { part: PartitionKey, records: Vec<u8>, checkpoint: Box<Checkpoint>, done: Reply<()> },
    Save(PartitionKey, Box<Checkpoint>, Reply<()>),
    Close(PartitionKey, Reply<()>),
}

/// What the writer thread receives: a job, or the end of the run.
enum Message {
    Job(Job),
    Finish(Reply<()>),
    Abort(Reply<()>),
}

/// The one thread that writes to a run's destination and saves its checkpoints.
///
/// It owns the destination and, unless the destination keeps its own, the separate checkpoint store,
/// so that "page durable, then checkpoint saved" happens in one place and in that order.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Message>,
}

/// The destination and the checkpoint store, as the writer thread holds them.
struct Sink {
    destination: Box<dyn Destination>,
    store: Option<Box<dyn CheckpointStore>>,
}

impl Sink {
    fn store(&mut self) -> Result<&mut dyn CheckpointStore> {
        if let Some(store) = self.store.as_deref_mut() {
            return Ok(store);
        }
        self.destination.checkpoints().ok_or_else(|| anyhow!("this run has no checkpoint store"))
    }

    fn write(&mut self, part: &PartitionKey, records: &[u8], mut checkpoint: Checkpoint) -> Result<()> {
        match self.store.as_deref_mut() {
            // Page then checkpoint: a crash between the two leaves bytes past the saved marker, which a
            // resumed run cuts off.
            Some(store) => {
                checkpoint.dest_marker = self.destination.write_page(part, records, None)?;
                store.save(part, &checkpoint)
            }
            None => self.destination.write_page(part, records, Some(&checkpoint)).map(drop),
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Prepare(table, done) => drop(done.send(self.destination.prepare(&table))),
            Job::Load(part, done) => drop(done.send(self.store().and_then(|s| s.load(&part)))),
            Job::Open(part, resume, done) => drop(done.send(self.destination.open_part(&part, resume.as_deref()))),
            Job::Write { part, records, checkpoint, done } => drop(done.send(self.write(&part, &records, *checkpoint))),
            Job::Save(part, checkpoint, done) => drop(done.send(self.store().and_then(|s| s.save(&part, &checkpoint)))),
            Job::Close(part, done) => drop(done.send(self.destination.close_part(&part))),
        }
    }
}

impl Writer {
    /// Start the writer thread for `destination`, with `store` as the checkpoint store unless the
    /// destination keeps its own (then `store` is `None`).
    pub fn start(destination: Box<dyn Destination>, store: Option<Box<dyn CheckpointStore>>) -> Writer {
        let (jobs, mut queue) = mpsc::channel::<Message>(64);
        std::thread::Builder::new()
            .name("destination-writer".into())
            .spawn(move || {
                let mut sink = Sink { destination, store };
                while let Some(message) = queue.blocking_recv() {
                    match message {
                        Message::Job(job) => sink.handle(job),
                        Message::Finish(done) => return drop(done.send(sink.destination.finish())),
                        Message::Abort(done) => return drop(done.send(sink.destination.abort())),
                    }
                }
            })
            .expect("spawning the destination writer");
        Writer { jobs }
    }

    async fn submit<T>(&self, message: impl FnOnce(Reply<T>) -> Message) -> Result<T> {
        let (done, wait) = oneshot::channel();
        self.jobs.send(message(done)).await.map_err(|_| anyhow!("the destination writer has stopped"))?;
        wait.await.map_err(|_| anyhow!("the destination writer has stopped"))?
    }

    /// Prepare `table`.
    pub async fn prepare(&self, table: TableSchema) -> Result<()> {
        let name = table.name.clone();
        self.submit(|done| Message::Job(Job::Prepare(table, done)))
            .await
            .with_context(|| format!("cannot prepare '{name}'"))
    }

    /// The saved checkpoint of `part`.
    pub async fn load(&self, part: &PartitionKey) -> Result<Option<Checkpoint>> {
        self.submit(|done| Message::Job(Job::Load(part.clone(), done))).await
    }

    /// Open (or resume, from the destination marker of a saved checkpoint) `part`.
    pub async fn open(&self, part: &PartitionKey, resume: Option<String>) -> Result<()> {
        self.submit(|done| Message::Job(Job::Open(part.clone(), resume, done)))
            .await
            .with_context(|| format!("cannot open {part}"))
    }

    /// Write one page of `part` and then save `checkpoint` (its destination marker filled in by the
    /// destination); returns once both are durable.
    pub async fn write(&self, part: &PartitionKey, records: Vec<u8>, checkpoint: Checkpoint) -> Result<()> {
        self.submit(|done| {
            Message::Job(Job::Write { part: part.clone(), records, checkpoint: Box::new(checkpoint), done })
        })
        .await
        .with_context(|| format!("cannot write a page of {part}"))
    }

    /// Save `checkpoint` for `part` without writing a page (a read that completed, or an empty page).
    pub async fn save(&self, part: &PartitionKey, checkpoint: Checkpoint) -> Result<()> {
        self.submit(|done| Message::Job(Job::Save(part.clone(), Box::new(checkpoint), done)))
            .await
            .with_context(|| format!("cannot save the checkpoint of {part}"))
    }

    /// Publish `part`: its read completed.
    pub async fn close(&self, part: &PartitionKey) -> Result<()> {
        self.submit(|done| Message::Job(Job::Close(part.clone(), done)))
            .await
            .with_context(|| format!("cannot close {part}"))
    }

    /// Finish the destination and stop the thread.
    pub async fn finish(self) -> Result<()> {
        self.submit(Message::Finish).await
    }

    /// Abort the destination and stop the thread.
    pub async fn abort(self) -> Result<()> {
        self.submit(Message::Abort).await
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
