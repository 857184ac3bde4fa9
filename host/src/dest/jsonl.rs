//! The JSONL destination: one `OBJECT.jsonl` file per object in a folder, records as the plugin wrote
//! them (no re-serialization).
//!
//! Pages are appended to `OBJECT.jsonl.partial` and synced to disk; `finish` renames each file into
//! place, so a reader never sees a half-written run; a failed run removes its `.partial` files and
//! leaves the previous run's files as they were.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use super::{Destination, TableSchema};
use crate::state::{Checkpoint, PartitionKey};

pub struct JsonlDestination {
    dir: PathBuf,
    files: HashMap<String, (File, PathBuf)>,
}

impl JsonlDestination {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
        Ok(JsonlDestination { dir: dir.to_owned(), files: HashMap::new() })
    }
}

impl Destination for JsonlDestination {
    fn prepare(&mut self, table: &TableSchema) -> Result<()> {
        if self.files.contains_key(&table.name) {
            return Ok(());
        }
        let partial = self.dir.join(format!("{}.jsonl.partial", table.name));
        let file = File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
        self.files.insert(table.name.clone(), (file, partial));
        Ok(())
    }

    fn open_part(&mut self, _part: &PartitionKey, _resume: Option<&str>) -> Result<()> {
        Ok(())
    }

    fn write_page(&mut self, part: &PartitionKey, records: &[u8], _: Option<&Checkpoint>) -> Result<Option<String>> {
        let object = &part.object;
        let (file, path) = self.files.get_mut(object).ok_or_else(|| anyhow!("file for '{object}' was not prepared"))?;
        file.write_all(records)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(None)
    }

    fn close_part(&mut self, _part: &PartitionKey) -> Result<()> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        for (object, (file, partial)) in self.files {
            drop(file);
            let done = self.dir.join(format!("{object}.jsonl"));
            std::fs::rename(&partial, &done)
                .with_context(|| format!("cannot move {} into place", partial.display()))?;
        }
        Ok(())
    }

    fn abort(self: Box<Self>) -> Result<()> {
        for (_, (file, partial)) in self.files {
            drop(file);
            std::fs::remove_file(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
        }
        Ok(())
    }
}
