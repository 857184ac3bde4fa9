//! SQLite's log copied into the database on the writer's committer thread, not on the writer.
//!
//! In WAL mode a `COMMIT` appends a group's pages to the log (`FILE-wal`); SQLite copies them into the
//! database later and starts the log over once all of it was copied. SQLite calls that copy a
//! checkpoint; here it is the *backfill* (the word of SQLite's sources), apart from the run's
//! checkpoints. By default the connection that commits backfills every 1,000 pages of log, inline: a
//! quarter of the writer thread's CPU in a run into SQLite, on the thread every page waits for.
//!
//! ```text
//!  writer thread (wal_autocheckpoint=0)        committer thread
//!  COMMIT group N ──► Syncs: log, then step ──► sync the log, then backfill through a second
//!  BEGIN group N+1, inserts...                  connection (PASSIVE: beside the writer, no wait)
//!  LOG_LIMIT written since the last wait?
//!  wait for the steps handed out, then BEGIN:
//!  the log starts over
//! ```
//!
//! The log only starts over when a write transaction begins with all of it copied, which a writer
//! that never waits never sees: so once it has written [`LOG_LIMIT`] bytes of records since it last
//! waited, the writer waits for the steps it handed out before it begins its next transaction
//! ([`Backfill::wait_if_long`]). The log then stays near that size (a reader holding an old snapshot
//! can still keep it from starting over, as it can in any WAL database).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use anyhow::{Context, Result};
use rusqlite::Connection;

/// The bytes of records written after which the writer lets the backfill catch up, so that the log
/// starts over: about the log's longest.
pub const LOG_LIMIT: usize = 64 << 20;

/// The second connection, and the count of the steps done.
pub struct Backfill {
    /// Used by one step at a time, on the committer thread.
    db: Arc<Mutex<Connection>>,
    done: Arc<Done>,
    /// The steps handed out.
    handed: u64,
    /// The bytes of records written since the writer last waited, and the most before it waits.
    written: usize,
    limit: usize,
}

/// The steps that have run, or that were dropped without running (a step before them failed): a
/// writer waiting for them is never left waiting.
#[derive(Default)]
struct Done {
    count: Mutex<u64>,
    changed: Condvar,
}

/// Counts its step as done when dropped, run or not.
struct Ticket(Arc<Done>);

impl Drop for Ticket {
    fn drop(&mut self) {
        *self.0.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.changed.notify_all();
    }
}

impl Backfill {
    /// A second connection to the database at `path`; the writer waits every `limit` bytes.
    pub fn open(path: &Path, limit: usize) -> Result<Backfill> {
        let db = Connection::open(path)
            .with_context(|| format!("cannot open the SQLite database {} a second time", path.display()))?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Backfill { db: Arc::new(Mutex::new(db)), done: Arc::default(), handed: 0, written: 0, limit })
    }

    /// The step that copies what was committed so far into the database, for the committer to run
    /// after the log's sync.
    pub fn step(&mut self) -> impl FnOnce() -> Result<()> + Send + 'static {
        self.handed += 1;
        let (db, ticket) = (self.db.clone(), Ticket(self.done.clone()));
        move || {
            let _ticket = ticket;
            let db = db.lock().unwrap_or_else(PoisonError::into_inner);
            // A row: (whether it was blocked, pages in the log, pages copied); PASSIVE never waits.
            db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .context("cannot copy SQLite's log into the database")
        }
    }

    /// Close the second connection. Closed after the writer's, it is the database's last: SQLite
    /// then copies what is left of the log and removes it.
    pub fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.db) {
            Ok(db) => db.into_inner().unwrap_or_else(PoisonError::into_inner).close().map_err(|(_, e)| e.into()),
            // A step not yet dropped holds it (none does once the committer has ended): it closes then.
            Err(_) => Ok(()),
        }
    }

    /// Note `bytes` of records written.
    pub fn wrote(&mut self, bytes: usize) {
        self.written += bytes;
    }

    /// If the limit's worth of records was written since the last wait, wait until every step
    /// handed out has run: the next transaction then starts the log over. Call it before a
    /// transaction begins.
    pub fn wait_if_long(&mut self) {
        if self.written >= self.limit {
            self.written = 0;
            let mut done = self.done.count.lock().unwrap_or_else(PoisonError::into_inner);
            while *done < self.handed {
                done = self.done.changed.wait(done).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn database(name: &str, limit: usize) -> (PathBuf, Connection, Backfill) {
        let dir = std::env::temp_dir().join(format!("backfill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x TEXT);").unwrap();
        let backfill = Backfill::open(&path, limit).unwrap();
        (dir, db, backfill)
    }

    fn insert(db: &Connection, bytes: usize) {
        db.execute("INSERT INTO t VALUES (?)", [&"x".repeat(bytes)]).unwrap();
    }

    fn length(path: PathBuf) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_step_copies_the_log_into_the_database_and_the_log_starts_over() {
        let (dir, db, mut backfill) = database("copies", LOG_LIMIT);
        insert(&db, 1 << 20);
        let before = length(dir.join("t.db"));
        backfill.step()().unwrap();
        let after = length(dir.join("t.db"));
        assert!(after > before + (1 << 20), "the database holds the row: {before} -> {after}");
        // All of it copied: the next transaction writes the log from its start.
        let log = length(dir.join("t.db-wal"));
        insert(&db, 1000);
        assert_eq!(length(dir.join("t.db-wal")), log, "the log grew instead of starting over");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn past_the_limit_the_writer_waits_for_the_steps_handed_out_even_those_dropped() {
        let (dir, db, mut backfill) = database("waits", 1000);
        // Below the limit: no wait, whatever is pending.
        let pending = backfill.step();
        backfill.wrote(999);
        backfill.wait_if_long();
        // Past it: the step runs on another thread later; the wait ends once it has.
        insert(&db, 1000);
        backfill.wrote(1);
        let (ran, runs) = std::sync::mpsc::channel();
        let committer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            ran.send(()).unwrap();
            pending().unwrap();
        });
        backfill.wait_if_long();
        assert!(runs.try_recv().is_ok(), "the wait ended before the step ran");
        committer.join().unwrap();
        // A step dropped unrun (a sync before it failed) is counted too: this wait ends.
        drop(backfill.step());
        backfill.wrote(1000);
        backfill.wait_if_long();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
