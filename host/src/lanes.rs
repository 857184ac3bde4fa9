//! Lanes: where partitions are read, one single-threaded runtime per core.
//!
//! A partition's read loop calls its sandbox (the plugin normalizing a page, about a millisecond of
//! CPU) and, a few times a page, waits: for the answer read ahead on the network runtime, for room
//! in the destination writer's hands. On the main runtime, whose workers steal work from each
//! other, every such wait could end with the loop woken on the other worker, and scheduling it
//! there woke that worker out of its sleep: per page of a single partition, four thread switches
//! where fewer than two do, each a wake-up across cores (an interrupt between virtual CPUs, on a
//! VM). Here a partition stays on one lane from its first page to its last, and its waits wake that
//! lane's thread alone:
//!
//! ```text
//!  run (main runtime): per partition, its permit ──► Lanes::run ──► the lane reading the fewest
//!        ▲                                                          partitions: read_partition,
//!        └──────────────────── its report ◄───────────────────────  every page on this one thread
//! ```
//!
//! Partitions are balanced when they start (the lane with the fewest running takes the next), not
//! stolen afterwards: a lane runs its partitions cooperatively, each plugin call yielding at least
//! every epoch tick. Planning, the writer's replies and the network's work stay where they were.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::task::{AbortHandle, JoinError};

use crate::io_thread::IoThread;

/// One lane: a current-thread runtime on a thread of its own, and how many partitions it reads.
struct Lane {
    thread: IoThread,
    partitions: AtomicUsize,
}

/// The process's lanes, one per core (made on first use, kept for the life of the process).
pub struct Lanes {
    lanes: Vec<Lane>,
}

/// The process's lanes, started on first use; an error if the system would not start their threads
/// (a later call tries again).
pub fn lanes() -> anyhow::Result<&'static Lanes> {
    static LANES: OnceLock<Lanes> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(lanes) = LANES.get() {
        return Ok(lanes);
    }
    let _one_at_a_time = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lanes) = LANES.get() {
        return Ok(lanes);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lanes = Lanes::start(cores)?;
    Ok(LANES.get_or_init(|| lanes))
}

impl Lanes {
    /// `count` lanes (at least one), their threads named `lane-N`.
    fn start(count: usize) -> anyhow::Result<Lanes> {
        let lanes = (0..count.max(1))
            .map(|n| Ok(Lane { thread: IoThread::start(&format!("lane-{n}"))?, partitions: AtomicUsize::new(0) }))
            .collect::<anyhow::Result<_>>()?;
        Ok(Lanes { lanes })
    }

    /// Run `partition` (a partition's whole read) on the lane reading the fewest partitions, and wait
    /// for its output; `Err` if it panicked. Dropping the returned future cancels it on its lane.
    pub async fn run<F>(&self, partition: F) -> Result<F::Output, JoinError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let lane = self.lanes.iter().min_by_key(|lane| lane.partitions.load(Ordering::Relaxed)).expect("one lane");
        lane.partitions.fetch_add(1, Ordering::Relaxed);
        let _leaving = Leaving(&lane.partitions);
        let task = lane.thread.handle().spawn(partition);
        let _cancel = AbortOnDrop(task.abort_handle());
        task.await
    }
}

/// Counts a partition off its lane when its read ends or is dropped.
struct Leaving<'a>(&'a AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Cancels a task when dropped (a no-op once it has ended): a lane's task when the future waiting
/// for it is dropped, a run's listing when the run ends.
pub struct AbortOnDrop(pub AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn partitions_run_on_the_least_busy_lane_and_leave_it_when_they_end() {
        let lanes = Lanes::start(2).unwrap();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let first = lanes.run(async move {
            let _ = wait.await;
            std::thread::current().name().map(str::to_owned)
        });
        let mut first = std::pin::pin!(first);
        // Started (it counts on its lane) but not ended.
        assert!(tokio::time::timeout(Duration::from_millis(20), first.as_mut()).await.is_err());
        let second = lanes.run(async { std::thread::current().name().map(str::to_owned) }).await.unwrap();
        release.send(()).unwrap();
        let first = first.await.unwrap();
        assert_ne!(first, second, "the second partition went to the idle lane");
        assert_eq!(lanes.lanes.iter().map(|l| l.partitions.load(Ordering::Relaxed)).sum::<usize>(), 0);
    }

    #[tokio::test]
    async fn a_dropped_wait_cancels_its_partition_and_a_panic_is_reported() {
        let lanes = Lanes::start(1).unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        struct Flag(Arc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let flag = Flag(dropped.clone());
        let forever = lanes.run(async move {
            let _flag = flag;
            std::future::pending::<()>().await
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), forever).await.is_err());
        tokio::time::timeout(Duration::from_secs(5), async {
            while dropped.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the lane's task is dropped once nothing waits for it");
        assert_eq!(lanes.lanes[0].partitions.load(Ordering::Relaxed), 0);

        let panicked = lanes.run(async { panic!("a bug in a partition") }).await.unwrap_err();
        assert!(panicked.is_panic());
    }
}
