//! The writer: the one thread that opens a run's destination, writes its pages there and saves its
//! checkpoints.
//!
//! All writes and checkpoint saves of a run go through its [`Writer`], so a destination is only ever
//! used from one thread, the one that opened it ([`Writer::start`]: file and network work that would
//! otherwise hold one of the async runtime's few threads); the writer's [`committer`] thread makes
//! the pages durable and saves their checkpoints while the writer writes on.
//!
//! A partition hands a page over ([`Writer::send_page`]) and reads on while it is written, with at
//! most [`PAGES_IN_WRITER`] of its pages in the writer's hands: before handing over another, it waits
//! for the oldest to be written ([`PendingPage::written`]). Pages become durable, and their
//! checkpoints saved, at the writer's next commit ([`PendingPage::durable`]): at once when someone
//! waits for it (a read that completes, a checkpoint saved, a part closed) or when it covers
//! [`COMMIT_PAGES`] pages of one partition, else [`COMMIT_INTERVAL`] after the first page it covers.
//! A partition ends once all its pages are durable. Once a page or a commit of a partition fails, the
//! writer refuses that partition's later pages and checkpoints, so no checkpoint ever passes a page
//! that was not written.
//!
//! ```text
//!  partitions ──send_page / save / close──► writer thread ──write_page──► destination
//!                                              │ commit (one transaction, or one fsync per file)
//!                                              ▼
//!                                           committer thread: the group's syncs, then its checkpoints
//!                                              │
//!  PendingPage::durable ◄──────── answered ────┘
//! ```
//!
//! A partition's checkpoint is loaded before it starts: through the writer (after the saves queued
//! before it) when the partition was opened in this run, else from a second, read-only handle on
//! the store ([`DirectLoads`]), which answers at once whatever the writer is busy with.

mod committer;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tokio::sync::{mpsc, oneshot};

use self::committer::{Committer, Failed, Group};
use super::{CpuMeter, Destination, TableSchema};
use crate::state::{Checkpoint, CheckpointReader, CheckpointStore, PartitionKey, ReaderOpener};

type Reply<T> = oneshot::Sender<Result<T>>;

/// What a writer opens on its thread: the destination, and the checkpoint store apart from it
/// (`None` where the destination keeps its own checkpoints).
pub type Opened = (Box<dyn Destination>, Option<Box<dyn CheckpointStore>>);

enum Job {
    Prepare(TableSchema, Reply<()>),
    Load(PartitionKey, Reply<Option<Checkpoint>>),
    Open(PartitionKey, Option<String>, Reply<()>),
    // Checkpoints are boxed: they are large, and every other job small.
    Write { part: PartitionKey, records: Vec<u8>, checkpoint: Box<Checkpoint>, written: Reply<()>, done: Reply<()> },
    Save(PartitionKey, Box<Checkpoint>, Reply<()>),
    Close(PartitionKey, Reply<()>),
}

/// What the writer thread receives: a job, or the end of the run.
enum Message {
    Job(Job),
    Finish(Reply<()>),
    Abort(Reply<()>),
}

/// The most page writes and checkpoint saves one commit of the writer covers.
pub const MOST_JOBS_PER_COMMIT: usize = 256;

/// The longest a written page waits for its commit while nothing else asks for one. A commit per
/// page (one `fdatasync` per spool, one transaction) cost a tenth of a single-partition run into
/// JSONL on ext4.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The most pages of one partition a commit waits for: a crash makes a partition read again at
/// most twice this many pages (a group being made durable, the next being written) more than its
/// pipeline holds (whose checkpoints were not saved either). With 4, a 50,000-issue run into JSONL
/// on ext4 made 125 commits (two `fdatasync`s each: the spool, the checkpoint store); 16 cut its
/// CPU by 6 % and its wall time by 5 %, 32 gained nothing more. A crash then costs at most 36
/// pages (3,600 records) read again.
pub const COMMIT_PAGES: usize = 16;

/// The most pages of one partition in the writer's hands at once. With one, the writer idled while
/// each partition waited for its page to be answered before sending the next (a third of a
/// single-partition run into JSONL); with two it has the next page queued when it answers one.
pub const PAGES_IN_WRITER: usize = 2;

/// The one thread that writes to a run's destination and saves its checkpoints.
///
/// It owns the destination and, unless the destination keeps its own, the separate checkpoint store,
/// so that "page durable, then checkpoint saved" happens in one place and in that order.
///
/// It commits in groups: it writes each page as it comes (and says so to its partition, which may
/// then hand over its next), and gathers them, up to [`MOST_JOBS_PER_COMMIT`] (or the destination's
/// own limit), until the group's
/// commit is due: at once when a job of it is waited for or a partition has [`COMMIT_PAGES`] pages
/// in it, else [`COMMIT_INTERVAL`] after the first.
/// Then it commits all of them at once ([`Destination::commit`]: one transaction, or one fsync per
/// file), and hands the group to its [`committer`] thread, which runs the group's syncs, saves all
/// its checkpoints at once ([`CheckpointStore::save_all`]), and only then answers it, while the
/// writer writes the next group's pages. A run's pages share the cost of durability instead of each
/// paying for it, and no page waits for another group's fsyncs to be written.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Message>,
    cpu: CpuMeter,
    /// Loads that need not wait for the writer, where the checkpoint store has a reader.
    direct: Option<Arc<DirectLoads>>,
}

/// The checkpoints of the partitions not opened in this run, loaded straight from the store.
///
/// A partition loads its checkpoint before it starts, and through the writer that load waited for
/// every job queued before it, and (with a checkpoint store apart from the destination) for the
/// committer to finish the group it was syncing: a median of 22 ms, of 2,000 one-page partitions at
/// 64 at once, each holding a permit. A partition not opened in this run has no checkpoint in the
/// writer's hands, so what the store last committed is its checkpoint, read by a second handle.
///
/// The handle is opened with the run's second load: a run of one partition (as each of 1,000
/// tenants' at once) would only pay for it, 40 KiB and a file opened a tenant.
struct DirectLoads {
    reader: Mutex<Reader>,
    /// The loads asked so far.
    loads: AtomicUsize,
    /// The partitions opened in this run: their loads go through the writer, after their saves.
    opened: Mutex<HashSet<PartitionKey>>,
}

/// The second handle on the checkpoint store.
enum Reader {
    Unopened(ReaderOpener),
    Open(Box<dyn CheckpointReader>),
    /// Closed before the destination and the store are (the last connection to a SQLite database to
    /// close removes its log), or it could not be opened: every load goes through the writer.
    Closed,
}

impl DirectLoads {
    fn new(open: ReaderOpener) -> DirectLoads {
        DirectLoads { reader: Mutex::new(Reader::Unopened(open)), loads: AtomicUsize::new(0), opened: Mutex::default() }
    }

    /// The checkpoint of `part` from the second handle, or `None` where its load goes through the
    /// writer: `part` was opened in this run, this is the run's first load, or there is no handle.
    fn load(&self, part: &PartitionKey) -> Option<Result<Option<Checkpoint>>> {
        let first = self.loads.fetch_add(1, Ordering::Relaxed) == 0;
        if first || lock(&self.opened).contains(part) {
            return None;
        }
        let mut reader = lock(&self.reader);
        *reader = match std::mem::replace(&mut *reader, Reader::Closed) {
            Reader::Unopened(open) => open().map(Reader::Open).unwrap_or_else(|error| {
                tracing::debug!("checkpoints are loaded through the writer: {error:#}");
                Reader::Closed
            }),
            opened_or_closed => opened_or_closed,
        };
        match &mut *reader {
            Reader::Open(reader) => Some(reader.load(part)),
            Reader::Unopened(_) | Reader::Closed => None,
        }
    }

    fn close(&self) {
        *lock(&self.reader) = Reader::Closed;
    }
}

/// The destination and the committer (which holds the separate checkpoint store, if there is one),
/// as the writer thread holds them.
struct Sink {
    destination: Box<dyn Destination>,
    committer: Committer,
    /// Whether the checkpoints go to a store apart from the destination (the committer's).
    store_apart: bool,
    /// Checkpoints for the separate store, saved once the pages they follow are durable.
    unsaved: Vec<(PartitionKey, Checkpoint)>,
    /// The answers to the page writes, checkpoint saves and part closes of the group being committed,
    /// with the partition each is for.
    unanswered: Vec<(PartitionKey, Reply<()>)>,
    /// The partitions a page write, checkpoint save, close or commit failed for since they were
    /// opened: their later jobs, already queued behind the failed one, are refused.
    failed: Failed,
    /// When the group's commit is due: `interval` after its first job, or at once when a job of it
    /// is waited for (`None` when the group is empty).
    due: Option<Instant>,
    /// [`COMMIT_INTERVAL`], but in tests.
    interval: Duration,
    /// The pages of each partition in the group that nothing waits for yet.
    deferred: HashMap<PartitionKey, usize>,
    /// Whether a partition has [`COMMIT_PAGES`] pages in the group: it is committed before the writer
    /// takes another job, however many more are queued (a partition that reads faster than its pages
    /// are written keeps the queue from ever running dry).
    full: bool,
    /// The destination's [`MOST_JOBS_PER_COMMIT`] (see [`Destination::most_jobs_per_commit`]).
    most_jobs: usize,
}

impl Sink {
    /// The destination's own checkpoint store.
    fn store(&mut self) -> Result<&mut dyn CheckpointStore> {
        self.destination.checkpoints().ok_or_else(|| anyhow!("this run has no checkpoint store"))
    }

    /// Write a page of `part`, and have `checkpoint` saved after it (in the page's transaction when
    /// the destination keeps the checkpoints; else once the page is committed).
    ///
    /// A checkpoint that ends the read (no next page) is saved only after the part is published
    /// (`close_part`): a crash in between leaves the read in progress, to be resumed from its last
    /// page, rather than a completed read whose records were never published.
    fn write(&mut self, part: &PartitionKey, records: &[u8], mut checkpoint: Checkpoint) -> Result<()> {
        let completes = !checkpoint.in_progress();
        if self.store_apart {
            // Page, commit, then checkpoint: a crash between the two leaves bytes past the saved
            // marker, which a resumed run cuts off.
            let marker = self.destination.write_page(part, records, None)?;
            if completes {
                self.destination.close_part(part)?;
            }
            checkpoint.dest_marker = if completes { None } else { marker };
            self.unsaved.push((part.clone(), checkpoint));
            Ok(())
        } else {
            self.destination.write_page(part, records, Some(&checkpoint))?;
            if completes { self.destination.close_part(part) } else { Ok(()) }
        }
    }

    /// Save `checkpoint` without a page; as in [`Sink::write`], a read completes once published.
    fn save(&mut self, part: &PartitionKey, checkpoint: Checkpoint) -> Result<()> {
        if !checkpoint.in_progress() {
            self.destination.close_part(part)?;
        }
        if self.store_apart {
            self.unsaved.push((part.clone(), checkpoint));
            Ok(())
        } else {
            self.store()?.save(part, &checkpoint)
        }
    }

    /// Whether the group is to be committed now: full, or its time has come.
    fn commit_due(&self) -> bool {
        self.unanswered.len() >= self.most_jobs || self.due.is_some_and(|due| due <= Instant::now())
    }

    /// Commit the group and hand it to the committer, which makes it durable, saves its checkpoints
    /// and answers its page writes, checkpoint saves and part closes (a group without any has
    /// nothing to commit).
    fn answer(&mut self) {
        if self.unanswered.is_empty() {
            return;
        }
        self.due = None;
        self.deferred.clear();
        self.full = false;
        let syncs = self.destination.commit();
        if syncs.is_err() {
            // Refused from the next job on, not only once the committer has answered.
            self.failed().extend(self.unanswered.iter().map(|(part, _)| part.clone()));
        }
        let checkpoints = std::mem::take(&mut self.unsaved);
        let answers = std::mem::take(&mut self.unanswered);
        self.committer.commit(Group { syncs, checkpoints, answers });
    }

    fn failed(&self) -> MutexGuard<'_, HashSet<PartitionKey>> {
        lock(&self.failed)
    }

    /// Answer a job of `part` with `done`: at the group's commit when it succeeded (at once if
    /// `waited`, its caller waiting on it, or if it makes [`COMMIT_PAGES`] of `part` in the group;
    /// else within the commit interval), at once when not.
    fn queue_answer(&mut self, part: PartitionKey, result: Result<()>, done: Reply<()>, waited: bool) {
        match result {
            Ok(()) => {
                let now = Instant::now();
                let deferred = self.deferred.entry(part.clone()).or_default();
                *deferred += 1;
                let full = *deferred >= COMMIT_PAGES;
                self.full |= full;
                let due = if waited || full { now } else { now + self.interval };
                self.due = Some(self.due.map_or(due, |earlier| earlier.min(due)));
                self.unanswered.push((part, done))
            }
            Err(error) => {
                self.failed().insert(part);
                drop(done.send(Err(error)));
            }
        }
    }

    /// Commit the last group, wait until the committer is done with it, and give back the destination.
    fn close(mut self) -> Box<dyn Destination> {
        self.answer();
        drop(self.committer);
        self.destination
    }

    /// Refuse a job of `part` queued after one of its jobs failed.
    fn not_failed(&self, part: &PartitionKey) -> Result<()> {
        match self.failed().contains(part) {
            true => Err(anyhow!("not written: an earlier page of {part} could not be written")),
            false => Ok(()),
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Prepare(table, done) => drop(done.send(self.destination.prepare(&table))),
            Job::Load(part, done) if self.store_apart => {
                // A checkpoint of this group still waiting for its commit is saved before a load.
                if !self.unsaved.is_empty() {
                    self.answer();
                }
                self.committer.load(part, done)
            }
            Job::Load(part, done) => drop(done.send(self.store().and_then(|store| store.load(&part)))),
            Job::Open(part, resume, done) => {
                let failed = self.failed().remove(&part);
                if failed {
                    // Its groups written before are committed (and refused) first.
                    self.answer();
                    self.committer.forget(part.clone());
                }
                drop(done.send(self.destination.open_part(&part, resume.as_deref())))
            }
            Job::Write { part, records, checkpoint, written: reply, done } => {
                // The partition waits for the read's last page to be durable before it ends.
                let completes = !checkpoint.in_progress();
                let written = self.not_failed(&part).and_then(|()| self.write(&part, &records, *checkpoint));
                drop(reply.send(written.as_ref().map(|_| ()).map_err(|e| anyhow!("{e:#}"))));
                self.queue_answer(part, written, done, completes);
            }
            Job::Save(part, checkpoint, done) => {
                let saved = self.not_failed(&part).and_then(|()| self.save(&part, *checkpoint));
                self.queue_answer(part, saved, done, true);
            }
            // A part published here is durable with the group's commit.
            Job::Close(part, done) => {
                let closed = self.not_failed(&part).and_then(|()| self.destination.close_part(&part));
                self.queue_answer(part, closed, done, true);
            }
        }
    }
}

/// What `mutex` guards, whatever a thread that panicked holding it left there (the writer's and
/// the committer's shared state).
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A page the writer thread has, not yet known to be durable.
#[must_use = "a page is only known durable once `durable` returns"]
pub struct PendingPage {
    part: PartitionKey,
    /// Answered once the page is written (its memory given back), until then.
    written: Option<oneshot::Receiver<Result<()>>>,
    durable: oneshot::Receiver<Result<()>>,
}

impl PendingPage {
    /// Wait until the page is written (not yet durable).
    pub async fn written(&mut self) -> Result<()> {
        match self.written.take() {
            Some(written) => self.answer(written.await),
            None => Ok(()),
        }
    }

    /// Whether the page's write was answered already.
    pub fn is_written(&self) -> bool {
        self.written.is_none()
    }

    /// Whether the page and its checkpoint are durable, if that is known yet.
    pub fn try_durable(&mut self) -> Option<Result<()>> {
        match self.durable.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => None,
            Ok(answer) => Some(self.answer(Ok(answer))),
            Err(oneshot::error::TryRecvError::Closed) => {
                Some(Err(anyhow!("the destination writer has stopped")).with_context(|| self.failed()))
            }
        }
    }

    /// Wait until the page and its checkpoint are durable.
    pub async fn durable(self) -> Result<()> {
        let answer = self.durable.await;
        PendingPage { durable: oneshot::channel().1, ..self }.answer(answer)
    }

    fn answer(&self, answer: Result<Result<()>, oneshot::error::RecvError>) -> Result<()> {
        answer.map_err(|_| anyhow!("the destination writer has stopped"))?.with_context(|| self.failed())
    }

    fn failed(&self) -> String {
        format!("cannot write a page of {}", self.part)
    }
}

impl Writer {
    /// Start the writer thread, open there what `open` opens (the destination, and the checkpoint
    /// store apart from it unless the destination keeps its own), and answer once it is open.
    ///
    /// Opening is file and network work: a run journal and a checkpoint database made and synced,
    /// a connection to a database. Done on the writer's own thread it keeps the async runtime's
    /// threads free, and the flows of many tenants open their destinations side by side (1,000
    /// tenants into JSONL on ext4: 7.85-10.72 s when the runtime's two threads opened them in turn,
    /// 5.49-7.81 s on their writers' threads), and a destination that hangs as it opens holds up
    /// its own flow only.
    /// An error if `open` fails, or if the system would not start the writer's threads (see
    /// [`crate::threads`]).
    pub async fn start(open: impl FnOnce() -> Result<Opened> + Send + 'static) -> Result<Writer> {
        Writer::start_with(open, COMMIT_INTERVAL).await
    }

    /// [`Writer::start`], committing pages nothing waits for `interval` after the first.
    async fn start_with(open: impl FnOnce() -> Result<Opened> + Send + 'static, interval: Duration) -> Result<Writer> {
        let (jobs, mut queue) = mpsc::channel::<Message>(64);
        let cpu = CpuMeter::default();
        let meter = cpu.clone();
        let (opened_to, opened) = oneshot::channel();
        crate::threads::spawn("destination-writer", move || {
            let failed = Failed::default();
            let started = open().and_then(|(mut destination, store)| {
                let reader = match &store {
                    Some(store) => store.reader(),
                    None => destination.checkpoints().and_then(|store| store.reader()),
                };
                let store_apart = store.is_some();
                let committer = Committer::start(store, failed.clone(), meter.clone())?;
                Ok((destination, store_apart, committer, reader))
            });
            let (destination, store_apart, committer) = match started {
                Ok((destination, store_apart, committer, reader)) => {
                    let _ = opened_to.send(Ok(reader));
                    (destination, store_apart, committer)
                }
                Err(error) => return drop(opened_to.send(Err(error))),
            };
            // A clock to wait on the queue with, until the group's commit falls due. Made here: a
            // runtime may not be dropped where the writer is started (async code). It has no I/O
            // driver, so it opens nothing that could fail.
            let clock = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime with only a timer");
            let mut sink = Sink {
                most_jobs: destination.most_jobs_per_commit().max(1),
                destination,
                store_apart,
                committer,
                unsaved: Vec::new(),
                unanswered: Vec::new(),
                failed,
                due: None,
                interval,
                deferred: HashMap::new(),
                full: false,
            };
            loop {
                let next = match sink.due {
                    None => queue.blocking_recv(),
                    Some(due) => {
                        let due = tokio::time::Instant::from_std(due);
                        // The timer is made inside the clock's runtime, which it needs.
                        match clock.block_on(async { tokio::time::timeout_at(due, queue.recv()).await }) {
                            Ok(next) => next,
                            Err(_) => {
                                sink.answer();
                                continue;
                            }
                        }
                    }
                };
                let Some(mut message) = next else {
                    // Every sender is gone: what was written is made durable, for a resumed run.
                    drop(sink.close());
                    return meter.add_this_thread();
                };
                // This message and whatever else is waiting join the group (partitions that
                // finish pages at the same moment share one commit).
                loop {
                    match message {
                        Message::Job(job) => sink.handle(job),
                        Message::Finish(done) => {
                            let finished = sink.close().finish();
                            meter.add_this_thread();
                            return drop(done.send(finished));
                        }
                        // What was written is kept durable for a resumed run.
                        Message::Abort(done) => {
                            let aborted = sink.close().abort();
                            meter.add_this_thread();
                            return drop(done.send(aborted));
                        }
                    }
                    if sink.unanswered.len() >= sink.most_jobs || sink.full {
                        break;
                    }
                    match queue.try_recv() {
                        Ok(next) => message = next,
                        Err(_) => break,
                    }
                }
                if sink.commit_due() {
                    sink.answer();
                }
            }
        })?;
        let reader =
            opened.await.map_err(|_| anyhow!("the destination writer stopped as it opened the destination"))??;
        Ok(Writer { jobs, cpu, direct: reader.map(|open| Arc::new(DirectLoads::new(open))) })
    }

    /// The CPU time of the writer and committer threads, complete once `finish` or `abort` answered.
    pub fn cpu(&self) -> CpuMeter {
        self.cpu.clone()
    }

    async fn submit<T>(&self, message: impl FnOnce(Reply<T>) -> Message) -> Result<T> {
        let (done, wait) = oneshot::channel();
        self.jobs.send(message(done)).await.map_err(|_| anyhow!("the destination writer has stopped"))?;
        wait.await.map_err(|_| anyhow!("the destination writer has stopped"))?
    }

    /// Prepare `table`.
    pub async fn prepare(&self, table: TableSchema) -> Result<()> {
        let name = table.name.clone();
        self.submit(|done| Message::Job(Job::Prepare(table, done)))
            .await
            .with_context(|| format!("cannot prepare '{name}'"))
    }

    /// The saved checkpoint of `part`.
    pub async fn load(&self, part: &PartitionKey) -> Result<Option<Checkpoint>> {
        if let Some(loaded) = self.direct.as_ref().and_then(|direct| direct.load(part)) {
            return loaded;
        }
        self.submit(|done| Message::Job(Job::Load(part.clone(), done))).await
    }

    /// Open (or resume, from the destination marker of a saved checkpoint) `part`.
    pub async fn open(&self, part: &PartitionKey, resume: Option<String>) -> Result<()> {
        if let Some(direct) = &self.direct {
            lock(&direct.opened).insert(part.clone());
        }
        self.submit(|done| Message::Job(Job::Open(part.clone(), resume, done)))
            .await
            .with_context(|| format!("cannot open {part}"))
    }

    /// Hand one page of `part` to the writer thread, which writes it and then saves `checkpoint` (its
    /// destination marker filled in by the destination). Returns once the writer has the page; the
    /// [`PendingPage`] says when it is written and when both are durable, so the partition can read
    /// its next page meanwhile.
    pub async fn send_page(
        &self,
        part: &PartitionKey,
        records: Vec<u8>,
        checkpoint: Checkpoint,
    ) -> Result<PendingPage> {
        let (done, durable) = oneshot::channel();
        let (written, written_answer) = oneshot::channel();
        let job = Job::Write { part: part.clone(), records, checkpoint: Box::new(checkpoint), written, done };
        self.jobs.send(Message::Job(job)).await.map_err(|_| anyhow!("the destination writer has stopped"))?;
        Ok(PendingPage { part: part.clone(), written: Some(written_answer), durable })
    }

    /// Save `checkpoint` for `part` without writing a page (a read that completed, or an empty page).
    pub async fn save(&self, part: &PartitionKey, checkpoint: Checkpoint) -> Result<()> {
        self.submit(|done| Message::Job(Job::Save(part.clone(), Box::new(checkpoint), done)))
            .await
            .with_context(|| format!("cannot save the checkpoint of {part}"))
    }

    /// Publish `part`: its read completed.
    pub async fn close(&self, part: &PartitionKey) -> Result<()> {
        self.submit(|done| Message::Job(Job::Close(part.clone(), done)))
            .await
            .with_context(|| format!("cannot close {part}"))
    }

    /// Finish the destination and stop the thread.
    pub async fn finish(self) -> Result<()> {
        self.close_reader();
        self.submit(Message::Finish).await
    }

    /// Abort the destination and stop the thread.
    pub async fn abort(self) -> Result<()> {
        self.close_reader();
        self.submit(Message::Abort).await
    }

    /// Close the store's second handle, before the store itself.
    fn close_reader(&self) {
        if let Some(direct) = &self.direct {
            direct.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::dest::cpu;
    use crate::dest::syncs::Syncs;

    /// What the fake destination and store were asked, in order.
    type Journal = Arc<Mutex<Vec<String>>>;

    /// A destination that notes its calls (and its syncs, when the committer runs them) and fails its
    /// commit, its first group's syncs, or the first page write of one partition, when told to; its
    /// syncs wait for a word on `sync_gate`, when it has one.
    #[derive(Default)]
    struct Noting {
        journal: Journal,
        fail_commit: bool,
        fail_first_sync: bool,
        fail_first_write_of: Option<&'static str>,
        sync_gate: Option<Arc<Mutex<std::sync::mpsc::Receiver<()>>>>,
        /// The first page write waits for a word on it.
        write_gate: Option<std::sync::mpsc::Receiver<()>>,
        most_jobs: Option<usize>,
    }

    impl Destination for Noting {
        fn prepare(&mut self, _: &TableSchema) -> Result<()> {
            Ok(())
        }
        fn open_part(&mut self, part: &PartitionKey, _: Option<&str>) -> Result<()> {
            self.journal.lock().unwrap().push(format!("open {}", part.scope));
            Ok(())
        }
        fn write_page(&mut self, part: &PartitionKey, _: &[u8], _: Option<&Checkpoint>) -> Result<Option<String>> {
            if let Some(gate) = self.write_gate.take() {
                gate.recv().unwrap();
            }
            if self.fail_first_write_of.take_if(|scope| *scope == part.scope).is_some() {
                return Err(anyhow!("the spool of {} is corrupt", part.scope));
            }
            self.journal.lock().unwrap().push(format!("write {}", part.scope));
            Ok(None)
        }
        fn commit(&mut self) -> Result<Syncs> {
            self.journal.lock().unwrap().push("commit".into());
            if self.fail_commit {
                return Err(anyhow!("the disk is full"));
            }
            let (journal, gate, fail) = (self.journal.clone(), self.sync_gate.clone(), self.fail_first_sync);
            self.fail_first_sync = false;
            let mut syncs = Syncs::default();
            syncs.call(move || {
                if let Some(gate) = gate {
                    gate.lock().unwrap().recv().unwrap();
                }
                journal.lock().unwrap().push("synced".into());
                if fail { Err(anyhow!("the disk went away")) } else { Ok(()) }
            });
            Ok(syncs)
        }
        fn most_jobs_per_commit(&self) -> usize {
            self.most_jobs.unwrap_or(MOST_JOBS_PER_COMMIT)
        }
        fn close_part(&mut self, _: &PartitionKey) -> Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    /// A checkpoint store that notes what it saves.
    struct NotingStore(Journal);

    impl CheckpointStore for NotingStore {
        fn load(&mut self, _: &PartitionKey) -> Result<Option<Checkpoint>> {
            Ok(None)
        }
        fn save(&mut self, key: &PartitionKey, _: &Checkpoint) -> Result<()> {
            self.0.lock().unwrap().push(format!("save {}", key.scope));
            Ok(())
        }
    }

    /// What [`Writer::start`] opens, made already.
    fn ready(
        destination: Box<dyn Destination>,
        store: Option<Box<dyn CheckpointStore>>,
    ) -> impl FnOnce() -> Result<Opened> + Send + 'static {
        move || Ok((destination, store))
    }

    fn key(scope: &str) -> PartitionKey {
        PartitionKey { flow: "f".into(), object: "issue".into(), scope: scope.into() }
    }

    fn in_progress() -> Checkpoint {
        Checkpoint { page_token: Some("/next".into()), ..Checkpoint::default() }
    }

    /// Several partitions' pages sent at once, with the writer busy meanwhile: written, committed
    /// once, then every checkpoint saved, and only then answered.
    async fn group(fail_commit: bool) -> (Vec<String>, Vec<Result<()>>) {
        let journal = Journal::default();
        let destination = Noting { journal: journal.clone(), fail_commit, ..Noting::default() };
        let writer =
            Writer::start(ready(Box::new(destination), Some(Box::new(NotingStore(journal.clone()))))).await.unwrap();
        // Keep the writer thread on the opens while the pages queue up behind them.
        for scope in ["a", "b", "c"] {
            writer.open(&key(scope), None).await.unwrap();
        }
        let mut pending = Vec::new();
        for scope in ["a", "b", "c"] {
            pending.push(writer.send_page(&key(scope), b"{}\n".to_vec(), in_progress()).await.unwrap());
        }
        let mut answers = Vec::new();
        for page in pending {
            answers.push(page.durable().await);
        }
        writer.abort().await.unwrap();
        let journal = journal.lock().unwrap().clone();
        (journal, answers)
    }

    /// Seven pages queued behind one being written: a destination that takes at most two jobs a
    /// commit (PostgreSQL's savepoints) gets groups of two, where another gets one group of seven.
    #[tokio::test]
    async fn a_group_holds_no_more_jobs_than_its_destination_takes() {
        for (most_jobs, expected) in [(Some(2), 2), (None, 7)] {
            let journal = Journal::default();
            let (release, gate) = std::sync::mpsc::channel();
            let destination =
                Noting { journal: journal.clone(), write_gate: Some(gate), most_jobs, ..Noting::default() };
            let writer = Writer::start(ready(Box::new(destination), Some(Box::new(NotingStore(journal.clone())))))
                .await
                .unwrap();
            let scopes = ["a", "b", "c", "d", "e", "f", "g"];
            for scope in scopes {
                writer.open(&key(scope), None).await.unwrap();
            }
            let mut pending = Vec::new();
            for scope in scopes {
                pending.push(writer.send_page(&key(scope), b"{}\n".to_vec(), in_progress()).await.unwrap());
            }
            release.send(()).unwrap();
            for page in pending {
                page.durable().await.unwrap();
            }
            writer.abort().await.unwrap();
            let journal = journal.lock().unwrap().clone();
            let (mut in_group, mut most) = (0, 0);
            for line in &journal {
                if line.starts_with("write") {
                    in_group += 1;
                    most = most.max(in_group);
                } else if line == "commit" {
                    in_group = 0;
                }
            }
            assert_eq!(most, expected, "{journal:?}");
        }
    }

    /// A destination that uses 40 ms of CPU per page written, and as much in each commit's syncs.
    struct Burning;

    impl Destination for Burning {
        fn prepare(&mut self, _: &TableSchema) -> Result<()> {
            Ok(())
        }
        fn open_part(&mut self, _: &PartitionKey, _: Option<&str>) -> Result<()> {
            Ok(())
        }
        fn write_page(&mut self, _: &PartitionKey, _: &[u8], _: Option<&Checkpoint>) -> Result<Option<String>> {
            cpu::burn(40);
            Ok(None)
        }
        fn commit(&mut self) -> Result<Syncs> {
            let mut syncs = Syncs::default();
            syncs.call(|| {
                cpu::burn(40);
                Ok(())
            });
            Ok(syncs)
        }
        fn close_part(&mut self, _: &PartitionKey) -> Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_cpu_of_the_writer_and_of_the_committer_is_counted_by_the_time_finish_answers() {
        let writer =
            Writer::start(ready(Box::new(Burning), Some(Box::new(NotingStore(Journal::default()))))).await.unwrap();
        let meter = writer.cpu();
        writer.open(&key("a"), None).await.unwrap();
        let page = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        page.durable().await.unwrap();
        writer.finish().await.unwrap();
        // 40 ms writing the page on the writer thread, 40 ms syncing it on the committer's.
        let seconds = meter.seconds();
        assert!((0.08..0.5).contains(&seconds), "{seconds} s");
    }

    #[tokio::test]
    async fn pages_are_committed_before_their_checkpoints_are_saved() {
        let (journal, answers) = group(false).await;
        assert!(answers.iter().all(Result::is_ok));
        let writes: Vec<&str> = journal.iter().map(String::as_str).filter(|j| !j.starts_with("open")).collect();
        // However the pages were grouped, each checkpoint follows a commit, and its syncs, that
        // follow its page.
        for scope in ["a", "b", "c"] {
            let written = writes.iter().position(|j| *j == format!("write {scope}")).unwrap();
            let saved = writes.iter().position(|j| *j == format!("save {scope}")).unwrap();
            let committed = writes[written..saved].iter().position(|j| *j == "commit");
            let synced = committed.and_then(|at| writes[written + at..saved].iter().position(|j| *j == "synced"));
            assert!(synced.is_some(), "{scope}: no commit and sync between its page and its checkpoint in {writes:?}");
        }
        // A group commits only when it wrote something: at most one commit per page, however they group.
        assert!(writes.iter().filter(|j| **j == "commit").count() <= 3, "{writes:?}");
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_page_of_its_group_and_saves_no_checkpoint() {
        let (journal, answers) = group(true).await;
        for answer in &answers {
            let error = answer.as_ref().unwrap_err();
            assert!(format!("{error:#}").contains("the disk is full"), "{error:#}");
        }
        assert!(journal.iter().all(|j| !j.starts_with("save")), "{journal:?}");
    }

    #[tokio::test]
    async fn after_a_failed_page_the_partitions_later_pages_are_refused_until_it_is_opened_again() {
        let journal = Journal::default();
        let destination = Noting { journal: journal.clone(), fail_first_write_of: Some("a"), ..Noting::default() };
        let writer =
            Writer::start(ready(Box::new(destination), Some(Box::new(NotingStore(journal.clone()))))).await.unwrap();
        for scope in ["a", "b"] {
            writer.open(&key(scope), None).await.unwrap();
        }
        // Two pages of `a` in the writer's hands at once (PAGES_IN_WRITER), and one of `b`.
        let first = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        let second = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        let other = writer.send_page(&key("b"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        let error = format!("{:#}", first.durable().await.unwrap_err());
        assert!(error.contains("the spool of a is corrupt"), "{error}");
        let error = format!("{:#}", second.durable().await.unwrap_err());
        assert!(error.contains("an earlier page of"), "{error}");
        other.durable().await.unwrap();
        // Nothing of `a` written or saved; `b` unaffected. A checkpoint of `a` is refused too.
        let error = format!("{:#}", writer.save(&key("a"), in_progress()).await.unwrap_err());
        assert!(error.contains("an earlier page of"), "{error}");
        assert_eq!(
            journal.lock().unwrap().iter().filter(|j| !j.starts_with("open")).cloned().collect::<Vec<_>>(),
            ["write b", "commit", "synced", "save b"]
        );
        // Opened again (a resumed read), `a` is written as any partition.
        writer.open(&key("a"), None).await.unwrap();
        writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap().durable().await.unwrap();
        writer.abort().await.unwrap();
        assert!(journal.lock().unwrap().ends_with(&[
            "write a".into(),
            "commit".into(),
            "synced".into(),
            "save a".into()
        ]));
    }

    /// Wait until the journal has `count` entries `entry` (the writer's thread is on its own time).
    async fn until(journal: &Journal, entry: &str, count: usize) {
        let noted = || journal.lock().unwrap().iter().filter(|j| *j == entry).count();
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while noted() < count {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        waited.await.unwrap_or_else(|_| panic!("no {count} × '{entry}' in {:?}", journal.lock().unwrap()));
    }

    #[tokio::test]
    async fn the_writer_writes_on_while_a_group_is_synced() {
        let journal = Journal::default();
        let (release, gate) = std::sync::mpsc::channel();
        let sync_gate = Some(Arc::new(Mutex::new(gate)));
        let destination = Noting { journal: journal.clone(), sync_gate, ..Noting::default() };
        let store = Some(Box::new(NotingStore(journal.clone())) as Box<dyn CheckpointStore>);
        // Every page's commit falls due at once.
        let writer = Writer::start_with(ready(Box::new(destination), store), Duration::ZERO).await.unwrap();
        writer.open(&key("a"), None).await.unwrap();
        let mut first = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        until(&journal, "commit", 1).await;
        // The first group's syncs are held up: the next page is written all the same (and committed;
        // then the writer waits for the committer to be free to hand over its syncs), and nothing is
        // durable, nor any checkpoint saved, before the syncs run.
        let mut second = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), second.written()).await.expect("written meanwhile").unwrap();
        until(&journal, "commit", 2).await;
        assert_eq!(journal.lock().unwrap()[1..], ["write a", "commit", "write a", "commit"]);
        assert!(first.try_durable().is_none() && second.try_durable().is_none());
        for _ in 0..2 {
            release.send(()).unwrap();
        }
        first.durable().await.unwrap();
        second.durable().await.unwrap();
        writer.abort().await.unwrap();
        let journal = journal.lock().unwrap().clone();
        assert_eq!(journal[5..], ["synced", "save a", "synced", "save a"], "{journal:?}");
    }

    /// A partition not opened in this run loads its checkpoint from the store's second handle at once
    /// (but for the run's first load), even while the committer is held up in a group's syncs; one
    /// opened in this run loads through the writer, after its own saves.
    #[tokio::test]
    async fn checkpoints_of_partitions_not_opened_in_the_run_load_without_waiting_for_the_writer() {
        let dir = std::env::temp_dir().join(format!("writer-loads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoints.db");
        let earlier = Checkpoint { watermark: Some("2024-01-01T00:00:00Z".into()), ..Checkpoint::default() };
        crate::state::sqlite::SqliteCheckpoints::open(&path).unwrap().save(&key("earlier"), &earlier).unwrap();

        let journal = Journal::default();
        let (release, gate) = std::sync::mpsc::channel();
        let sync_gate = Some(Arc::new(Mutex::new(gate)));
        let destination = Noting { journal: journal.clone(), sync_gate, ..Noting::default() };
        let store = crate::state::sqlite::SqliteCheckpoints::open(&path).unwrap();
        let writer =
            Writer::start_with(ready(Box::new(destination), Some(Box::new(store))), Duration::ZERO).await.unwrap();
        // The run's first load goes through the writer (a run of one partition opens no second handle).
        assert_eq!(writer.load(&key("a")).await.unwrap(), None);
        writer.open(&key("a"), None).await.unwrap();
        let page = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        until(&journal, "commit", 1).await;
        // The committer waits on the gate with the group of `a`: through it, a load would wait too.
        let loaded = tokio::time::timeout(Duration::from_secs(5), writer.load(&key("earlier"))).await;
        assert_eq!(loaded.expect("loaded while the committer is busy").unwrap(), Some(earlier));
        assert_eq!(writer.load(&key("never")).await.unwrap(), None);
        release.send(()).unwrap();
        page.durable().await.unwrap();
        assert_eq!(writer.load(&key("a")).await.unwrap(), Some(in_progress()), "its own save, through the writer");
        writer.abort().await.unwrap();
        // The second handle was closed first: the store's own, closing last, removed the log.
        assert!(!dir.join("checkpoints.db-wal").exists(), "the store's log was left behind");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_group_and_the_pages_written_behind_it() {
        let journal = Journal::default();
        let (release, gate) = std::sync::mpsc::channel();
        let sync_gate = Some(Arc::new(Mutex::new(gate)));
        let destination = Noting { journal: journal.clone(), fail_first_sync: true, sync_gate, ..Noting::default() };
        let store = Some(Box::new(NotingStore(journal.clone())) as Box<dyn CheckpointStore>);
        let writer = Writer::start_with(ready(Box::new(destination), store), Duration::ZERO).await.unwrap();
        writer.open(&key("a"), None).await.unwrap();
        writer.open(&key("b"), None).await.unwrap();
        let first = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        until(&journal, "commit", 1).await;
        // Written while the first group's (failing) sync is held up: its own group's sync will
        // succeed, but it follows a page that never became durable.
        let mut second = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), second.written()).await.expect("written meanwhile").unwrap();
        let other = writer.send_page(&key("b"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        let error = format!("{:#}", first.durable().await.unwrap_err());
        assert!(error.contains("the disk went away"), "{error}");
        let error = format!("{:#}", second.durable().await.unwrap_err());
        assert!(error.contains("an earlier page of") && error.contains("could not be made durable"), "{error}");
        other.durable().await.unwrap();
        // The partition's next pages and checkpoints are refused at once, until it is opened again.
        let error = format!("{:#}", writer.save(&key("a"), in_progress()).await.unwrap_err());
        assert!(error.contains("an earlier page of"), "{error}");
        assert!(!journal.lock().unwrap().iter().any(|j| j == "save a"), "{:?}", journal.lock().unwrap());
        writer.open(&key("a"), None).await.unwrap();
        let page = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        release.send(()).unwrap();
        page.durable().await.unwrap();
        writer.abort().await.unwrap();
        assert_eq!(journal.lock().unwrap().iter().filter(|j| *j == "save a").count(), 1);
    }

    /// A writer over a noting destination and store, committing pages nothing waits for `interval`
    /// after the first, with partition `a` open.
    async fn noting_writer(interval: Duration) -> (Journal, Writer) {
        let journal = Journal::default();
        let destination = Noting { journal: journal.clone(), ..Noting::default() };
        let store = Some(Box::new(NotingStore(journal.clone())) as Box<dyn CheckpointStore>);
        let writer = Writer::start_with(ready(Box::new(destination), store), interval).await.unwrap();
        writer.open(&key("a"), None).await.unwrap();
        (journal, writer)
    }

    #[tokio::test]
    async fn pages_are_written_at_once_and_committed_together_within_the_interval() {
        // Long enough that 20 pages sent back to back fall within one interval even on a busy machine.
        let (journal, writer) = noting_writer(Duration::from_secs(2)).await;
        // Each page is answered as written before the next is sent, as a partition does.
        let mut pages = Vec::new();
        for _ in 0..20 {
            let mut page = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
            page.written().await.unwrap();
            pages.push(page);
        }
        // Nothing else comes: the group is committed when its interval is up, then answered.
        for page in pages {
            tokio::time::timeout(Duration::from_secs(10), page.durable()).await.expect("committed in time").unwrap();
        }
        let commits = journal.lock().unwrap().iter().filter(|j| *j == "commit").count();
        assert!((1..=20usize.div_ceil(COMMIT_PAGES)).contains(&commits), "{commits} commits for 20 pages");
        writer.abort().await.unwrap();
    }

    #[tokio::test]
    async fn what_a_partition_waits_for_is_committed_at_once() {
        // Pages nothing waits for would wait a day for their commit.
        let (journal, writer) = noting_writer(Duration::from_secs(86_400)).await;
        let early = writer.send_page(&key("a"), b"{}\n".to_vec(), in_progress()).await.unwrap();
        // A read's last page: its partition waits for it to be durable before it ends.
        let last = Checkpoint { page_token: None, ..Checkpoint::default() };
        let page = writer.send_page(&key("a"), b"{}\n".to_vec(), last).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), page.durable()).await.expect("committed at once").unwrap();
        // The earlier page went with it.
        assert!(early.durable().await.is_ok());
        // A checkpoint saved, or a part closed, is waited for too.
        let (a, b) = (key("a"), key("b"));
        let saved = writer.save(&b, in_progress());
        tokio::time::timeout(Duration::from_secs(10), saved).await.expect("saved at once").unwrap();
        let closed = writer.close(&a);
        tokio::time::timeout(Duration::from_secs(10), closed).await.expect("closed at once").unwrap();
        writer.abort().await.unwrap();
        let commits = journal.lock().unwrap().iter().filter(|j| *j == "commit").count();
        assert_eq!(commits, 3, "{:?}", journal.lock().unwrap());
    }
}
