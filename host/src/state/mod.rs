//! Checkpoints: where each partition's read stands, so that a run resumes where it stopped.
//!
//! A partition is one object read under one scope of one flow ([`PartitionKey`]). Its [`Checkpoint`]
//! holds the page token of the next page to read, the highest cursor value seen so far by the read in
//! progress, the watermark of the last completed read (where an incremental read starts), and the
//! destination's own resume marker (for files: how many bytes of the part are durable).
//!
//! The page loop saves a checkpoint only after its page is durably written. Where the destination is
//! also the checkpoint store (a database destination keeping its checkpoints beside its tables), page
//! and checkpoint commit in one transaction; otherwise the page is made durable first, then the
//! checkpoint is saved in the separate store, and the destination's resume marker lets a resumed run
//! cut off whatever was written after the last saved checkpoint.

pub mod postgres;
pub mod sqlite;

use anyhow::Result;
use serde::{Deserialize, Serialize};

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
    /// Durably replace the checkpoint of `key`.
    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()>;
}
