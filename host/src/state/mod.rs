//! Checkpoints: where each partition's read stands, so that a run resumes where it stopped.
//!
//! A partition is one object read under one scope of one flow ([`PartitionKey`]). Its [`Checkpoint`]
//! holds the page token of the next page to read, the highest cursor value seen so far by the read in
//! progress, the watermark of the last completed read (where an incremental read starts), and the
//! destination's own resume marker (for files: how many bytes of the part are durable). It also says
//! what the reads select ([`Checkpoint::selection`]: object, scope, fields, filters) and the mode of the
//! read in progress, so that a changed flow neither resumes a read it no longer asks for nor reads
//! incrementally from a watermark that belongs to other records.
//!
//! The page loop saves a checkpoint only after its page is durably written. Where the destination is
//! also the checkpoint store (a database destination keeping its checkpoints beside its tables), page
//! and checkpoint commit in one transaction; otherwise the page is made durable first, then the
//! checkpoint is saved in the separate store, and the destination's resume marker lets a resumed run
//! cut off whatever was written after the last saved checkpoint.
//!
//! Where checkpoints are kept is a [`StateUrl`] (`--state`, or `[state] url` in a flow file); without
//! one, [`StatePlace::choose`] picks a place beside the destination.

pub mod postgres;
pub mod sqlite;

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::dest::DestinationUrl;
use crate::pg::{PgUrl, is_postgres_url};

/// One partition of one flow: an object under a scope, by the scope's stable id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey {
    /// The flow (and, in a multi-tenant run, its tenant) the partition belongs to.
    pub flow: String,
    /// The object, as `list-objects` names it.
    pub object: String,
    /// The scope by its stable id: `project-42`, `group-7`, `instance`.
    pub scope: String,
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.flow, self.object, self.scope)
    }
}

/// Where one partition's reads stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The token of the next page of the read in progress; none when no read is in progress (the last
    /// one completed, or none ever started).
    pub page_token: Option<String>,
    /// The highest cursor value among the records the read in progress has written so far.
    pub read_high: Option<String>,
    /// The highest cursor value of the last completed read: an incremental read starts there (minus
    /// a lookback).
    pub watermark: Option<String>,
    /// The destination's resume marker after the last durable page of the read in progress (opaque to
    /// everyone but the destination).
    pub dest_marker: Option<String>,
    /// What the partition's reads select (object, scope, fields and filters, as canonical JSON): the
    /// watermark and the read in progress belong to it. None before the first saved page.
    pub selection: Option<String>,
    /// The mode (`full` or `incremental`) of the read in progress.
    pub read_mode: Option<String>,
}

impl Checkpoint {
    /// Whether a read was interrupted and can be resumed from this checkpoint.
    pub fn in_progress(&self) -> bool {
        self.page_token.is_some()
    }
}

/// Somewhere checkpoints are kept.
pub trait CheckpointStore: Send {
    /// The checkpoint of `key`, if one was ever saved.
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>>;
    /// How to open a second handle on the store, that loads beside this one, from another thread,
    /// what this one committed; `None` where the store has no such handle.
    fn reader(&self) -> Option<ReaderOpener> {
        None
    }
    /// Durably replace the checkpoint of `key`.
    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()>;
    /// Durably replace several checkpoints, in order (a later one of the same key wins); a store
    /// with transactions saves them all in one.
    fn save_all(&mut self, checkpoints: &[(PartitionKey, Checkpoint)]) -> Result<()> {
        checkpoints.iter().try_for_each(|(key, checkpoint)| self.save(key, checkpoint))
    }
}

/// Opens a read-only handle on a checkpoint store (see [`CheckpointStore::reader`]).
pub type ReaderOpener = Box<dyn FnOnce() -> Result<Box<dyn CheckpointReader>> + Send>;

/// A read-only handle on a checkpoint store (see [`CheckpointStore::reader`]).
pub trait CheckpointReader: Send {
    /// The checkpoint of `key` as last committed, if one was ever saved.
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>>;
}

/// Where checkpoints are kept: a parsed `--state` value.
#[derive(Clone, Debug, PartialEq)]
pub enum StateUrl {
    /// `sqlite:PATH`: the `_checkpoints` table of a SQLite database (a SQLite destination's own
    /// database when the paths are the same, so that a page and its checkpoint commit together).
    Sqlite(PathBuf),
    /// `postgres://...`: a PostgreSQL database several hosts can share.
    Postgres(Box<PgUrl>),
}

impl std::str::FromStr for StateUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let usage = "write sqlite:PATH or postgres://USER@HOST/DATABASE";
        if is_postgres_url(text) {
            return Ok(StateUrl::Postgres(Box::new(text.parse()?)));
        }
        match text.split_once(':') {
            Some(("sqlite", "")) => bail!("state store '{text}' has no path: {usage}"),
            Some(("sqlite", path)) => Ok(StateUrl::Sqlite(PathBuf::from(path))),
            Some((kind, _)) => bail!("unknown state store kind '{kind}' in '{text}': {usage}"),
            None => bail!("state store '{text}' has no kind: {usage}"),
        }
    }
}

impl std::fmt::Display for StateUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            // Without its password, as a PostgreSQL destination shows itself.
            StateUrl::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// Where a run keeps its checkpoints.
#[derive(Debug, PartialEq)]
pub enum StatePlace {
    /// In the destination itself (a SQLite destination's `_checkpoints` table): a page and its
    /// checkpoint commit in one transaction.
    Destination,
    /// In a store of its own.
    Store(StateUrl),
}

impl StatePlace {
    /// The place for `destination`, given the `--state` the flow names, if any.
    ///
    /// Without one: database destinations (SQLite, PostgreSQL) keep their checkpoints in their own
    /// database; folder destinations in `.checkpoints.db` inside the folder, beside the data they
    /// describe; S3 in its local spool folder.
    pub fn choose(destination: &DestinationUrl, state: Option<&StateUrl>) -> StatePlace {
        match (state, destination) {
            (Some(StateUrl::Sqlite(state)), DestinationUrl::Sqlite(dest)) if same_file(state, dest) => {
                StatePlace::Destination
            }
            (Some(StateUrl::Postgres(state)), DestinationUrl::Postgres(dest)) if dest.same_database(state) => {
                StatePlace::Destination
            }
            (Some(state), _) => StatePlace::Store(state.clone()),
            (None, _) => match destination.default_checkpoints() {
                Some(path) => StatePlace::Store(StateUrl::Sqlite(path)),
                None => StatePlace::Destination,
            },
        }
    }

    /// For people: `sqlite:out.db (with the destination)`.
    pub fn describe(&self, destination: &DestinationUrl) -> String {
        match self {
            StatePlace::Destination => format!("{destination} (with the destination)"),
            StatePlace::Store(url) => url.to_string(),
        }
    }
}

/// Whether two paths name the same file (the same path, or the same file once it exists).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Open the checkpoint store at `url`.
pub fn open(url: &StateUrl) -> Result<Box<dyn CheckpointStore>> {
    match url {
        StateUrl::Sqlite(path) => Ok(Box::new(sqlite::SqliteCheckpoints::open(path)?)),
        StateUrl::Postgres(url) => Ok(Box::new(postgres::PostgresCheckpoints::open(url)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_urls() {
        assert_eq!("sqlite:s.db".parse::<StateUrl>().unwrap(), StateUrl::Sqlite("s.db".into()));
        let pg = "postgres://u:secret@db.example:5433/state".parse::<StateUrl>().unwrap();
        assert_eq!(pg.to_string(), "postgres://u@db.example:5433/state", "no password shown");
        for (bad, says) in [
            ("sqlite:", "has no path"),
            ("redis://x", "unknown state store kind 'redis'"),
            ("x", "no kind"),
            ("postgres://u:secret@/state", "names no host"),
        ] {
            let error = bad.parse::<StateUrl>().unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn the_default_place_is_beside_the_destination() {
        let sqlite = DestinationUrl::Sqlite("out.db".into());
        assert_eq!(StatePlace::choose(&sqlite, None), StatePlace::Destination);
        let same = StateUrl::Sqlite("out.db".into());
        assert_eq!(StatePlace::choose(&sqlite, Some(&same)), StatePlace::Destination);
        let other = StateUrl::Sqlite("state.db".into());
        assert_eq!(StatePlace::choose(&sqlite, Some(&other)), StatePlace::Store(other));
        let jsonl = DestinationUrl::Files(crate::dest::FileFormat::Jsonl, "out".into());
        assert_eq!(
            StatePlace::choose(&jsonl, None),
            StatePlace::Store(StateUrl::Sqlite(PathBuf::from("out/.checkpoints.db")))
        );
    }
}
