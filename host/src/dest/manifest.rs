//! Runs of a file destination and their manifests.
//!
//! Each run has an id (`20260102T030405123Z-1a2b3c`: its start in UTC to the millisecond, then a
//! random suffix) and, in the
//! destination's local spool folder, `runs/RUN.lock` (held locked while the run lives; the operating
//! system releases it when the process dies, even by `kill -9`) and `runs/RUN.journal`, where each
//! published part is recorded, durably, as it is published.
//!
//! At the end of a run its manifest, `_manifests/RUN.json`, lists the parts it published (object,
//! scope, path, records, bytes, schema) with the status `complete`. A run that died or failed never
//! wrote its manifest: the next run that finishes writes it from the dead run's journal, with the
//! status `interrupted`, keeping only the parts still published and not taken over by the finishing
//! run (a part resumed from a checkpoint is published again under its own name). So every published
//! part is listed in exactly one manifest.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::syncs::Syncs;
use super::{Column, type_name};

/// One column of a part, in a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
}

impl ManifestColumn {
    pub fn list(columns: &[Column]) -> Vec<ManifestColumn> {
        columns
            .iter()
            .map(|c| ManifestColumn { name: c.name.clone(), field_type: type_name(c.field_type).into() })
            .collect()
    }
}

/// One published part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartEntry {
    pub flow: String,
    pub object: String,
    pub scope: String,
    /// Where the part is, relative to the destination's folder or prefix: `OBJECT/RUN-SCOPE.EXT`.
    pub path: String,
    pub format: String,
    pub records: u64,
    pub bytes: u64,
    pub primary_key: Vec<String>,
    pub columns: Vec<ManifestColumn>,
}

/// A run's manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub run: String,
    /// `complete` (written by the run itself at its end) or `interrupted` (written for it by a later run).
    pub status: String,
    pub started_at: String,
    pub written_at: String,
    pub parts: Vec<PartEntry>,
}

/// The first line of a journal.
#[derive(Serialize, Deserialize)]
struct JournalHeader {
    run: String,
    started_at: String,
}

/// The live run: its id, its lock and its journal.
pub struct RunLog {
    pub id: String,
    started_at: String,
    dir: PathBuf,
    // Held (locked) for as long as the run lives.
    _lock: File,
    journal: File,
    parts: Vec<PartEntry>,
    /// Parts recorded since the last sync.
    unsynced: bool,
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// A fresh run id: the time to the millisecond (so ids sort as runs started), then six hex digits
/// that tell apart runs started in the same millisecond.
fn new_run_id() -> String {
    let time = now();
    let nanos = u64::from(time.timestamp_subsec_nanos());
    let noise = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    format!("{}-{noise:06x}", time.format("%Y%m%dT%H%M%S%3fZ"))
}

impl RunLog {
    /// Start a run whose lock and journal live in `dir`.
    pub fn start(dir: &Path) -> Result<RunLog> {
        super::create_folders_durably(dir)?;
        let (id, lock) = loop {
            let id = new_run_id();
            let path = dir.join(format!("{id}.lock"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
                    break (id, file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        };
        let started_at = now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let path = dir.join(format!("{id}.journal"));
        let mut journal = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let header = JournalHeader { run: id.clone(), started_at: started_at.clone() };
        writeln!(journal, "{}", serde_json::to_string(&header)?)
            .and_then(|()| journal.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        super::sync_dir(dir)?;
        Ok(RunLog { id, started_at, dir: dir.to_owned(), _lock: lock, journal, parts: Vec::new(), unsynced: false })
    }

    /// Record a published part; durable once the syncs of [`RunLog::sync_later`] have run.
    pub fn record(&mut self, entry: PartEntry) -> Result<()> {
        writeln!(self.journal, "{}", serde_json::to_string(&entry)?)
            .with_context(|| format!("cannot write the journal of run {} in {}", self.id, self.dir.display()))?;
        self.parts.push(entry);
        self.unsynced = true;
        Ok(())
    }

    /// Have the recorded parts made durable by `syncs`.
    pub fn sync_later(&mut self, syncs: &mut Syncs) -> Result<()> {
        if self.unsynced {
            syncs.data(&self.journal, format!("the journal of run {} in {}", self.id, self.dir.display()))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// This run's manifest, as it stands.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            run: self.id.clone(),
            status: "complete".into(),
            started_at: self.started_at.clone(),
            written_at: now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            parts: self.parts.clone(),
        }
    }

    /// The manifests of runs that died or failed before writing theirs (their lock is free), each
    /// with the parts `keep` accepts. Call [`DeadRun::forget`] once the manifest is written.
    pub fn dead_runs(&self, mut keep: impl FnMut(&PartEntry) -> Result<bool>) -> Result<Vec<DeadRun>> {
        let mut dead = Vec::new();
        let listing = std::fs::read_dir(&self.dir).with_context(|| format!("cannot list {}", self.dir.display()))?;
        let mut journals: Vec<PathBuf> = listing
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "journal"))
            .collect();
        journals.sort();
        let mine: HashSet<&str> = self.parts.iter().map(|p| p.path.as_str()).collect();
        for journal in journals {
            let Some(run) = journal.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
            if run == self.id {
                continue;
            }
            let lock_path = self.dir.join(format!("{run}.lock"));
            let lock = match OpenOptions::new().write(true).open(&lock_path) {
                Ok(file) => match file.try_lock() {
                    Ok(()) => Some(file),
                    Err(TryLockError::WouldBlock) => continue, // alive
                    Err(TryLockError::Error(e)) => {
                        return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", lock_path.display())),
            };
            let (header, entries) = read_journal(&journal)?;
            let mut parts = Vec::new();
            for entry in entries {
                if !mine.contains(entry.path.as_str()) && keep(&entry)? {
                    parts.push(entry);
                }
            }
            let manifest = Manifest {
                run: run.clone(),
                status: "interrupted".into(),
                started_at: header.map(|h| h.started_at).unwrap_or_default(),
                written_at: now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                parts,
            };
            dead.push(DeadRun { manifest, journal, lock_path, _lock: lock });
        }
        Ok(dead)
    }

    /// The run is over and its manifest written: remove its journal and lock.
    pub fn forget(self) -> Result<()> {
        for ext in ["journal", "lock"] {
            let path = self.dir.join(format!("{}.{ext}", self.id));
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }
}

/// A dead run whose manifest is yet to be written.
pub struct DeadRun {
    pub manifest: Manifest,
    journal: PathBuf,
    lock_path: PathBuf,
    _lock: Option<File>,
}

impl DeadRun {
    /// Its manifest is written: remove its journal and lock.
    pub fn forget(self) -> Result<()> {
        std::fs::remove_file(&self.journal).with_context(|| format!("cannot remove {}", self.journal.display()))?;
        match std::fs::remove_file(&self.lock_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.lock_path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// A journal's header and entries; a last line cut short by a crash is ignored.
fn read_journal(path: &Path) -> Result<(Option<JournalHeader>, Vec<PartEntry>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut header = None;
    let mut entries = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if number == 0 {
            header = serde_json::from_str(&line).ok();
        } else if let Ok(entry) = serde_json::from_str(&line) {
            entries.push(entry);
        }
    }
    Ok((header, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> PartEntry {
        PartEntry {
            flow: "f".into(),
            object: "issue".into(),
            scope: "project-1".into(),
            path: path.into(),
            format: "jsonl".into(),
            records: 3,
            bytes: 30,
            primary_key: vec!["id".into()],
            columns: vec![],
        }
    }

    #[test]
    fn a_dead_runs_manifest_is_written_by_the_next_run_and_a_live_one_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("runlog-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut dead = RunLog::start(&dir).unwrap();
        dead.record(entry("issue/a.jsonl")).unwrap();
        dead.record(entry("issue/b.jsonl")).unwrap();
        dead.record(entry("issue/gone.jsonl")).unwrap();
        let dead_id = dead.id.clone();
        let alive = RunLog::start(&dir).unwrap();
        let mut finishing = RunLog::start(&dir).unwrap();
        // The finishing run published b again (a resumed part).
        finishing.record(entry("issue/b.jsonl")).unwrap();
        // Still locked: alive.
        assert!(finishing.dead_runs(|_| Ok(true)).unwrap().is_empty());
        drop(dead); // as the kernel does at kill -9
        let found = finishing.dead_runs(|e| Ok(e.path != "issue/gone.jsonl")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].manifest.run, dead_id);
        assert_eq!(found[0].manifest.status, "interrupted");
        let paths: Vec<&str> = found[0].manifest.parts.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["issue/a.jsonl"]);
        for run in found {
            run.forget().unwrap();
        }
        assert!(finishing.dead_runs(|_| Ok(true)).unwrap().is_empty());
        assert_eq!(finishing.manifest().parts.len(), 1);
        finishing.forget().unwrap();
        drop(alive);
        let _ = std::fs::remove_dir_all(dir);
    }
}
