//! An async runtime on a thread of its own, for the synchronous code that talks to async clients.
//!
//! The destination writer is a plain thread and the [`crate::state::CheckpointStore`] trait is
//! synchronous, while the PostgreSQL and S3 clients (tokio-postgres, object_store) are async and need
//! a tokio reactor. Each such client gets an [`IoThread`]: a current-thread runtime driven by a
//! dedicated thread. [`IoThread::run`] hands it a future and waits for the result over a channel, so
//! it can be called from any thread, inside another runtime or not, without tokio's "runtime within a
//! runtime" panics; dropping the `IoThread` stops its runtime and joins its thread. The lanes that
//! read partitions (`crate::lanes`) are `IoThread`s too, whose [`IoThread::handle`] they spawn on.

use std::future::Future;
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A tokio runtime driven by a thread of its own.
pub struct IoThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Start the runtime on a thread called `name`. The runtime is made, driven and dropped on that
    /// thread: a runtime may not be dropped in async code, where an `IoThread` may be started (and
    /// would be, had its thread failed to start).
    pub fn start(name: &str) -> Result<IoThread> {
        let (started, handle) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = crate::threads::spawn(name, move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let _ = started.send(Ok(runtime.handle().clone()));
                    // Runs the spawned tasks until told to stop (or until the IoThread is dropped).
                    let _ = runtime.block_on(stopped);
                }
                Err(error) => drop(started.send(Err(error))),
            }
        })?;
        let handle = handle
            .recv()
            .map_err(|_| anyhow!("the {name} thread ended before its runtime started"))?
            .context("cannot start an I/O runtime")?;
        Ok(IoThread { handle, stop: Some(stop), thread: Some(thread) })
    }

    /// The runtime, to spawn tasks on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Run `future` on the runtime and wait for its output.
    pub fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = done.send(future.await);
        });
        wait.recv().map_err(|_| anyhow!("the I/O runtime stopped before the operation completed"))
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_futures_from_inside_and_outside_a_runtime() {
        let io = IoThread::start("test-io").unwrap();
        assert_eq!(io.run(async { 40 + 2 }).unwrap(), 42);
        let outer = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let answer = outer.block_on(async {
            let sleep = async {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                7
            };
            io.run(sleep).unwrap()
        });
        assert_eq!(answer, 7);
        drop(io);
    }
}
