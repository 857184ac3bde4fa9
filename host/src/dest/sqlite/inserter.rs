//! The inserting thread: checked pages upserted into SQLite while the writer thread reads the next.
//!
//! Reading a page of the plugin's NDJSON (its JSON, its values, its keys) was a third of the writer
//! thread's time, and SQLite's own work most of the rest, one after the other on the thread every
//! page of the run waits for. Now the writer thread reads and checks page N+1 while this thread
//! inserts page N; the pipeline is one page deep, so at most two pages are held.
//!
//! ```text
//!  writer thread:   read N ─► send N ─► read N+1 ─► wait for N ─► send N+1 ─► ...
//!  inserter thread:            insert N ────────►   (Db back)      insert N+1 ──►
//! ```
//!
//! The connection ([`Db`], with its statements and the group's state) travels with the page and
//! comes back with it: whoever holds it is the only one using it, so nothing is locked, and the
//! writer thread uses it (to commit, prepare a table, load or save a checkpoint) only once the page
//! in flight is back ([`Inserter::db`]). A page that SQLite fails to write (a full disk, an I/O error,
//! a trigger a user added) rolls back the group's transaction here; the reason comes back with the
//! connection, and the group's later pages, checkpoints and commit fail with it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::Connection;

use super::page::{CheckedPage, Shape};
use super::upsert::Upsert;
use crate::dest::cpu;
use crate::state::{self, Checkpoint, PartitionKey};

/// The connection and what goes with it: its statements, and the state of the group being written.
pub struct Db {
    /// Statements on `conn`: declared before it, so dropped before it closes.
    upserts: Upserts,
    pub conn: Connection,
    /// Whether a transaction holds pages not yet committed.
    pub in_transaction: bool,
    /// Why the group's transaction was rolled back, when a page failed half-written: the group's
    /// other pages, its checkpoints and its commit fail too.
    pub rolled_back: Option<String>,
}

/// Why the pages and checkpoints of a group rolled back are refused.
pub const ROLLED_BACK: &str = "the pages written with this one were rolled back when one failed";

impl Db {
    pub fn new(conn: Connection) -> Db {
        Db { upserts: Upserts::default(), conn, in_transaction: false, rolled_back: None }
    }

    /// Refuse what belongs to a group whose transaction was rolled back.
    pub fn not_rolled_back(&self) -> Result<()> {
        match &self.rolled_back {
            Some(why) => Err(anyhow!("{ROLLED_BACK}: {why}")),
            None => Ok(()),
        }
    }

    /// Close the connection, its statements first (SQLite closes a connection only once its
    /// statements are finalized).
    pub fn close(self) -> Result<()> {
        drop(self.upserts);
        self.conn.close().map_err(|(_, e)| e.into())
    }

    /// Upsert every record of `page`, then save `checkpoint`; if SQLite fails, roll the group back.
    fn write(&mut self, page: &CheckedPage, checkpoint: Option<&(PartitionKey, Checkpoint)>) {
        if self.rolled_back.is_some() {
            return;
        }
        let Db { upserts, conn, .. } = self;
        let written =
            page.each_record(|shape, values| upserts.find(conn, shape)?.execute(values)).and_then(
                |()| match checkpoint {
                    Some((part, checkpoint)) => state::sqlite::save(conn, part, checkpoint),
                    None => Ok(()),
                },
            );
        if let Err(error) = written {
            self.rolled_back = Some(format!("{error:#}"));
            self.in_transaction = false;
            // SQLite may have rolled it back itself (after SQLITE_FULL, say).
            if !self.conn.is_autocommit()
                && let Err(failed) = self.conn.execute_batch("ROLLBACK")
            {
                self.rolled_back = Some(format!("{error:#}; then the rollback failed: {failed}"));
            }
        }
    }
}

/// The upserts prepared so far, each for its shape.
#[derive(Default)]
struct Upserts(Vec<(Arc<Shape>, Upsert)>);

impl Upserts {
    /// So many different shapes and the cache starts over.
    const LIMIT: usize = 16;

    /// The upsert of `shape`, prepared if it is new.
    fn find(&mut self, conn: &Connection, shape: &Arc<Shape>) -> Result<&mut Upsert> {
        let at = match self.0.iter().position(|(known, _)| Arc::ptr_eq(known, shape)) {
            Some(at) => at,
            None => {
                if self.0.len() == Self::LIMIT {
                    self.0.clear();
                }
                // SAFETY: a `Db` drops its upserts before its connection, and `close` drops them
                // before it closes it.
                let upsert = unsafe { Upsert::prepare(conn, &shape.upsert) }?;
                self.0.push((shape.clone(), upsert));
                self.0.len() - 1
            }
        };
        Ok(&mut self.0[at].1)
    }
}

/// A page on its way to the inserting thread, with the connection, and on its way back.
struct Job {
    db: Db,
    page: CheckedPage,
    checkpoint: Option<(PartitionKey, Checkpoint)>,
}

/// The inserting thread, and the connection when it is not there.
pub struct Inserter {
    /// The connection, unless a page is being inserted.
    db: Option<Db>,
    /// A page's buffers, to read the next page into.
    spare: CheckedPage,
    /// The buffers of the page inserted last, back from the thread: the spare after the next insert.
    back: Option<CheckedPage>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Job>,
    thread: Option<JoinHandle<Duration>>,
}

impl Inserter {
    /// Start the inserting thread; `db` is the connection it writes with.
    pub fn start(db: Db) -> Result<Inserter> {
        let (jobs, queue) = sync_channel::<Job>(1);
        let (finished, done) = sync_channel::<Job>(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-inserter".into())
            .spawn(move || {
                for mut job in queue {
                    job.db.write(&job.page, job.checkpoint.as_ref());
                    if finished.send(job).is_err() {
                        break;
                    }
                }
                cpu::this_thread_cpu().unwrap_or_default()
            })
            .context("cannot start the SQLite destination's inserting thread")?;
        Ok(Inserter {
            db: Some(db),
            spare: CheckedPage::default(),
            back: None,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// A page's buffers to read the next page into (what they held is cleared as it is read).
    pub fn spare(&mut self) -> &mut CheckedPage {
        &mut self.spare
    }

    /// The connection, once the page being inserted (if any) is in: the group's transaction may
    /// have been rolled back by it (see [`Db::not_rolled_back`]).
    pub fn db(&mut self) -> Result<&mut Db> {
        if self.db.is_none() {
            let job = self.done.recv().map_err(|_| anyhow!("the SQLite destination's inserting thread has stopped"))?;
            self.db = Some(job.db);
            self.back = Some(job.page);
        }
        Ok(self.db.as_mut().expect("the connection is back"))
    }

    /// Hand the spare page (read) to the inserting thread, with `checkpoint` to save after it in the
    /// same transaction. The connection must be here ([`Inserter::db`]).
    pub fn insert(&mut self, checkpoint: Option<(PartitionKey, Checkpoint)>) -> Result<()> {
        let Some(db) = self.db.take() else { bail!("a page is already being inserted") };
        let page = std::mem::replace(&mut self.spare, self.back.take().unwrap_or_default());
        let jobs = self.jobs.as_ref().expect("the inserter runs until it is stopped");
        jobs.send(Job { db, page, checkpoint })
            .map_err(|_| anyhow!("the SQLite destination's inserting thread has stopped"))
    }

    /// Wait for the page in flight, stop the thread; the connection, and the CPU time the thread used.
    pub fn stop(mut self) -> Result<(Db, Duration)> {
        self.db()?;
        let db = self.db.take().expect("the connection is back");
        Ok((db, self.join()))
    }

    fn join(&mut self) -> Duration {
        self.jobs = None;
        self.thread.take().map(|thread| thread.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for Inserter {
    fn drop(&mut self) {
        // A page in flight finishes (its connection is then dropped, rolling back what was not
        // committed) before the thread ends.
        self.join();
    }
}
