//! The committer thread: it makes the writer's commit groups durable while the writer writes on.
//!
//! ```text
//!  writer thread                              committer thread
//!  group N: destination.commit() ──► Group ─► run its syncs (spools, journal, folders: see `syncs`)
//!  pages of group N+1 written                 ─► save its checkpoints in the separate store
//!  ...                                        ─► answer its pages, checkpoint saves and part closes
//! ```
//!
//! A group is handed over only when the committer is free (a rendezvous), so at most one group is
//! being made durable while the next is written: a partition has at most two groups' pages
//! written but not yet durable, and a crash costs it at most as many pages read again.
//!
//! The committer owns the run's separate checkpoint store (when the destination keeps none), so a
//! checkpoint is only ever saved after the syncs of its page, and a load from that store comes
//! after every group handed over before it. A group whose syncs or checkpoint save fail is answered
//! with the error, and every later page of its partitions (written already, perhaps) too, without
//! saving their checkpoints, until the partition is opened again: no checkpoint ever passes a page
//! that was not made durable.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};

use super::{Reply, lock};
use crate::dest::CpuMeter;
use crate::dest::syncs::Syncs;
use crate::state::{Checkpoint, CheckpointStore, PartitionKey};

/// The partitions whose pages are refused: a write or a commit failed for them since they were last
/// opened. Shared by the writer (which refuses their jobs) and the committer.
pub(super) type Failed = Arc<Mutex<HashSet<PartitionKey>>>;

/// One commit group, as the writer hands it over.
pub(super) struct Group {
    /// What is left to make the group's writes durable, or why the destination's commit failed.
    pub syncs: Result<Syncs>,
    /// Checkpoints for the separate store, saved once the syncs are done.
    pub checkpoints: Vec<(PartitionKey, Checkpoint)>,
    /// The answers to the group's page writes, checkpoint saves and part closes.
    pub answers: Vec<(PartitionKey, Reply<()>)>,
}

enum Order {
    Group(Group),
    Load(PartitionKey, Reply<Option<Checkpoint>>),
    /// The partition is opened again: its later groups are committed as any other's.
    Forget(PartitionKey),
}

/// The writer's handle on its committer thread.
pub(super) struct Committer {
    orders: Option<SyncSender<Order>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Start the committer, with `store` as the separate checkpoint store if there is one; its
    /// thread adds its CPU time to `cpu` as it ends.
    /// An error if the system would not start its thread (see [`crate::threads`]).
    pub fn start(store: Option<Box<dyn CheckpointStore>>, failed: Failed, cpu: CpuMeter) -> Result<Committer> {
        let (orders, queue) = sync_channel(0);
        let thread = crate::threads::spawn("destination-committer", move || {
            State { store, failed, commit_failed: HashSet::new() }.serve(queue);
            cpu.add_this_thread();
        })?;
        Ok(Committer { orders: Some(orders), thread: Some(thread) })
    }

    /// Make `group` durable and answer it (waits until the committer is done with the group before).
    pub fn commit(&self, group: Group) {
        self.send(Order::Group(group));
    }

    /// Load the checkpoint of `part` from the separate store, after the groups handed over before.
    pub fn load(&self, part: PartitionKey, done: Reply<Option<Checkpoint>>) {
        self.send(Order::Load(part, done));
    }

    /// `part` is opened again: its later groups are no longer refused for a commit that failed.
    pub fn forget(&self, part: PartitionKey) {
        self.send(Order::Forget(part));
    }

    fn send(&self, order: Order) {
        // Should the committer be gone (it panicked), the replies in `order` are dropped with it:
        // their partitions are told that the destination writer has stopped.
        if let Some(orders) = &self.orders {
            let _ = orders.send(order);
        }
    }
}

/// Dropped, the committer finishes what it was handed, and is waited for.
impl Drop for Committer {
    fn drop(&mut self) {
        self.orders.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the committer thread holds.
struct State {
    store: Option<Box<dyn CheckpointStore>>,
    failed: Failed,
    /// The partitions a group's commit failed for, since they were last opened: the committer's own
    /// record, for the groups already written behind the failed one.
    commit_failed: HashSet<PartitionKey>,
}

impl State {
    fn serve(mut self, queue: Receiver<Order>) {
        while let Ok(order) = queue.recv() {
            match order {
                Order::Group(group) => self.commit(group),
                Order::Load(part, done) => {
                    let loaded = match self.store.as_deref_mut() {
                        Some(store) => store.load(&part),
                        None => Err(anyhow!("this run has no checkpoint store")),
                    };
                    drop(done.send(loaded));
                }
                Order::Forget(part) => drop(self.commit_failed.remove(&part)),
            }
        }
    }

    fn commit(&mut self, Group { syncs, mut checkpoints, answers }: Group) {
        let committed = syncs.and_then(Syncs::run).and_then(|()| {
            checkpoints.retain(|(part, _)| !self.commit_failed.contains(part));
            // The writer only gathers checkpoints for a store apart, which is this one.
            match self.store.as_deref_mut() {
                Some(store) if !checkpoints.is_empty() => store.save_all(&checkpoints),
                _ => Ok(()),
            }
        });
        if committed.is_err() {
            let mut failed = lock(&self.failed);
            for (part, _) in &answers {
                failed.insert(part.clone());
                self.commit_failed.insert(part.clone());
            }
        }
        for (part, reply) in answers {
            let answer = match &committed {
                Err(error) => Err(anyhow!("{error:#}")),
                Ok(()) if self.commit_failed.contains(&part) => {
                    Err(anyhow!("not durable: an earlier page of {part} could not be made durable"))
                }
                Ok(()) => Ok(()),
            };
            let _ = reply.send(answer);
        }
    }
}
