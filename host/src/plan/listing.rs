//! The later pages of the scope listings, read while the run reads the partitions already planned.
//!
//! Planning reads the first page of every listing: that resolves the scope and proves the token may
//! list it before anything is written. A large group's projects fill many more pages, and each
//! page's token is in the one before, so they come one request after the other: 30 for a group of
//! 3,000 projects. Their partitions need not wait for the last of them:
//!
//! ```text
//!  plan ──► partitions of the first pages ──────────────────────► run: read, at most `concurrency`
//!       └─► Listing (the planning sandbox, on a task of its own)          at once, in the order
//!             page 2 ──► its partitions ──► Listed::Partition ──►   they come
//!             page 3 ──► ...
//!             a page that cannot be read ──► Listed::Failed ──► the run reports it for each object
//!                                                                listed under the scope (a 401
//!                                                                ends the run)
//! ```
//!
//! Listings are read one after the other, in the order the flow names their scopes, each page
//! retried as the tenant's retry policy allows. A partition already planned (a project named in the
//! flow and inside a group it also names) is not planned twice.

use std::collections::HashSet;

use tokio::sync::mpsc::UnboundedSender;

use super::{Partition, ScopeFailure, Work, describe_scope, list_scope_page, scope_error, scope_kind_name};
use crate::flow::Flow;
use crate::retry::Retrier;
use crate::sandbox::Sandbox;
use crate::sandbox::wit::{self, ConnectorError, Scope, ScopeKind};
use crate::state::PartitionKey;

/// The listings with pages still to read, and what reads them.
pub struct Listing {
    /// The planning sandbox, which reads the pages.
    pub(super) control: Sandbox,
    pub(super) retrier: Retrier,
    pub(super) connection: wit::Connection,
    pub(super) flow: Flow,
    /// The listings, in the order the flow names their scopes.
    pub(super) rest: Vec<Rest>,
    /// The keys of the partitions planned so far.
    pub(super) seen: HashSet<PartitionKey>,
}

/// What a [`Listing`] hands the run.
pub enum Listed {
    /// A partition to read, from a page just listed (boxed: a failure is the rare, small case).
    Partition(Box<Partition>),
    /// A page that could not be listed: the scopes after it are not read.
    Failed(Unlisted),
}

/// A listing that ended before its last page.
#[derive(Debug)]
pub struct Unlisted {
    /// The objects read under the scope, each of which misses the projects not listed.
    pub objects: Vec<String>,
    /// For people: `group acme`.
    pub scope: String,
    /// What went wrong, named by the flow's key of the scope, and how many were listed before.
    pub message: String,
    /// The credential was refused (401): every request of the run would be.
    pub fatal: bool,
}

/// One listing with pages still to read.
pub(super) struct Rest {
    /// Its place among the listings planning read the first page of.
    pub(super) listing: usize,
    within: Scope,
    kind: ScopeKind,
    token: String,
    /// Entries listed so far (the next one's place in the listing).
    listed: usize,
    /// The work read under each listed scope, with its place in the flow.
    work: Vec<(usize, Work)>,
}

impl Rest {
    /// The `listing`-th listing, of the `kind`s within `within`, whose next page is at `token`,
    /// `listed` entries in.
    pub(super) fn new(listing: usize, within: Scope, kind: ScopeKind, token: String, listed: usize) -> Rest {
        Rest { listing, within, kind, token, listed, work: Vec::new() }
    }

    /// Also read `work` (at `place` in the flow) under each scope listed.
    pub(super) fn add(&mut self, place: usize, work: Work) {
        self.work.push((place, work));
    }
}

impl Listing {
    /// Read every page left, handing `run` each new partition as its page comes; stop at the first
    /// page that cannot be read, or when `run` stops listening.
    pub async fn run(mut self, run: UnboundedSender<Listed>) {
        for mut rest in std::mem::take(&mut self.rest) {
            let mut token = Some(rest.token.clone());
            while let Some(at) = token.take() {
                let page = list_scope_page(
                    &mut self.control,
                    &self.retrier,
                    &self.connection,
                    &rest.within,
                    rest.kind,
                    Some(&at),
                )
                .await;
                let page = match page {
                    Ok(page) => page,
                    Err(failure) => {
                        let _ = run.send(Listed::Failed(self.unlisted(&rest, failure)));
                        return;
                    }
                };
                for (place, work) in &rest.work {
                    for (n, entry) in page.scopes.iter().enumerate() {
                        if let Some(partition) =
                            work.partition(&self.flow.id, entry, (*place, rest.listed + n), &mut self.seen)
                            && run.send(Listed::Partition(Box::new(partition))).is_err()
                        {
                            return;
                        }
                    }
                }
                rest.listed += page.scopes.len();
                token = page.next_page_token;
            }
        }
    }

    /// Why `rest` ended early, for its objects.
    fn unlisted(&self, rest: &Rest, failure: ScopeFailure) -> Unlisted {
        let fatal = matches!(failure, ScopeFailure::Connector(ConnectorError::Unauthorized(_), _));
        let key = rest.work.first().map_or("objects", |(_, work)| work.scope.key.as_str());
        let error = scope_error(&self.flow, self.retrier.policy(), key, failure);
        let mut objects: Vec<String> = Vec::new();
        for (_, work) in &rest.work {
            if !objects.contains(&work.request.object) {
                objects.push(work.request.object.clone());
            }
        }
        Unlisted {
            objects,
            scope: describe_scope(&rest.within),
            message: format!("{error:#} (the listing stopped after {} {}s)", rest.listed, scope_kind_name(rest.kind)),
            fatal,
        }
    }
}
