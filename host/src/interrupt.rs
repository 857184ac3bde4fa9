//! Ctrl-C and SIGTERM during `host run`: the first winds the run down, a second ends it at once.
//!
//! ```text
//!  SIGINT / SIGTERM ──► `listen`'s task ──► first: REQUESTED set, one line on stderr
//!                                           later: exit 130 at once
//!  REQUESTED ──► `run`: planning, or a destination still opening, is given up on (nothing was
//!                read or written); no partition starts; each reading one stops before its next
//!                page (a wait for a retry or for the tenant's pace is cut short), once the pages
//!                it handed the writer are durable and checkpointed (as when a partition fails);
//!                the summary is printed and the process exits 130
//! ```
//!
//! Either way the next run of the same flow resumes each partition from its last checkpoint: pages
//! and checkpoints are committed together, which is what makes even `kill -9` safe. The wind-down
//! only adds a summary and an orderly end (file parts of completed partitions published, the rest
//! kept for the resumed run). Other commands keep the default: a signal ends them at once.

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

/// Set by the first signal; never cleared.
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// Wakes the waits `unless_signalled` cuts short.
static SIGNALLED: Notify = Notify::const_new();

/// What a partition stopped by a signal reports.
pub const STOPPED: &str = "interrupted (the next run resumes from its last checkpoint)";

/// The exit status of an interrupted run, as a shell reports a process ended by SIGINT (128 + 2).
pub const EXIT_STATUS: u8 = 130;

/// Whether a signal asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `work`'s output, or `None` if a signal asks the run to stop first (`work` is then dropped: only
/// waits that may be abandoned belong here). An output ready together with the signal wins.
pub async fn unless_signalled<T>(work: impl Future<Output = T>) -> Option<T> {
    // Registered before the flag is read: a signal in between still wakes it.
    let notified = SIGNALLED.notified();
    let signalled = async {
        if !requested() {
            notified.await;
        }
    };
    tokio::select! {
        biased;
        output = work => Some(output),
        () = signalled => None,
    }
}

/// The exit code of a run that a signal stopped, after saying so on stderr.
pub fn exit_code() -> ExitCode {
    eprintln!("interrupted: run the same command again to resume where each partition stopped");
    ExitCode::from(EXIT_STATUS)
}

/// Handle SIGINT and SIGTERM from now on, on the current tokio runtime.
pub fn listen() -> Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let again = REQUESTED.swap(true, Ordering::Relaxed);
            SIGNALLED.notify_waiters();
            if again {
                eprintln!("interrupted again: stopping now; the next run resumes from the last checkpoints");
                std::process::exit(EXIT_STATUS.into());
            }
            eprintln!("interrupted: writing the pages already read, then stopping (again to stop at once)");
        }
    });
    Ok(())
}
