//! Progress while a run reads: per object, partitions done, records, pages and the rate.
//!
//! On a terminal (stderr is a TTY) each object gets an indicatif bar (partitions done out of its
//! partitions planned so far, with records, pages and records/s beside it; a large group's listing
//! goes on while the first partitions are read, so the bars grow). Otherwise (a log file, a pipe, CI) a
//! plain line per object every [`LOG_EVERY`], so that long runs show life without flooding the log;
//! short runs print nothing but the summary. Partitions report through an [`ObjectProgress`], shared
//! by every partition of one object.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the plain log says where the run stands.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// One object's figures, updated by its partitions.
pub struct ObjectProgress {
    object: String,
    partitions: AtomicU64,
    done: AtomicU64,
    records: AtomicU64,
    pages: AtomicU64,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl ObjectProgress {
    /// A partition of this object was planned.
    pub fn partition_planned(&self) {
        self.partitions.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(1);
        }
    }

    /// A page of `records` records was written.
    pub fn page(&self, records: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.pages.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_message(self.figures());
        }
    }

    /// A partition of this object ended (done, skipped or failed).
    pub fn partition_ended(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(self.figures());
        }
    }

    /// `1,200 records, 12 pages, 950 records/s`.
    fn figures(&self) -> String {
        let records = self.records.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { records as f64 / seconds } else { 0.0 };
        format!("{records} records, {} pages, {rate:.0} records/s", self.pages.load(Ordering::Relaxed))
    }

    /// `issue: 3/150 partitions, 1,200 records, 12 pages, 950 records/s`.
    fn line(&self) -> String {
        format!(
            "{}: {}/{} partitions, {}",
            self.object,
            self.done.load(Ordering::Relaxed),
            self.partitions.load(Ordering::Relaxed),
            self.figures()
        )
    }
}

/// A run's progress display.
pub struct Progress {
    objects: BTreeMap<String, Arc<ObjectProgress>>,
    /// The terminal's bars, when drawing them.
    bars: Option<MultiProgress>,
    /// Stops the plain logger, when logging.
    stop_log: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Progress {
    /// Show the progress of `objects` (each object once; its partitions are counted as they are
    /// planned) on stderr: bars on a terminal, a log line per object every [`LOG_EVERY`] otherwise.
    pub fn start(objects: &[String]) -> Progress {
        let bars =
            std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let width = objects.iter().map(String::len).max().unwrap_or(0);
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:{width}}} [{{bar:30}}] {{pos}}/{{len}} partitions  {{msg}}  {{elapsed}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let started = Instant::now();
        let objects: BTreeMap<String, Arc<ObjectProgress>> = objects
            .iter()
            .map(|object| {
                let bar = bars.as_ref().map(|multi| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_style(style.clone());
                    bar.set_prefix(object.clone());
                    bar.enable_steady_tick(Duration::from_millis(250));
                    bar
                });
                let progress = ObjectProgress {
                    object: object.clone(),
                    partitions: AtomicU64::new(0),
                    done: AtomicU64::new(0),
                    records: AtomicU64::new(0),
                    pages: AtomicU64::new(0),
                    started,
                    bar,
                };
                (object.clone(), Arc::new(progress))
            })
            .collect();
        let stop_log = bars.is_none().then(|| log_every(LOG_EVERY, objects.values().cloned().collect()));
        Progress { objects, bars, stop_log }
    }

    /// The progress of `object`'s partitions.
    pub fn object(&self, object: &str) -> Option<Arc<ObjectProgress>> {
        self.objects.get(object).cloned()
    }

    /// Stop drawing: clear the bars (the summary follows) or stop the logger.
    pub fn finish(self) {
        for object in self.objects.values() {
            if let Some(bar) = &object.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
        if let Some((stop, logger)) = self.stop_log {
            drop(stop);
            let _ = logger.join();
        }
    }
}

/// Print a line per object every `every` until the returned sender is dropped.
fn log_every(every: Duration, objects: Vec<Arc<ObjectProgress>>) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let logger = std::thread::Builder::new()
        .name("progress-log".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                // An object whose scopes were all skipped has nothing to say.
                for object in objects.iter().filter(|o| o.partitions.load(Ordering::Relaxed) > 0) {
                    eprintln!("progress: {}", object.line());
                }
            }
        })
        .expect("spawning the progress logger");
    (stop, logger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_object() {
        let progress = Progress::start(&["issue".to_owned(), "project".to_owned()]);
        let issues = progress.object("issue").unwrap();
        issues.partition_planned();
        issues.partition_planned();
        progress.object("project").unwrap().partition_planned();
        issues.page(100);
        issues.page(20);
        issues.partition_ended();
        assert!(issues.line().starts_with("issue: 1/2 partitions, 120 records, 2 pages"), "{}", issues.line());
        assert!(progress.object("project").unwrap().line().starts_with("project: 0/1 partitions, 0 records"));
        progress.finish();
    }
}
