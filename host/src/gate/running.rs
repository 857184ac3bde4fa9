//! The requests of one sandbox still running on the network runtime, so that its partition's
//! figures are read only once no request of it can still leave.
//!
//! A request's task runs apart from the plugin (see `sandbox::requests`); when a partition ends,
//! its sandbox is dropped and its pending requests are cancelled, but a cancelled task stops only at
//! its next await, and one running at that moment may still count itself and leave. The partition
//! [`RunningRequests::settle`]s first: it cancels what is left and waits until none runs, so that
//! "every request that left was counted" holds for its summary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Default)]
pub struct RunningRequests {
    /// Each running request's task, by the number it was given.
    tasks: Mutex<HashMap<u64, Option<AbortHandle>>>,
    next: AtomicU64,
    /// Told when the last running request ends.
    idle: Notify,
}

/// A request's place among the running ones, held by its task: dropped when the task ends, however
/// it ends.
struct Running {
    requests: Arc<RunningRequests>,
    id: u64,
}

impl RunningRequests {
    /// Spawn `request` on `runtime`, noted as running until its task ends, however it ends.
    pub fn spawn<T: Send + 'static>(
        self: &Arc<Self>,
        runtime: &Handle,
        request: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.tasks.lock().expect("the running requests' lock").insert(id, None);
        let running = Running { requests: self.clone(), id };
        let task = runtime.spawn(async move {
            let _running = running;
            request.await
        });
        // A task that already ended is not kept.
        if let Some(slot) = self.tasks.lock().expect("the running requests' lock").get_mut(&id) {
            *slot = Some(task.abort_handle());
        }
        task
    }

    /// Cancel every request still running and wait until none does.
    pub async fn settle(&self) {
        loop {
            let idle = self.idle.notified();
            {
                let tasks = self.tasks.lock().expect("the running requests' lock");
                if tasks.is_empty() {
                    return;
                }
                tasks.values().flatten().for_each(AbortHandle::abort);
            }
            idle.await;
        }
    }

    fn end(&self, id: u64) {
        let mut tasks = self.tasks.lock().expect("the running requests' lock");
        tasks.remove(&id);
        if tasks.is_empty() {
            self.idle.notify_waiters();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.requests.end(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn settling_cancels_what_still_runs_and_waits_for_it_to_end() {
        let requests = Arc::new(RunningRequests::default());
        // Nothing running: settled at once.
        requests.settle().await;
        let ended = Arc::new(AtomicU64::new(0));
        let here = Handle::current();
        for _ in 0..3 {
            // Counts itself as ended however it ends: here, only by being cancelled.
            let ended = scopeguard(ended.clone());
            requests.spawn(&here, async move {
                let _ended = ended;
                std::future::pending::<()>().await;
            });
        }
        // One that ends by itself is no longer running.
        requests.spawn(&here, async {}).await.unwrap();
        assert_eq!(requests.tasks.lock().unwrap().len(), 3);
        tokio::time::timeout(Duration::from_secs(5), requests.settle()).await.expect("settled");
        assert_eq!(ended.load(Ordering::Relaxed), 3);
        assert!(requests.tasks.lock().unwrap().is_empty());
    }

    /// Adds one to `counter` when dropped.
    fn scopeguard(counter: Arc<AtomicU64>) -> impl Drop {
        struct Guard(Arc<AtomicU64>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        Guard(counter)
    }
}
