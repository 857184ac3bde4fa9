//! Response bodies read off the connection as they arrive, not when the plugin asks for them.
//!
//! wasmtime-wasi-http pulls a response body when the plugin reads it, in the plugin's own call: the
//! gate's work on the bytes (counting them, timing the gaps, gzip decoding) would then run on the
//! sandbox's thread, after the plugin's own work on the page before. Instead, as soon as a response's
//! headers are in, a task of its own drains the body ([`super::upstream::GateBody`]) into a queue
//! that the plugin's reads take from:
//!
//! ```text
//!  connection ──► GateBody (count, between-bytes timeout, gunzip) ──► drain task ──► queue ──► plugin
//!                                 on the network runtime, while the plugin    (at most the sandbox's
//!                                 normalizes the page before                   buffer budget queued)
//! ```
//!
//! So the connector's read-ahead (the GET of page n+1 sent before page n is normalized) gets page n+1
//! decoded on the other core meanwhile, and the between-bytes timeout measures the upstream's gaps,
//! never the plugin's pace.
//!
//! What is queued is bounded per sandbox ([`BodyBudget`], [`BODY_BUDGET_BYTES`]): a frame holds its
//! size of the budget until read. When the budget is spent, or a frame does not fit in what is left,
//! the drain task queues that frame, then the body itself, and stops: the plugin reads the rest
//! straight from the connection, as without this module. Nothing waits for budget, so bodies read
//! in any order never deadlock, and a plugin that starts many requests and reads none holds at most
//! the budget in the host's memory (and one frame per body being drained when it ran out). Dropping
//! the body stops its drain task.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use wasmtime_wasi_http::Error as HttpError;

use super::upstream::GateBody;

/// How many decoded body bytes one sandbox may have queued and unread: a few pages.
pub const BODY_BUDGET_BYTES: usize = 4 << 20;

/// The queued-bytes budget of one sandbox, shared by its bodies.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl Default for BodyBudget {
    fn default() -> Self {
        BodyBudget(Arc::new(Semaphore::new(BODY_BUDGET_BYTES)))
    }
}

impl BodyBudget {
    /// Bytes queued and not read yet.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        BODY_BUDGET_BYTES - self.0.available_permits()
    }
}

/// What the drain task hands the reader.
enum Queued {
    /// A frame (or the body's error), with the budget it holds until read.
    Frame(Result<Frame<Bytes>, HttpError>, Option<OwnedSemaphorePermit>),
    /// The rest of the body, to be read straight from the connection.
    Rest(Box<GateBody>),
}

/// A response body drained by its own task (see the module docs).
pub struct BufferedBody {
    queue: mpsc::UnboundedReceiver<Queued>,
    /// Set once the drain task handed the body over.
    rest: Option<Box<GateBody>>,
    drain: tokio::task::JoinHandle<()>,
}

impl BufferedBody {
    /// Start draining `body` within `budget`.
    pub fn new(body: GateBody, budget: BodyBudget) -> BufferedBody {
        let (sender, queue) = mpsc::unbounded_channel();
        let drain = tokio::spawn(drain(body, budget, sender));
        BufferedBody { queue, rest: None, drain }
    }
}

async fn drain(mut body: GateBody, budget: BodyBudget, queue: mpsc::UnboundedSender<Queued>) {
    loop {
        if budget.0.available_permits() == 0 {
            let _ = queue.send(Queued::Rest(Box::new(body)));
            return;
        }
        let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await else { return };
        let size = frame.as_ref().ok().and_then(Frame::data_ref).map_or(0, Bytes::len);
        let permit = u32::try_from(size).ok().and_then(|n| budget.0.clone().try_acquire_many_owned(n).ok());
        let (fits, last) = (permit.is_some(), frame.is_err());
        if queue.send(Queued::Frame(frame, permit)).is_err() || last {
            return;
        }
        if !fits {
            let _ = queue.send(Queued::Rest(Box::new(body)));
            return;
        }
    }
}

impl Drop for BufferedBody {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

impl Body for BufferedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        loop {
            if let Some(rest) = &mut this.rest {
                return Pin::new(rest).poll_frame(cx);
            }
            match this.queue.poll_recv(cx) {
                Poll::Ready(Some(Queued::Frame(frame, _budget))) => return Poll::Ready(Some(frame)),
                Poll::Ready(Some(Queued::Rest(body))) => this.rest = Some(body),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
