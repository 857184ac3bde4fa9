//! The host's own threads (each destination's writer and committer, the lanes, the progress log),
//! started with an error that says what to do when the system refuses one.
//!
//! Every flow's destination has two threads of its own, so thousands of tenants' flows at once take
//! thousands of threads. Past the system's limit (`ulimit -u`, `kernel.threads-max`,
//! `kernel.pid_max`) a thread cannot start: the flow that asked for it fails with this error, and
//! the others go on.

use std::io;
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};

/// Start `body` on a thread called `name`.
pub fn spawn<F, T>(name: &str, body: F) -> Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new().name(name.to_owned()).spawn(body).map_err(|error| refused(name, &error))
}

/// The error for a thread called `name` the system would not start.
fn refused(name: &str, error: &io::Error) -> anyhow::Error {
    // EAGAIN: a limit on threads (or processes) was reached.
    if error.kind() == io::ErrorKind::WouldBlock {
        anyhow!(
            "cannot start a {name} thread: {error}: the system's limit on threads is reached (`ulimit -u`, \
             /proc/sys/kernel/threads-max, /proc/sys/kernel/pid_max); raise it, or run fewer flows at once \
             (each flow's destination takes two threads)"
        )
    } else {
        anyhow!("cannot start a {name} thread: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_the_system_refuses_is_named_with_what_to_do() {
        let limit = io::Error::from_raw_os_error(libc::EAGAIN);
        let error = refused("destination-writer", &limit).to_string();
        assert!(error.starts_with("cannot start a destination-writer thread: "), "{error}");
        assert!(error.contains("limit on threads is reached (`ulimit -u`"), "{error}");
        assert!(error.contains("run fewer flows at once"), "{error}");
        let other = refused("lane-0", &io::Error::from_raw_os_error(libc::ENOMEM)).to_string();
        assert!(other.starts_with("cannot start a lane-0 thread: ") && !other.contains("limit"), "{other}");
        let started = spawn("test-thread", || std::thread::current().name().map(str::to_owned)).unwrap();
        assert_eq!(started.join().unwrap().as_deref(), Some("test-thread"));
    }
}
