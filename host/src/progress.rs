//! Progress while a run reads: per object, partitions done, records, pages and the rate.
//!
//! On a terminal (stderr is a TTY) each object gets an indicatif bar (partitions done out of its
//! partitions planned so far, with records, pages and records/s beside it; a large group's listing
//! goes on while the first partitions are read, so the bars grow). Otherwise (a log file, a pipe, CI) a
//! plain line per object every [`LOG_EVERY`], so that long runs show life without flooding the log;
//! short runs print nothing but the summary. Partitions report through an [`ObjectProgress`], shared
//! by every partition of one object.
//!
//! The plain lines of every run in the process are written by one thread, which each run's
//! [`Progress`] joins while it lasts; a tenant's lines name it. Flows run side by side (`host run
//! --tenants`) write lines even on a terminal ([`side_by_side`]): a thousand sets of bars would draw
//! over each other, each with a thread of its own to tick it.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the plain log says where the run stands.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether flows run side by side in this process (see [`side_by_side`]).
static SIDE_BY_SIDE: AtomicBool = AtomicBool::new(false);

/// Flows run side by side from now on: their progress is written as lines, even on a terminal.
pub fn side_by_side() {
    SIDE_BY_SIDE.store(true, Ordering::Relaxed);
}

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
    /// What the plain log writes of this run, while the run holds it (when logging).
    logged: Option<Arc<Logged>>,
}

impl Progress {
    /// Show the progress of `objects` (each object once; its partitions are counted as they are
    /// planned) on stderr: bars on a terminal (unless flows run [`side_by_side`]), else a log line
    /// per object every [`LOG_EVERY`], each starting with `label` if there is one (`tenant acme,
    /// flow nightly`).
    pub fn start(objects: &[String], label: Option<String>) -> Progress {
        let bars = std::io::stderr().is_terminal() && !SIDE_BY_SIDE.load(Ordering::Relaxed);
        Progress::new(objects, label, bars)
    }

    /// [`Progress::start`], with bars or with log lines.
    fn new(objects: &[String], label: Option<String>, bars: bool) -> Progress {
        let bars = bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
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
        let logged = bars.is_none().then(|| {
            let prefix = label.map_or_else(String::new, |label| format!("{label}: "));
            let logged = Arc::new(Logged { prefix, objects: objects.values().cloned().collect() });
            Log::join(&logged, started + LOG_EVERY);
            logged
        });
        Progress { objects, bars, logged }
    }

    /// The progress of `object`'s partitions.
    pub fn object(&self, object: &str) -> Option<Arc<ObjectProgress>> {
        self.objects.get(object).cloned()
    }

    /// Stop drawing: clear the bars (the summary follows) or leave the log.
    pub fn finish(self) {
        for object in self.objects.values() {
            if let Some(bar) = &object.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
        if let Some(logged) = &self.logged {
            Log::leave(logged);
        }
    }
}

/// What the plain log writes of one run: a line per object that has partitions.
struct Logged {
    prefix: String,
    objects: Vec<Arc<ObjectProgress>>,
}

impl Logged {
    /// `progress: tenant acme, flow nightly: issue: 3/150 partitions, ...`, for each object with
    /// partitions (one whose scopes were all skipped has nothing to say).
    fn lines(&self) -> Vec<String> {
        let planned = self.objects.iter().filter(|o| o.partitions.load(Ordering::Relaxed) > 0);
        planned.map(|object| format!("progress: {}{}", self.prefix, object.line())).collect()
    }
}

/// The process's plain log, if it has started.
static LOG: OnceLock<Option<Arc<Log>>> = OnceLock::new();

/// The plain log: one thread for the process, started by the first run that logs. It looks at its
/// runs every [`Log::LOOK_EVERY`] and writes the lines of each run whose time has come: the first
/// [`LOG_EVERY`] after the run started, then every [`LOG_EVERY`].
struct Log {
    /// Each run, and when its next lines are due; a run that ended cannot be upgraded and is dropped.
    runs: Mutex<Vec<(Weak<Logged>, Instant)>>,
}

impl Log {
    const LOOK_EVERY: Duration = Duration::from_millis(500);

    /// Have `logged` written from `first` on, every [`LOG_EVERY`], while it lives. If the system
    /// would not start the log's thread, runs go without lines (it is said once).
    fn join(logged: &Arc<Logged>, first: Instant) {
        let log = LOG.get_or_init(|| {
            let log = Arc::new(Log { runs: Mutex::new(Vec::new()) });
            let writer = log.clone();
            match crate::threads::spawn("progress-log", move || writer.write_forever()) {
                Ok(_) => Some(log),
                Err(error) => {
                    tracing::warn!("no progress lines: {error:#}");
                    None
                }
            }
        });
        if let Some(log) = log {
            log.runs.lock().unwrap_or_else(PoisonError::into_inner).push((Arc::downgrade(logged), first));
        }
    }

    /// Stop writing `logged`: once this returns, no line of it is being written or will be.
    fn leave(logged: &Arc<Logged>) {
        if let Some(Some(log)) = LOG.get() {
            let mut runs = log.runs.lock().unwrap_or_else(PoisonError::into_inner);
            runs.retain(|(run, _)| !std::ptr::eq(run.as_ptr(), Arc::as_ptr(logged)));
        }
    }

    fn write_forever(&self) {
        loop {
            std::thread::sleep(Self::LOOK_EVERY);
            let now = Instant::now();
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            runs.retain_mut(|(run, due)| {
                let Some(run) = run.upgrade() else { return false };
                if now >= *due {
                    for line in run.lines() {
                        eprintln!("{line}");
                    }
                    *due = now + LOG_EVERY;
                }
                true
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_object() {
        let progress = Progress::start(&["issue".to_owned(), "project".to_owned()], None);
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

    #[test]
    fn the_runs_of_a_process_share_one_log_and_leave_it_as_they_finish() {
        let logged = |progress: &Progress| progress.logged.clone().unwrap();
        let in_log = |run: &Arc<Logged>| {
            let log = LOG.get().unwrap().as_ref().unwrap();
            let runs = log.runs.lock().unwrap();
            runs.iter().any(|(logged, _)| std::ptr::eq(logged.as_ptr(), Arc::as_ptr(run)))
        };
        let acme = Progress::new(&["issue".to_owned()], Some("tenant acme, flow nightly".to_owned()), false);
        let globex = Progress::new(&["issue".to_owned(), "project".to_owned()], None, false);
        let (acme_logged, globex_logged) = (logged(&acme), logged(&globex));
        assert!(in_log(&acme_logged) && in_log(&globex_logged));
        assert!(acme_logged.lines().is_empty(), "no partition planned yet: nothing to say");
        acme.object("issue").unwrap().partition_planned();
        globex.object("project").unwrap().partition_planned();
        let lines = acme_logged.lines();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("progress: tenant acme, flow nightly: issue: 0/1 partitions, 0 records"),
            "{lines:?}"
        );
        assert!(
            globex_logged.lines()[0].starts_with("progress: project: 0/1 partitions"),
            "{:?}",
            globex_logged.lines()
        );
        acme.finish();
        assert!(!in_log(&acme_logged) && in_log(&globex_logged));
        globex.finish();
        assert!(!in_log(&globex_logged));
    }
}
