//! The guest's stdout and stderr: captured into the host's log, never inherited, bounded per call.
//!
//! ```text
//!  guest println!/eprintln! ──► wasi:cli stdout/stderr ──► GuestOutput (one budget per sandbox)
//!      ──► whole lines ──► tracing events (target `plugin`, with the tenant and the partition)
//!      past the budget of one call ──► the Tripwire is tripped and the guest traps
//! ```
//!
//! stderr lines are logged at `info`, stdout lines at `debug` (a connector's data leaves through
//! `read-page`, never through stdout). Lines are cut at [`MAX_LINE`] bytes and escaped, so a plugin can
//! neither flood nor forge the host's log. The last few stderr lines are kept: they usually say why a
//! plugin panicked, and go into the error of the call that trapped ([`GuestOutput::last_words`]).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::Label;
use super::limits::{Limit, Tripwire};

/// The longest line logged; longer lines are cut into pieces of this size.
pub const MAX_LINE: usize = 4096;

/// How much one `write` may carry (what `check-write` grants).
const WRITE_PERMIT: usize = 64 << 10;

/// How many of the last stderr lines are kept for [`GuestOutput::last_words`].
const KEPT_LINES: usize = 4;

/// Which of the two streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The capture of one sandbox's stdout and stderr; cheap to clone, every clone shares the budget.
#[derive(Clone)]
pub struct GuestOutput {
    state: Arc<Mutex<OutputState>>,
}

struct OutputState {
    label: Label,
    budget: usize,
    used: usize,
    tripwire: Tripwire,
    /// The unfinished line of stdout and of stderr.
    partial: [Vec<u8>; 2],
    recent_stderr: VecDeque<String>,
}

impl GuestOutput {
    /// A capture allowing `budget` bytes per call, labelled with the sandbox's tenant and partition.
    pub fn new(label: Label, budget: usize, tripwire: Tripwire) -> GuestOutput {
        let state =
            OutputState { label, budget, used: 0, tripwire, partial: [vec![], vec![]], recent_stderr: VecDeque::new() };
        GuestOutput { state: Arc::new(Mutex::new(state)) }
    }

    /// The stream to hand to WASI as `stream`.
    pub fn stream(&self, stream: Stream) -> GuestStream {
        GuestStream { output: self.clone(), stream }
    }

    /// Start a new call: a fresh budget.
    pub fn start_call(&self) {
        self.lock().used = 0;
    }

    /// End a call: log what is left of unfinished lines.
    pub fn end_call(&self) {
        let mut state = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut state.partial[stream as usize]);
            state.emit(stream, &line);
        }
    }

    /// What the guest last said on stderr: a Rust panic's location and message when it panicked
    /// (without the advice about `RUST_BACKTRACE`), else its last line.
    pub fn last_words(&self) -> Option<String> {
        let state = self.lock();
        let lines = &state.recent_stderr;
        match lines.iter().rposition(|l| l.contains("panicked at")) {
            Some(start) => {
                let said: Vec<&str> =
                    lines.iter().skip(start).filter(|l| !l.starts_with("note: ")).map(String::as_str).collect();
                Some(said.join(" "))
            }
            None => lines.back().cloned(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take `bytes` written to `stream`, or refuse them if they overrun the call's budget.
    fn accept(&self, stream: Stream, bytes: &[u8]) -> Result<(), Limit> {
        let mut state = self.lock();
        state.used = state.used.saturating_add(bytes.len());
        if state.used > state.budget {
            let limit = Limit::LogOutput(state.budget);
            state.tripwire.trip(limit);
            return Err(limit);
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let partial = &mut state.partial[stream as usize];
            let room = MAX_LINE - partial.len();
            let take = rest.iter().take(room).position(|b| *b == b'\n').map_or(rest.len().min(room), |i| i + 1);
            partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if partial.last() == Some(&b'\n') || partial.len() >= MAX_LINE {
                let line = std::mem::take(partial);
                state.emit(stream, &line);
            }
        }
        Ok(())
    }
}

impl OutputState {
    fn emit(&mut self, stream: Stream, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        let text = escape_controls(&String::from_utf8_lossy(line));
        let (tenant, partition) = (self.label.tenant.as_deref(), self.label.partition.as_str());
        match stream {
            Stream::Stdout => {
                tracing::debug!(target: "plugin", tenant, partition, stream = stream.name(), "{text}");
            }
            Stream::Stderr => {
                tracing::info!(target: "plugin", tenant, partition, stream = stream.name(), "{text}");
                if self.recent_stderr.len() == KEPT_LINES {
                    self.recent_stderr.pop_front();
                }
                self.recent_stderr.push_back(text);
            }
        }
    }
}

/// `text` with control characters (escape sequences, tabs...) written out as `\u{1b}`, `\t`.
fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// One of a sandbox's two output streams, as WASI sees it.
pub struct GuestStream {
    output: GuestOutput,
    stream: Stream,
}

impl GuestStream {
    fn write_bytes(&self, bytes: &[u8]) -> Result<(), Limit> {
        self.output.accept(self.stream, bytes)
    }

    fn exhausted(&self) -> Option<Limit> {
        let state = self.output.lock();
        (state.used >= state.budget).then_some(Limit::LogOutput(state.budget))
    }
}

fn trap(limit: Limit) -> StreamError {
    StreamError::Trap(wasmtime::Error::new(limit))
}

/// The sandbox's stdout or stderr, as `WasiCtxBuilder::stdout` takes it.
pub struct GuestStdio {
    output: GuestOutput,
    stream: Stream,
}

impl GuestOutput {
    /// What `WasiCtxBuilder::stdout`/`stderr` take.
    pub fn stdio(&self, stream: Stream) -> GuestStdio {
        GuestStdio { output: self.clone(), stream }
    }
}

impl IsTerminal for GuestStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdio {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.output.stream(self.stream))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.output.stream(self.stream))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    /// Always ready: writes are logged at once.
    async fn ready(&mut self) {}
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes).map_err(trap)
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match self.exhausted() {
            Some(limit) => Err(trap(limit)),
            None => Ok(WRITE_PERMIT),
        }
    }
}

impl AsyncWrite for GuestStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(match self.write_bytes(bytes) {
            Ok(()) => Ok(bytes.len()),
            Err(limit) => Err(io::Error::other(limit)),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(budget: usize) -> (GuestOutput, Tripwire) {
        let tripwire = Tripwire::default();
        (GuestOutput::new(Label::partition("issue 1"), budget, tripwire.clone()), tripwire)
    }

    #[test]
    fn lines_are_split_kept_whole_across_writes_and_the_last_one_is_kept() {
        let (out, _) = output(1 << 20);
        let mut err = out.stream(Stream::Stderr);
        err.write(Bytes::from_static(b"first line\nsecond ")).unwrap();
        assert_eq!(out.last_words().as_deref(), Some("first line"));
        err.write(Bytes::from_static(b"line\r\n")).unwrap();
        assert_eq!(out.last_words().as_deref(), Some("second line"));
        err.write(Bytes::from_static(b"no newline")).unwrap();
        out.end_call();
        assert_eq!(out.last_words().as_deref(), Some("no newline"), "a call's end logs the unfinished line");
    }

    #[test]
    fn a_rust_panic_is_told_by_its_location_and_message() {
        let (out, _) = output(1 << 20);
        let panic = "noise\nthread '<unnamed>' panicked at src/lib.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1` \
                     environment variable to display a backtrace\n";
        out.stream(Stream::Stderr).write(Bytes::from(panic)).unwrap();
        assert_eq!(out.last_words().as_deref(), Some("thread '<unnamed>' panicked at src/lib.rs:3:5: boom"));
    }

    #[test]
    fn control_characters_are_escaped_and_long_lines_cut() {
        let (out, _) = output(1 << 20);
        let mut err = out.stream(Stream::Stderr);
        err.write(Bytes::from_static(b"\x1b[31mred\tline\n")).unwrap();
        assert_eq!(out.last_words().as_deref(), Some("\\u{1b}[31mred\\tline"));
        err.write(Bytes::from(vec![b'x'; MAX_LINE + 10])).unwrap();
        assert_eq!(out.last_words().map(|l| l.len()), Some(MAX_LINE), "cut at MAX_LINE");
    }

    #[test]
    fn the_budget_is_per_call_shared_by_both_streams_and_trips_the_limit() {
        let (out, tripwire) = output(100);
        let (mut stdout, mut stderr) = (out.stream(Stream::Stdout), out.stream(Stream::Stderr));
        stdout.write(Bytes::from(vec![b'a'; 60])).unwrap();
        assert_eq!(stderr.check_write().unwrap(), WRITE_PERMIT);
        assert!(matches!(stderr.write(Bytes::from(vec![b'b'; 41])), Err(StreamError::Trap(_))));
        assert_eq!(tripwire.hit(), Some(Limit::LogOutput(100)));
        assert!(matches!(stdout.check_write(), Err(StreamError::Trap(_))), "nothing more this call");
        out.start_call();
        stdout.write(Bytes::from(vec![b'a'; 100])).unwrap();
    }
}
