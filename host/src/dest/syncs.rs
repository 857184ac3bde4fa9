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
//!
//! The syncs between two calls run at once when [`MANY_DATA_SYNCS`] or more of them are files',
//! [`SYNCS_AT_ONCE`] at a time: a group of 64 one-page partitions has 64 spools to sync, and one
//! after the other they waited for the disk 64 times, where a disk serves many requests at once (and
//! a journaling file system commits concurrent syncs together). Nothing is durable until all of them
//! are done, so their order among themselves does not matter; a call runs once every step before it
//! is done. Fewer run on the committer alone; the helpers are a pool of threads that all committers
//! share ([`Pool`]).
//!
//! ```text
//!  [data, data, folder, data, ...] ──► the committer + up to SYNCS_AT_ONCE - 1 pool threads ──► all done
//!                                      ──► call ──► [data...] ...
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, mpsc};

use anyhow::{Context, Result};

/// The most syncs of a group that run at once.
pub const SYNCS_AT_ONCE: usize = 8;
/// The fewest files' data syncs between two calls that are worth handing to other threads: a group
/// of one partition has one spool and the few folders made for it, and handing those to the pool
/// cost more than it saved (1,000 tenants of one partition each: 2.76–2.77 → 2.98–3.01 s on tmpfs,
/// 6.0–6.2 → 6.4–7.1 s on ext4).
pub const MANY_DATA_SYNCS: usize = 4;

/// The syncs of one commit group.
#[derive(Default)]
#[must_use = "what was written is only durable once these syncs have run"]
pub struct Syncs {
    steps: Vec<Step>,
}

enum Step {
    Sync(Sync),
    /// Anything else: work the destination leaves to the committer thread once the steps before it
    /// are done (SQLite's backfill), or in the writer's tests a sync that blocks, or fails, when told to.
    Call(Box<dyn FnOnce() -> Result<()> + Send>),
}

enum Sync {
    /// A file's data (and the metadata needed to read it back, as `fdatasync` does), named for
    /// messages by `what` ("the spool ...").
    Data { file: File, what: String },
    /// A folder's entries (files created or renamed in it).
    Folder(PathBuf),
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
        self.steps.push(Step::Sync(Sync::Data { file, what }));
    }

    /// Sync `dir`'s entries, once however many times it is added: every entry of the group was made
    /// before its syncs run, so one sync, where the folder was first added, covers them all.
    pub fn folder(&mut self, dir: &Path) {
        if !self.steps.iter().any(|step| matches!(step, Step::Sync(Sync::Folder(folder)) if folder == dir)) {
            self.steps.push(Step::Sync(Sync::Folder(dir.to_owned())));
        }
    }

    /// Run `call` as a step, once the steps before it are done; a step that fails ends the run, so
    /// `call` may then never run (it is dropped with the rest).
    pub fn call(&mut self, call: impl FnOnce() -> Result<()> + Send + 'static) {
        self.steps.push(Step::Call(Box::new(call)));
    }

    /// Sync everything: the syncs between two calls at once, each call after the steps before it.
    /// Stops at the first failure (the first in the order the steps were added, of those that ran).
    pub fn run(self) -> Result<()> {
        let mut syncs = Vec::new();
        for step in self.steps {
            match step {
                Step::Sync(sync) => syncs.push(sync),
                Step::Call(call) => {
                    run_at_once(std::mem::take(&mut syncs))?;
                    call()?;
                }
            }
        }
        run_at_once(syncs)
    }
}

impl Sync {
    fn run(&self) -> Result<()> {
        match self {
            Sync::Data { file, what } => file.sync_data().with_context(|| format!("cannot sync {what}")),
            Sync::Folder(dir) => super::sync_dir(dir),
        }
    }
}

/// Run `syncs` on this thread and, when [`MANY_DATA_SYNCS`] or more of them are files', on up to
/// [`SYNCS_AT_ONCE`] - 1 threads of the shared [`Pool`] too. Once one fails no more are started; the
/// error is that of the first failed sync in `syncs`' order.
fn run_at_once(syncs: Vec<Sync>) -> Result<()> {
    let files = syncs.iter().filter(|sync| matches!(sync, Sync::Data { .. })).count();
    let helpers = if files >= MANY_DATA_SYNCS { syncs.len().min(SYNCS_AT_ONCE) - 1 } else { 0 };
    let batch = Arc::new(Batch {
        syncs,
        next: AtomicUsize::new(0),
        working: Mutex::new(0),
        idle: Condvar::new(),
        failed: Mutex::new(None),
    });
    if helpers > 0
        && let Some(pool) = Pool::get()
    {
        for _ in 0..helpers {
            pool.help(&batch);
        }
    }
    batch.work();
    // Every sync handed out is done once no thread is working on the batch: a helper counts itself
    // in before it takes a sync, and one that comes after the last sync was handed out takes none.
    let mut working = batch.working.lock().unwrap_or_else(PoisonError::into_inner);
    while *working > 0 {
        working = batch.idle.wait(working).unwrap_or_else(PoisonError::into_inner);
    }
    drop(working);
    match batch.failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// The syncs between two calls, shared by the committer and the pool's threads helping it.
struct Batch {
    syncs: Vec<Sync>,
    /// The next sync to hand out.
    next: AtomicUsize,
    /// The threads working on the batch, and a signal when that falls to none.
    working: Mutex<usize>,
    idle: Condvar,
    /// The first failed sync in `syncs`' order, and its error.
    failed: Mutex<Option<(usize, anyhow::Error)>>,
}

impl Batch {
    /// Run syncs until none is left to hand out.
    fn work(&self) {
        *self.working.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let _done = Done(self);
        loop {
            let at = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(sync) = self.syncs.get(at) else { break };
            if let Err(error) = sync.run() {
                let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
                if failed.as_ref().is_none_or(|(first, _)| at < *first) {
                    *failed = Some((at, error));
                }
                // An update, not a store, so that the committer's last look at `next` still
                // synchronizes with every thread that took a sync, and sees it counted in `working`.
                self.next.fetch_max(self.syncs.len(), Ordering::SeqCst);
            }
        }
    }
}

/// Counts a thread out of its batch when it is done, even by a panic, so that the committer waiting
/// for the batch is never left waiting.
struct Done<'a>(&'a Batch);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let mut working = self.0.working.lock().unwrap_or_else(PoisonError::into_inner);
        *working -= 1;
        if *working == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// [`SYNCS_AT_ONCE`] - 1 threads, started on first use, that help committers with their batches:
/// all committers share them, so that a group starts no thread (starting helpers for each group cost
/// 1,000 tenants 3.25 → 3.81 s, the kernel's time 2.3 → 3.2 s).
struct Pool {
    batches: mpsc::Sender<Arc<Batch>>,
}

impl Pool {
    /// The pool, or `None` if the system would not start its threads (the committer then syncs alone).
    fn get() -> Option<&'static Pool> {
        static POOL: OnceLock<Option<Pool>> = OnceLock::new();
        POOL.get_or_init(|| {
            let (batches, received) = mpsc::channel::<Arc<Batch>>();
            let received = Arc::new(Mutex::new(received));
            let mut started = 0;
            for _ in 1..SYNCS_AT_ONCE {
                let received = received.clone();
                let thread = std::thread::Builder::new().name("sync".into()).spawn(move || {
                    loop {
                        let batch = received.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match batch {
                            Ok(batch) => batch.work(),
                            Err(_) => return,
                        }
                    }
                });
                started += usize::from(thread.is_ok());
            }
            (started > 0).then_some(Pool { batches })
        })
        .as_ref()
    }

    /// Have one of the pool's threads work on `batch` when it is free.
    fn help(&self, batch: &Arc<Batch>) {
        let _ = self.batches.send(batch.clone());
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

    #[test]
    fn many_syncs_run_at_once_and_the_first_failure_in_order_is_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<File> = (0..20).map(|i| File::create(dir.path().join(format!("spool-{i}"))).unwrap()).collect();
        let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut syncs = Syncs::default();
        for (i, file) in files.iter().enumerate() {
            syncs.data(file, format!("spool {i}")).unwrap();
            syncs.folder(&dir.path().join(format!("folder-{}", i % 3)));
        }
        let noted = ran.clone();
        syncs.call(move || {
            noted.lock().unwrap().push("between");
            Ok(())
        });
        syncs.folder(dir.path());
        // Folders 0, 1 and 2 are missing: the error is that of folder-0, added first.
        let error = format!("{:#}", syncs.run().unwrap_err());
        assert!(error.contains("folder-0"), "{error}");
        assert!(ran.lock().unwrap().is_empty(), "a call waits for every sync before it");

        let mut syncs = Syncs::default();
        for (i, file) in files.iter().enumerate() {
            syncs.data(file, format!("spool {i}")).unwrap();
        }
        let noted = ran.clone();
        syncs.call(move || {
            noted.lock().unwrap().push("after 20 spools");
            Ok(())
        });
        syncs.run().unwrap();
        assert_eq!(*ran.lock().unwrap(), ["after 20 spools"]);
    }
}
