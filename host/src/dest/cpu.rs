//! The CPU time a run's destination used: its writer thread's and its committer thread's.
//!
//! A run's summary gives the plugin's CPU (measured around each call into it); this is the other
//! side of a page, where a run into SQLite spends most of its time: checking the plugin's records,
//! inserting them, syncing, copying SQLite's log. Each of the two threads adds its own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) to the meter as it ends, before the writer answers `finish` or
//! `abort`: once the run has that answer, the meter holds both.
//!
//! ```text
//!  committer thread ends ──► meter += its CPU ──┐ (joined by the writer as it closes)
//!  writer thread closes  ──► meter += its CPU ──┴─► answers finish/abort ──► run reads the meter
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The destination's CPU time, in nanoseconds, added to by its threads as they end.
#[derive(Clone, Debug, Default)]
pub struct CpuMeter(Arc<AtomicU64>);

impl CpuMeter {
    /// Add the calling thread's CPU time so far.
    pub fn add_this_thread(&self) {
        let used = this_thread_cpu().map_or(0, |cpu| u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX));
        self.0.fetch_add(used, Ordering::Relaxed);
    }

    pub fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// The calling thread's CPU time (user and system), where the system says.
fn this_thread_cpu() -> Option<Duration> {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The whole process's CPU time (user and system, every thread), where the system says.
pub fn process_cpu() -> Option<Duration> {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The time of the CPU clock `clock`.
fn cpu_clock(clock: libc::clockid_t) -> Option<Duration> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes the `timespec` it is given, which outlives the call.
    let status = unsafe { libc::clock_gettime(clock, &mut now) };
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u32::try_from(now.tv_nsec).ok()?;
    (status == 0).then(|| Duration::new(seconds, nanos))
}

/// Keep the calling thread busy until it has used `millis` more of CPU (not of wall time: the
/// machine may be busy with other threads).
#[cfg(test)]
pub(super) fn burn(millis: u64) {
    let until = this_thread_cpu().unwrap() + Duration::from_millis(millis);
    while this_thread_cpu().unwrap() < until {
        std::hint::black_box(0u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_adds_its_own_time_and_only_its_own() {
        let meter = CpuMeter::default();
        let busy = |meter: CpuMeter, millis: u64| {
            std::thread::spawn(move || {
                burn(millis);
                meter.add_this_thread();
            })
        };
        let idle = {
            let meter = meter.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                meter.add_this_thread();
            })
        };
        for thread in [busy(meter.clone(), 60), busy(meter.clone(), 60), idle] {
            thread.join().unwrap();
        }
        // Two threads that used 60 ms each, one asleep for 200 ms (which used next to nothing).
        let seconds = meter.seconds();
        assert!((0.12..0.2).contains(&seconds), "{seconds} s");
    }
}
