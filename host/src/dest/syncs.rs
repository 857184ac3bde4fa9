//! What is left to make a commit group durable once the writer thread has done its part: files and
//! folders to sync, and whatever else a destination leaves to the committer (SQLite's copy of its log
//! into the database), in order.
//!
//! A destination's [`super::Destination::commit`] does on the writer thread what must happen there
//! (a transaction's `COMMIT`, the bookkeeping of what changed) and returns the rest as [`Syncs`]:
//! a file's data (through its own handle, so the writer may go on appending to the file meanwhile)
//! or a folder's entries. The writer hands them to its committer thread (`writer::committer`),
//! which runs them, then saves the group's checkpoints, then answers the group, while the writer
//! writes the next group's pages. An `fdatasync` takes about 2 ms on ext4; done on the writer thread,
//! every group's syncs held up the pages behind it.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The syncs of one commit group, run in the order they were added.
#[derive(Default)]
#[must_use = "what was written is only durable once these syncs have run"]
pub struct Syncs {
    steps: Vec<Step>,
}

enum Step {
    /// A file's data (and the metadata needed to read it back, as `fdatasync` does), named for
    /// messages by `what` ("the spool ...").
    Data { file: File, what: String },
    /// A folder's entries (files created or renamed in it).
    Folder(PathBuf),
    /// Anything else: work the destination leaves to the committer thread once the steps before it
    /// are done (SQLite's backfill), or in the writer's tests a sync that blocks, or fails, when told to.
    Call(Box<dyn FnOnce() -> Result<()> + Send>),
}

impl Syncs {
    /// Sync `file`'s data, through a handle of its own: `what` names it in an error.
    pub fn data(&mut self, file: &File, what: String) -> Result<()> {
        let file = file.try_clone().with_context(|| format!("cannot sync {what}: no second handle to it"))?;
        self.data_owned(file, what);
        Ok(())
    }

    /// Sync the data of `file`, a handle opened for this: `what` names it in an error.
    pub fn data_owned(&mut self, file: File, what: String) {
        self.steps.push(Step::Data { file, what });
    }

    /// Sync `dir`'s entries, once however many times it is added: every entry of the group was made
    /// before its syncs run, so one sync, where the folder was first added, covers them all.
    pub fn folder(&mut self, dir: &Path) {
        if !self.steps.iter().any(|step| matches!(step, Step::Folder(folder) if folder == dir)) {
            self.steps.push(Step::Folder(dir.to_owned()));
        }
    }

    /// Run `call` as a step, once the steps before it are done; a step that fails ends the run, so
    /// `call` may then never run (it is dropped with the rest).
    pub fn call(&mut self, call: impl FnOnce() -> Result<()> + Send + 'static) {
        self.steps.push(Step::Call(Box::new(call)));
    }

    /// Sync everything, in order; stops at the first failure.
    pub fn run(self) -> Result<()> {
        for step in self.steps {
            match step {
                Step::Data { file, what } => file.sync_data().with_context(|| format!("cannot sync {what}"))?,
                Step::Folder(dir) => super::sync_dir(&dir)?,
                Step::Call(call) => call()?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_in_order_and_the_first_failure_names_what() {
        let dir = std::env::temp_dir().join(format!("syncs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = File::create(dir.join("spool")).unwrap();
        let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut syncs = Syncs::default();
        syncs.data(&file, "the spool".into()).unwrap();
        syncs.folder(&dir);
        syncs.folder(&dir);
        assert_eq!(syncs.steps.len(), 2, "a folder added twice in a row is synced once");
        let noted = ran.clone();
        syncs.call(move || {
            noted.lock().unwrap().push("after the folder");
            Ok(())
        });
        syncs.run().unwrap();
        assert_eq!(*ran.lock().unwrap(), ["after the folder"]);

        let mut syncs = Syncs::default();
        syncs.folder(&dir.join("gone"));
        let noted = ran.clone();
        syncs.call(move || {
            noted.lock().unwrap().push("never");
            Ok(())
        });
        let error = format!("{:#}", syncs.run().unwrap_err());
        assert!(error.contains("cannot sync the folder") && error.contains("gone"), "{error}");
        assert_eq!(ran.lock().unwrap().len(), 1, "nothing runs after a failed step");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
