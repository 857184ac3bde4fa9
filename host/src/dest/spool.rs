//! A part's spool: the NDJSON records of one partition's read, appended page by page; the writer
//! makes the pages durable ([`Spool::sync_later`], at its group commit) before their checkpoints are saved.
//! The file is made with the first page of records: a read that finds none (a project without
//! issues, a filter that matches nothing) leaves no file, no folder entry and no sync behind.
//!
//! After each page the spool has a [`Marker`]: the run that started the part, and how many bytes and
//! records of it are durable. The marker goes into the page's checkpoint; a resumed run reopens the
//! spool and cuts it back to the marker ([`Spool::resume`]), dropping whatever a killed run wrote after
//! its last saved checkpoint, so that the pages read again land exactly once.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::syncs::Syncs;

/// Where a part stands after its last durable page: `RUN:BYTES:RECORDS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The run that started the part (its spool and its published name carry this id).
    pub run: String,
    pub bytes: u64,
    pub records: u64,
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.run, self.bytes, self.records)
    }
}

impl std::str::FromStr for Marker {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            anyhow!("the saved file marker '{text}' is not RUN:BYTES:RECORDS (was it saved by another destination?)")
        };
        let mut fields = text.rsplitn(3, ':');
        let records = fields.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
        let bytes = fields.next().and_then(|b| b.parse().ok()).ok_or_else(bad)?;
        let run = fields.next().filter(|r| !r.is_empty()).ok_or_else(bad)?;
        Ok(Marker { run: run.to_owned(), bytes, records })
    }
}

/// An open spool file.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    /// None until the first page of records.
    file: Option<File>,
    bytes: u64,
    records: u64,
    /// Bytes appended since the last sync.
    unsynced: bool,
    /// The folders whose entries changed for this spool and are not synced yet: its own folder once
    /// the file is made, and the parents of any folder made for it.
    unsynced_folders: Vec<PathBuf>,
}

impl Spool {
    /// An empty spool at `path`, its file made with the first page. A file already there (the spool
    /// of an earlier read of the same part) is removed now, never cut: once published, a spool is
    /// also the published part (a hard link), which a run killed before its end leaves behind.
    pub fn create(path: &Path) -> Result<Spool> {
        remove_if_present(path)?;
        Ok(Spool {
            path: path.to_owned(),
            file: None,
            bytes: 0,
            records: 0,
            unsynced: false,
            unsynced_folders: Vec::new(),
        })
    }

    /// The spool's file, made (and its folders) if this is its first page.
    fn file(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                self.unsynced_folders = super::create_folders(dir)?;
            }
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.path)
                .with_context(|| format!("cannot create the spool {}", self.path.display()))?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("made above"))
    }

    /// Reopen the spool at `path` and cut it back to `marker`.
    pub fn resume(path: &Path, marker: &Marker) -> Result<Spool> {
        let mut file = OpenOptions::new().write(true).open(path).with_context(|| {
            format!(
                "cannot resume from the spool {}, which the saved checkpoint refers to; \
                 if it is gone, remove the partition's checkpoint to read it again from the start",
                path.display()
            )
        })?;
        let length = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
        if length < marker.bytes {
            bail!(
                "the spool {} holds {length} bytes but its checkpoint says {} were written; it was cut short \
                 outside this host: remove the partition's checkpoint to read it again from the start",
                path.display(),
                marker.bytes
            );
        }
        file.set_len(marker.bytes)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot cut the spool {} back to {} bytes", path.display(), marker.bytes))?;
        Ok(Spool {
            path: path.to_owned(),
            file: Some(file),
            bytes: marker.bytes,
            records: marker.records,
            unsynced: false,
            unsynced_folders: Vec::new(),
        })
    }

    /// Append one page of NDJSON records (a final newline is added if the page lacks one); durable
    /// once the syncs of [`Spool::sync_later`] have run.
    pub fn append(&mut self, records: &[u8]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let newline = !records.ends_with(b"\n");
        let bytes = self.bytes;
        let file = self.file()?;
        let written = file.write_all(records).and_then(|()| if newline { file.write_all(b"\n") } else { Ok(()) });
        if let Err(error) = written {
            // Leave the spool as it was before the page, as far as the disk lets us.
            let _ = file.set_len(bytes).and_then(|()| file.seek(SeekFrom::End(0)).map(drop));
            return Err(error).with_context(|| format!("cannot write to the spool {}", self.path.display()));
        }
        self.unsynced = true;
        self.bytes += records.len() as u64 + u64::from(newline);
        self.records += super::record::lines(records).count() as u64;
        Ok(())
    }

    /// Have every page appended so far made durable (and a new spool's folder entries) by `syncs`.
    pub fn sync_later(&mut self, syncs: &mut Syncs) -> Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        if self.unsynced {
            syncs.data(file, format!("the spool {}", self.path.display()))?;
            self.unsynced = false;
        }
        for folder in self.unsynced_folders.drain(..) {
            syncs.folder(&folder);
        }
        Ok(())
    }

    /// The marker after the last appended page, for a part started by `run`.
    pub fn marker(&self, run: &str) -> Marker {
        Marker { run: run.to_owned(), bytes: self.bytes, records: self.records }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn records(&self) -> u64 {
        self.records
    }
}

/// Remove the file at `path`, if there is one.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let marker = Marker { run: "20260101T000000Z-ab12cd".into(), bytes: 1234, records: 7 };
        assert_eq!(marker.to_string().parse::<Marker>().unwrap(), marker);
        for bad in ["", "x", "run:1", "run:x:1", ":1:2"] {
            assert!(bad.parse::<Marker>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resuming_cuts_back_to_the_marker() {
        let dir = tempdir();
        let path = dir.join("part.ndjson");
        let mut spool = Spool::create(&path).unwrap();
        assert!(!path.exists(), "no file before the first page");
        spool.append(b"{\"id\":1}\n{\"id\":2}\n").unwrap();
        let marker = spool.marker("run1");
        assert_eq!(marker, Marker { run: "run1".into(), bytes: 18, records: 2 });
        spool.append(b"{\"id\":3}").unwrap();
        drop(spool);
        let mut spool = Spool::resume(&path, &marker).unwrap();
        spool.append(b"{\"id\":3}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
        assert_eq!(spool.records(), 3);
        let long = Marker { bytes: 1000, ..marker };
        assert!(Spool::resume(&path, &long).unwrap_err().to_string().contains("cut short"));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
