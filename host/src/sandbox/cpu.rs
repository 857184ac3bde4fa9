//! CPU time spent in calls into a plugin, per sandbox (and so per partition and per tenant).
//!
//! A call into the plugin is a future the runtime polls, possibly on several worker threads in turn;
//! guest code and the host functions it calls run inside those polls. [`CpuTimed`] reads the polling
//! thread's CPU clock around each poll and adds the difference to a counter, so the figure is the
//! plugin's own CPU time, not the wall time it spent waiting for GitLab.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// A future whose polls are charged to `spent` (nanoseconds of thread CPU time).
pub struct CpuTimed<'a, F> {
    inner: Pin<&'a mut F>,
    spent: &'a AtomicU64,
}

impl<'a, F: Future> CpuTimed<'a, F> {
    pub fn new(inner: Pin<&'a mut F>, spent: &'a AtomicU64) -> Self {
        CpuTimed { inner, spent }
    }
}

impl<F: Future> Future for CpuTimed<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = thread_cpu_nanos();
        let result = self.inner.as_mut().poll(cx);
        self.spent.fetch_add(thread_cpu_nanos().saturating_sub(before), Ordering::Relaxed);
        result
    }
}

/// The calling thread's CPU time, in nanoseconds (0 where the clock is unavailable).
fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return 0;
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn busy_polls_are_charged_and_waits_are_not() {
        let spent = AtomicU64::new(0);
        let work = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            // 30 ms of this thread's own CPU time: a wall-clock loop is charged less whenever the
            // machine is busy with other tests and the thread is preempted inside it.
            let started = thread_cpu_nanos();
            while thread_cpu_nanos() - started < 30_000_000 {
                std::hint::black_box(0u64);
            }
        };
        let mut work = std::pin::pin!(work);
        CpuTimed::new(work.as_mut(), &spent).await;
        let ms = spent.load(Ordering::Relaxed) / 1_000_000;
        assert!((30..50).contains(&ms), "{ms} ms charged for 30 ms of work and 50 ms of sleep");
    }
}
