//! Destinations: where pages of records are written.
//!
//! A destination is opened from a URL (see [`DestinationUrl`]), told each object's table schema once,
//! then handed pages of NDJSON records, partition by partition (see [`Destination`]). It is only ever
//! used from one thread, the run's [`Writer`] (in [`writer`]), which also saves the checkpoints, so
//! that no checkpoint passes a page that is not durable.
//!
//! - databases, which upsert by primary key and keep their checkpoints beside their tables, so a page
//!   and its checkpoint commit together: [`sqlite`], [`postgres`];
//! - files, one part per partition per run, spooled durably page by page and published whole when the
//!   partition's read completes, with a manifest per run: [`files`] (over a local folder or, with
//!   [`s3`], an S3 bucket), in the formats of [`format`], built on [`spool`] and [`manifest`].

mod cpu;
pub mod files;
pub mod format;
pub mod manifest;
pub mod postgres;
pub mod record;
pub mod s3;
pub mod spool;
pub mod sqlite;
pub mod syncs;
pub mod writer;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use self::syncs::Syncs;
use crate::pg::{PgUrl, is_postgres_url};
use crate::sandbox::wit::FieldType;
use crate::state::{Checkpoint, CheckpointStore, PartitionKey};
pub use cpu::{CpuMeter, process_cpu};
pub use format::FileFormat;
pub use s3::S3Url;
pub use writer::{PAGES_IN_WRITER, PendingPage, Writer};

/// Every kind of destination, as `--dest` takes it.
const USAGE: &str = "write sqlite:FILE, jsonl:DIR, csv:DIR, parquet:DIR, postgres://USER@HOST:PORT/DATABASE \
                     or s3://BUCKET/PREFIX[?format=jsonl|csv|parquet]";

/// A parsed `--dest` value.
#[derive(Clone, Debug, PartialEq)]
pub enum DestinationUrl {
    /// `sqlite:FILE`: a SQLite database.
    Sqlite(PathBuf),
    /// `jsonl:DIR`, `csv:DIR`, `parquet:DIR`: parts in a local folder.
    Files(FileFormat, PathBuf),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`: a PostgreSQL database.
    Postgres(Box<PgUrl>),
    /// `s3://BUCKET/PREFIX[?format=...&spool=DIR]`: parts in an S3 bucket.
    S3(Box<S3Url>),
}

impl std::str::FromStr for DestinationUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        if is_postgres_url(text) {
            return Ok(DestinationUrl::Postgres(Box::new(text.parse()?)));
        }
        if text.starts_with("s3://") {
            return Ok(DestinationUrl::S3(Box::new(text.parse()?)));
        }
        let shown = crate::pg::redact(text);
        let (kind, path) = text.split_once(':').ok_or_else(|| anyhow!("destination '{shown}' has no kind: {USAGE}"))?;
        if path.is_empty() {
            bail!("destination '{shown}' has no path: {USAGE}");
        }
        match (kind, FileFormat::from_name(kind)) {
            ("sqlite", _) => Ok(DestinationUrl::Sqlite(PathBuf::from(path))),
            (_, Some(format)) => Ok(DestinationUrl::Files(format, PathBuf::from(path))),
            (other, None) => bail!("unknown destination kind '{other}' in '{shown}': {USAGE}"),
        }
    }
}

impl std::fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestinationUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            DestinationUrl::Files(format, dir) => write!(f, "{}:{}", format.name(), dir.display()),
            DestinationUrl::Postgres(url) => write!(f, "{url}"),
            DestinationUrl::S3(url) => write!(f, "{url}"),
        }
    }
}

impl DestinationUrl {
    /// Where the checkpoints of this destination live when the run names no store (`--state`): `None`
    /// for the databases, which keep them beside their tables; a SQLite file beside the parts' spools
    /// for the others.
    pub fn default_checkpoints(&self) -> Option<PathBuf> {
        match self {
            DestinationUrl::Sqlite(_) | DestinationUrl::Postgres(_) => None,
            DestinationUrl::Files(_, dir) => Some(dir.join(".checkpoints.db")),
            DestinationUrl::S3(url) => Some(url.spool.join("checkpoints.db")),
        }
    }
}

/// A column of an object's table.
#[derive(Clone, Debug, PartialEq)]
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

    /// Write one page of NDJSON records of `part`, durable at the next [`Destination::commit`]. When
    /// the destination keeps the checkpoints (see [`Destination::checkpoints`]), `checkpoint` is saved
    /// in the same transaction. A page that fails leaves nothing of itself behind. Returns the part's
    /// resume marker after this page, if the destination needs one.
    fn write_page(
        &mut self,
        part: &PartitionKey,
        records: &[u8],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<Option<String>>;

    /// Make everything written since the last commit durable (with the checkpoints written beside
    /// it, for a destination that keeps them): what must happen on this thread (a transaction's
    /// `COMMIT`) now, the rest (the syncs of files) returned, for the writer's committer thread to
    /// run while the writer writes on. The writer commits a group of pages at once; until then a
    /// page may sit in the page cache or an open transaction.
    fn commit(&mut self) -> Result<Syncs> {
        Ok(Syncs::default())
    }

    /// The most jobs (page writes, checkpoint saves, part closes) one commit of the writer covers.
    fn most_jobs_per_commit(&self) -> usize {
        writer::MOST_JOBS_PER_COMMIT
    }

    /// The read of `part` completed: publish what was written (files: move the part into place).
    /// Called before the checkpoint that completes the read is saved, and perhaps once more after it:
    /// closing a part that is not open does nothing.
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
        DestinationUrl::Files(format, dir) => Ok(Box::new(files::FileDestination::local(*format, dir)?)),
        DestinationUrl::Postgres(url) => Ok(Box::new(postgres::PostgresDestination::open(url)?)),
        DestinationUrl::S3(url) => Ok(Box::new(s3::open(url)?)),
    }
}

/// The name of a field type, as `describe-schema` documents it (`date-time`, `struct`...).
pub fn type_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Boolean => "boolean",
        FieldType::Integer => "integer",
        FieldType::Number => "number",
        FieldType::String => "string",
        FieldType::Date => "date",
        FieldType::DateTime => "date-time",
        FieldType::Struct => "struct",
        FieldType::List => "list",
    }
}

/// `name` made safe as one component of a file or object path: every character but ASCII letters,
/// digits, `.`, `_` and `-` is written `%XX`, and so is a leading dot.
pub fn path_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || (byte == b'.' && i > 0);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() { "%00".to_owned() } else { out }
}

/// Make `dir`'s entries (a rename or a new file in it) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))
}

/// Make `dir` and whatever of its parents is missing. Returns the folders whose entries changed, to
/// be synced before what is made in `dir` is relied on: the parent of each folder made, then `dir`
/// itself (which a new file is about to be made in). A folder's entry lives in its parent: syncing
/// the new folder, or a file in it, does not make that entry durable.
pub fn create_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    let mut missing = Some(dir);
    while let Some(folder) = missing.filter(|folder| !folder.as_os_str().is_empty() && !folder.is_dir()) {
        made.push(folder);
        missing = folder.parent();
    }
    if !made.is_empty() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let parent = |folder: &&Path| match folder.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new(".").to_owned(),
        parent => parent.unwrap_or(Path::new("/")).to_owned(),
    };
    let mut changed: Vec<PathBuf> = made.iter().rev().map(parent).collect();
    changed.push(dir.to_owned());
    Ok(changed)
}

/// Make `dir` and whatever of its parents is missing, durably: the parent of each folder made is
/// synced now. `dir` itself is left for its caller to sync once it has made its files in it.
pub fn create_folders_durably(dir: &Path) -> Result<()> {
    let changed = create_folders(dir)?;
    changed[..changed.len() - 1].iter().try_for_each(|folder| sync_dir(folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folders_made_are_synced_with_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("flow/issue");
        let changed = create_folders(&nested).unwrap();
        assert_eq!(changed, [dir.path().to_owned(), dir.path().join("flow"), nested.clone()]);
        assert!(nested.is_dir());
        assert_eq!(create_folders(&nested).unwrap(), [nested], "only the folder the file goes in");
        let relative = create_folders(Path::new("")).unwrap();
        assert_eq!(relative, [PathBuf::new()], "the current folder is never made");
        create_folders_durably(&dir.path().join("a/b")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
    }

    #[test]
    fn parses_every_kind_of_destination() {
        assert_eq!("sqlite:out.db".parse::<DestinationUrl>().unwrap(), DestinationUrl::Sqlite("out.db".into()));
        for (text, format) in [
            ("jsonl:/tmp/x", FileFormat::Jsonl),
            ("csv:/tmp/x", FileFormat::Csv),
            ("parquet:/tmp/x", FileFormat::Parquet),
        ] {
            let url = text.parse::<DestinationUrl>().unwrap();
            assert_eq!(url, DestinationUrl::Files(format, "/tmp/x".into()));
            assert_eq!(url.to_string(), text);
        }
        let url = "postgres://etl:pw@db:5433/wh".parse::<DestinationUrl>().unwrap();
        assert!(matches!(url, DestinationUrl::Postgres(_)));
        assert_eq!(url.to_string(), "postgres://etl@db:5433/wh");
        assert_eq!(url.default_checkpoints(), None);
        let url = "s3://bucket/some/prefix?format=parquet&spool=/var/spool/x".parse::<DestinationUrl>().unwrap();
        assert_eq!(url.to_string(), "s3://bucket/some/prefix?format=parquet");
        assert_eq!(url.default_checkpoints(), Some("/var/spool/x/checkpoints.db".into()));
        let err = "xml:x".parse::<DestinationUrl>().unwrap_err().to_string();
        assert!(err.contains("unknown destination kind 'xml'"), "{err}");
        for kind in ["sqlite:FILE", "jsonl:DIR", "csv:DIR", "parquet:DIR", "postgres://", "s3://"] {
            assert!(err.contains(kind), "{err} should name {kind}");
        }
        assert!("out.db".parse::<DestinationUrl>().is_err());
        assert!("csv:".parse::<DestinationUrl>().is_err());
    }

    #[test]
    fn path_components_are_safe() {
        assert_eq!(path_component("project-42"), "project-42");
        assert_eq!(path_component("acme/flow one"), "acme%2Fflow%20one");
        assert_eq!(path_component(".."), "%2E.");
        assert_eq!(path_component(""), "%00");
    }
}
