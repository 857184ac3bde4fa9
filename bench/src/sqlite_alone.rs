//! SQLite alone: the ceiling of a run into SQLite on this machine.
//!
//! A run into SQLite is only as fast as SQLite inserts its rows on the destination's one writer
//! thread. To tell the host's own cost from SQLite's, this replays what a host run wrote: every row
//! of its table, read back into memory in the order the run received them (GitLab's default for a
//! list, newest created first: ids descending), is inserted again into a fresh database with the
//! run's own page size, table and indexes, and the statements the destination uses (`INSERT ... ON
//! CONFLICT (key) DO UPDATE`, a transaction per group of pages, WAL with `synchronous=NORMAL`, no
//! automatic checkpoint). After each commit a second connection, on a thread of its own, copies the
//! log into the database, as the host's committer does; every 64 MiB of rows the writer waits for
//! it, so that the log starts over.
//! Nothing else runs: no network, no plugin, no record parsing, no sync.
//!
//! The order matters where the key orders the table's tree: SQLite appends rows at one end of a tree
//! far faster than it inserts them at random places. With the destination's tables keyed by their
//! INTEGER primary key (before stop 23), the same 50,000 issues newest update first took 2.2 s, not
//! 0.6. Its tables now store rows in the order they arrive, the key in an index beside them.
//!
//! ```text
//!  host's database ──► SELECT * ORDER BY created_at DESC, id DESC ──► rows in memory
//!    ──► fresh database, same page size, table and index ──► timed: BEGIN, 1,600 upserts, COMMIT ...
//!                                                └─► after each COMMIT, on a second thread: PRAGMA wal_checkpoint(PASSIVE)
//! ```

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

/// Records per page, as the connector asks GitLab for them.
const PAGE_ROWS: usize = 100;
/// Pages per transaction: the host's `COMMIT_PAGES`.
const GROUP_PAGES: usize = 16;

/// What a replay measured.
pub struct Replay {
    pub rows: usize,
    /// Inserting every row, commits included: the wall time of the replay.
    pub inserting: Duration,
    /// The time the second thread spent copying the log into the database, beside the inserts.
    pub backfilling: Duration,
    /// The CPU time both threads used (user and system), the kernel's writes included.
    pub cpu: Duration,
}

/// The CPU time this process has used so far, from `/proc/self/stat` (Linux).
fn process_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The fields after the command name (which may hold spaces, inside parentheses): user time is
    // the 14th field, system time the 15th, in clock ticks of 1/100 s.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let ticks: Vec<u64> = after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    match ticks[..] {
        [user, system] => Ok(Duration::from_millis((user + system) * 10)),
        _ => bail!("/proc/self/stat has no CPU times: {stat}"),
    }
}

/// Insert the rows of `table` in the database `written` (a host run's) again, into a new database
/// at `into`, as the SQLite destination does.
pub fn replay(written: &Path, table: &str, into: &Path) -> Result<Replay> {
    let source = Connection::open(written).with_context(|| format!("opening {}", written.display()))?;
    let create = schema(&source, table).with_context(|| format!("{} has no table {table}", written.display()))?;
    let page_size: u32 = source.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let (columns, key) = columns_and_key(&source, table)?;
    let rows = read_rows(&source, table, columns.len())?;

    let db = Connection::open(into).with_context(|| format!("creating {}", into.display()))?;
    db.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
         PRAGMA wal_autocheckpoint=0;"
    ))?;
    for statement in &create {
        db.execute_batch(statement)?;
    }
    let backfill = Backfill::start(into)?;
    let upsert = upsert(table, &columns, &key);
    let (started, cpu_before) = (Instant::now(), process_cpu()?);
    let mut logged = 0;
    for group in rows.chunks(PAGE_ROWS * GROUP_PAGES) {
        if logged >= LOG_LIMIT {
            backfill.wait()?;
            logged = 0;
        }
        db.execute_batch("BEGIN")?;
        let mut statement = db.prepare_cached(&upsert)?;
        for row in group {
            statement.execute(params_from_iter(row))?;
            logged += row.iter().map(value_bytes).sum::<usize>();
        }
        db.execute_batch("COMMIT")?;
        backfill.step()?;
    }
    let inserting = started.elapsed();
    let backfilling = backfill.finish()?;
    let cpu = process_cpu()?.saturating_sub(cpu_before);
    Ok(Replay { rows: rows.len(), inserting, backfilling, cpu })
}

/// The bytes of rows written past which the writer waits for the log to be copied, so that it
/// starts over: the host's `LOG_LIMIT`. A log never copied grows to the whole database.
const LOG_LIMIT: usize = 64 << 20;

/// About what a value takes in a row.
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Text(text) => text.len(),
        Value::Blob(blob) => blob.len(),
        _ => 8,
    }
}

/// A thread with a second connection that copies the log into the database after each commit
/// (`PASSIVE`, beside the writer's next inserts), as the host's committer does.
struct Backfill {
    steps: mpsc::Sender<Step>,
    thread: std::thread::JoinHandle<Result<Duration>>,
}

enum Step {
    /// Copy what was committed so far.
    Copy,
    /// Answer once every step before this one has run.
    Barrier(mpsc::Sender<()>),
}

impl Backfill {
    fn start(path: &Path) -> Result<Backfill> {
        let db = Connection::open(path)?;
        let (steps, received) = mpsc::channel();
        let thread = std::thread::spawn(move || -> Result<Duration> {
            let mut busy = Duration::ZERO;
            for step in received {
                match step {
                    Step::Copy => {
                        let started = Instant::now();
                        db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
                        busy += started.elapsed();
                    }
                    Step::Barrier(answer) => drop(answer.send(())),
                }
            }
            Ok(busy)
        });
        Ok(Backfill { steps, thread })
    }

    fn step(&self) -> Result<()> {
        self.send(Step::Copy)
    }

    /// Wait for every step handed out so far.
    fn wait(&self) -> Result<()> {
        let (answer, answered) = mpsc::channel();
        self.send(Step::Barrier(answer))?;
        answered.recv().context("the backfill thread ended")
    }

    fn send(&self, step: Step) -> Result<()> {
        self.steps.send(step).map_err(|_| anyhow::anyhow!("the backfill thread ended"))
    }

    /// The time the thread spent copying.
    fn finish(self) -> Result<Duration> {
        let Backfill { steps, thread } = self;
        drop(steps);
        thread.join().map_err(|_| anyhow::anyhow!("the backfill thread panicked"))?
    }
}

/// The statements that made `table` and its indexes, the table's first.
fn schema(db: &Connection, table: &str) -> Result<Vec<String>> {
    let mut select = db.prepare(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL ORDER BY type = 'index', rowid",
    )?;
    let create: Vec<String> = select.query_map([table], |row| row.get(0))?.collect::<Result<_, _>>()?;
    if create.is_empty() {
        bail!("no such table");
    }
    Ok(create)
}

/// The table's column names, in order, and its key's: its primary key, or the columns of its
/// unique index (the destination's layout since stop 23).
fn columns_and_key(db: &Connection, table: &str) -> Result<(Vec<String>, Vec<String>)> {
    let mut info = db.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let described: Vec<(String, i64)> =
        info.query_map([], |row| Ok((row.get(1)?, row.get(5)?)))?.collect::<Result<_, _>>()?;
    let mut key: Vec<&(String, i64)> = described.iter().filter(|(_, in_key)| *in_key > 0).collect();
    key.sort_by_key(|(_, position)| *position);
    let mut key: Vec<String> = key.into_iter().map(|(name, _)| name.clone()).collect();
    if key.is_empty() {
        key = db
            .prepare(
                "SELECT info.name FROM pragma_index_list(?1) AS list, pragma_index_info(list.name) AS info \
                 WHERE list.\"unique\" AND list.origin = 'c' ORDER BY info.seqno",
            )?
            .query_map([table], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
    }
    if key.is_empty() {
        bail!("table {table} has no primary key nor unique index: the destination upserts on one");
    }
    Ok((described.into_iter().map(|(name, _)| name).collect(), key))
}

/// Every row of `table`, newest first: the order the run read them in.
fn read_rows(db: &Connection, table: &str, width: usize) -> Result<Vec<Vec<Value>>> {
    let mut select = db.prepare(&format!("SELECT * FROM {} ORDER BY created_at DESC, id DESC", quote(table)))?;
    let rows = select.query_map([], |row| (0..width).map(|i| row.get::<_, Value>(i)).collect())?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn upsert(table: &str, columns: &[String], key: &[String]) -> String {
    let quoted = |names: &[String]| names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ");
    let set: Vec<String> =
        columns.iter().filter(|c| !key.contains(c)).map(|c| format!("{0} = excluded.{0}", quote(c))).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        quote(table),
        quoted(columns),
        vec!["?"; columns.len()].join(", "),
        quoted(key),
        set.join(", ")
    )
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_every_row_with_its_values() {
        replays_every_row_of(
            "CREATE TABLE \"issue\" (\"id\" INTEGER, \"title\" TEXT, \"created_at\" TEXT, PRIMARY KEY (\"id\"));",
        );
    }

    #[test]
    fn replays_a_table_keyed_by_a_unique_index_with_its_index_and_page_size() {
        let (_dir, again) = replays_every_row_of(
            "PRAGMA page_size=32768; CREATE TABLE \"issue\" (\"id\" INTEGER NOT NULL, \"title\" TEXT, \"created_at\" TEXT); \
             CREATE UNIQUE INDEX \"issue_primary_key\" ON \"issue\" (\"id\");",
        );
        let page_size: u32 = again.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let indexes: i64 =
            again.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index'", [], |r| r.get(0)).unwrap();
        assert_eq!((page_size, indexes), (32768, 1));
    }

    /// Replays 2,000 rows of a table made by `create`, and checks them; the replay's database, in
    /// its folder.
    fn replays_every_row_of(create: &str) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let written = dir.path().join("run.db");
        let db = Connection::open(&written).unwrap();
        db.execute_batch(create).unwrap();
        for id in 0..2_000 {
            db.execute(
                "INSERT INTO issue VALUES (?1, ?2, ?3)",
                (id, format!("t{id}"), format!("{:05}", id * 7 % 2_000)),
            )
            .unwrap();
        }
        drop(db);
        let into = dir.path().join("again.db");
        let replay = replay(&written, "issue", &into).unwrap();
        assert_eq!(replay.rows, 2_000);
        let again = Connection::open(&into).unwrap();
        let (count, title): (i64, String) = again
            .query_row("SELECT count(*), max(title) FROM issue WHERE id >= 1000", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((count, title.as_str()), (1_000, "t1999"));
        (dir, again)
    }
}
