//! The SQLite destination: a table per object, typed columns, upsert on the primary key.
//!
//! The pages of one group of the writer are one transaction. A page is read and checked whole on the
//! writer thread before any of it is written ([`page::CheckedPage`]: every record parsed, every key
//! present, every field a column), so a page the plugin got wrong fails alone and leaves nothing.
//! The checked page then goes to the inserting thread ([`inserter`]), which upserts it while the
//! writer thread reads the next. A page that then fails as SQLite writes it failed for a reason of
//! SQLite's own (a full disk, an I/O error, a trigger a user added): the transaction is rolled back
//! and the whole group fails, to be read again (the group's later pages, checkpoints and commit
//! fail). A savepoint per page would roll back that page alone, but SQLite copies each page of the
//! database it touches first into the savepoint's journal: a tenth of the writer's time for a rare
//! failure.
//!
//! ```text
//!  writer thread: page N+1 ──► CheckedPage (JSON, values, keys, shape) ──┐
//!  inserter thread:          upserts of page N, then its checkpoint ◄────┘ one page in flight
//!  writer thread: commit ──► the page in flight is in ──► COMMIT ──► Syncs (log sync, backfill)
//! ```
//!
//! The database is in WAL mode with `synchronous=NORMAL`: a `COMMIT`
//! appends the group to the log (`FILE-wal`) without syncing it, and `commit` returns the log's
//! sync for the writer's committer to run, so the writer inserts the next group while the disk
//! makes this one durable (the group is answered only after that sync). The log is copied into the
//! database by the committer too, through a second connection ([`backfill`]); SQLite syncs the log
//! before each such copy and the database after it.
//! The database also keeps the run's checkpoints (the `_checkpoints` table of [`crate::state::sqlite`])
//! unless the run names another store, and then a page and its checkpoint commit in the same
//! transaction: exactly once, whatever moment the process dies at.
//!
//! A table's rows are stored in the order they arrive, whatever their key: the table has SQLite's
//! own row numbers, and the object's primary key is a unique index beside it (`OBJECT_primary_key`),
//! which the upsert's `ON CONFLICT` finds. An INTEGER primary key would be the row number itself:
//! GitLab's newest-first pages would go to the front of the table's tree, and an incremental read's
//! rows (in update order) to random places in it, splitting pages and leaving them half full.
//! Appended rows fill pages of [`PAGE_SIZE`] whole, one after the other; only the small index takes
//! the keys' order. A table made by an earlier version, its key its primary key, is used as it is.
//! Integers and booleans become INTEGER, numbers REAL, everything else TEXT (dates and date-times in
//! RFC 3339, structs and lists as JSON text). A field new to the schema adds a column; nothing is dropped.

mod backfill;
mod inserter;
mod page;
mod upsert;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use rusqlite::Connection;

use super::syncs::Syncs;
use super::{CpuMeter, Destination, TableSchema};
use crate::sandbox::wit::FieldType;
use crate::state::{self, Checkpoint, CheckpointStore, PartitionKey, ReaderOpener};
use backfill::{Backfill, LOG_LIMIT};
use inserter::{Db, Inserter};
use page::Shapes;

/// The page size of a database the destination creates: a page holds about a dozen issues (SQLite's
/// default, 4 KiB, holds one ~2.7 KB row and leaves the rest empty). Appending rows, 32 KiB was the
/// fastest (50,000 issues: 0.62–0.85 s; 16 KiB 0.67–0.89 s, 4 KiB 1.02–1.20 s). The price is in
/// updates of rows scattered over a large table, each of which rewrites a whole page: 10,000 of
/// 50,000 rows updated at random took 1.5 s against 1.2 s with 16 KiB and 0.7 s with 4 KiB.
const PAGE_SIZE: u32 = 32 << 10;

pub struct SqliteDestination {
    /// The connection, and the thread that inserts pages with it.
    inserter: Inserter,
    /// The shapes of the records read so far, each checked against its table.
    shapes: Shapes,
    /// The write-ahead log, `FILE-wal`.
    wal: PathBuf,
    tables: HashMap<String, TableSchema>,
    backfill: Backfill,
    /// Where the inserting thread's CPU time is counted as it ends.
    meter: Option<CpuMeter>,
    /// The database's path as SQLite names it (none in memory), for readers of the checkpoints.
    path: Option<String>,
}

impl SqliteDestination {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let db =
            Connection::open(path).with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        // The page size first: it only takes on a new database, and not once it is in WAL mode.
        db.execute_batch(&format!(
            "PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
             PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0;"
        ))
        .with_context(|| format!("cannot configure the SQLite database {}", path.display()))?;
        state::sqlite::create_table(&db)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let backfill = Backfill::open(path, LOG_LIMIT)?;
        let path_of_db = db.path().filter(|path| !path.is_empty()).map(str::to_owned);
        Ok(SqliteDestination {
            inserter: Inserter::start(Db::new(db))?,
            shapes: Shapes::default(),
            wal: PathBuf::from(wal),
            tables: HashMap::new(),
            backfill,
            meter: None,
            path: path_of_db,
        })
    }

    /// The connection, once the page being inserted is in.
    fn db(&mut self) -> Result<&mut Db> {
        self.inserter.db()
    }

    /// Stop the inserting thread (counting its CPU time): the connection.
    fn stop(self) -> Result<(Db, Backfill)> {
        let (db, cpu) = self.inserter.stop()?;
        if let Some(meter) = &self.meter {
            meter.add(cpu);
        }
        Ok((db, self.backfill))
    }
}

/// Whether the database has a table `name`.
fn table_exists(db: &Connection, name: &str) -> Result<bool> {
    Ok(db.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |row| row.get(0),
    )?)
}

/// The statements that create `table`: its rows in a table of their own, stored in the order they
/// arrive, and its key in a unique index beside them (see the module's doc). One savepoint, so
/// that the table never exists without its key.
fn create_table(table: &TableSchema) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let not_null = if table.primary_key.contains(&c.name) { " NOT NULL" } else { "" };
            format!("{} {}{not_null}", quote(&c.name), sql_type(c.field_type))
        })
        .collect();
    let key: Vec<String> = table.primary_key.iter().map(|k| quote(k)).collect();
    format!(
        "SAVEPOINT create_table; CREATE TABLE {name} ({}); CREATE UNIQUE INDEX {} ON {name} ({}); RELEASE create_table",
        columns.join(", "),
        quote(&format!("{}_primary_key", table.name)),
        key.join(", "),
        name = quote(&table.name),
    )
}

/// `name` as an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Boolean | FieldType::Integer => "INTEGER",
        FieldType::Number => "REAL",
        _ => "TEXT",
    }
}

impl Destination for SqliteDestination {
    fn prepare(&mut self, table: &TableSchema) -> Result<()> {
        let name = quote(&table.name);
        let db = &self.inserter.db()?.conn;
        if !table_exists(db, &table.name)? {
            db.execute_batch(&create_table(table))?;
        }
        let existing: Vec<String> = db
            .prepare(&format!("PRAGMA table_info({name})"))?
            .query_map([], |row| row.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        for column in table.columns.iter().filter(|c| !existing.contains(&c.name)) {
            db.execute_batch(&format!(
                "ALTER TABLE {name} ADD COLUMN {} {}",
                quote(&column.name),
                sql_type(column.field_type)
            ))?;
        }
        self.tables.insert(table.name.clone(), table.clone());
        Ok(())
    }

    fn checkpoints(&mut self) -> Option<&mut dyn CheckpointStore> {
        Some(self)
    }

    fn open_part(&mut self, _part: &PartitionKey, _resume: Option<&str>) -> Result<()> {
        // Rows are upserted by primary key: a resumed page lands on the rows it wrote before.
        Ok(())
    }

    fn write_page(
        &mut self,
        part: &PartitionKey,
        records: &[u8],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<Option<String>> {
        let object = part.object.as_str();
        let table = self.tables.get(object).ok_or_else(|| anyhow!("table '{object}' was not prepared"))?;
        // Everything that could refuse the page is checked before any of it is written, while the
        // page before is being inserted...
        self.inserter.spare().read(&mut self.shapes, table, records)?;
        // ... so a page that fails half-written failed in SQLite itself, and rolled back its group.
        let db = self.inserter.db()?;
        db.not_rolled_back()?;
        if !db.in_transaction {
            self.backfill.wait_if_long();
            db.conn.execute_batch("BEGIN")?;
            db.in_transaction = true;
        }
        self.backfill.wrote(records.len());
        self.inserter.insert(checkpoint.map(|checkpoint| (part.clone(), checkpoint.clone())))?;
        Ok(None)
    }

    fn commit(&mut self) -> Result<Syncs> {
        let db = self.inserter.db()?;
        // The group's pages fail with the page that rolled them back; the next group starts afresh.
        let rolled_back = db.not_rolled_back();
        db.rolled_back = None;
        rolled_back?;
        let mut syncs = Syncs::default();
        if db.in_transaction {
            db.conn.execute_batch("COMMIT").context("cannot commit the pages to SQLite")?;
            db.in_transaction = false;
            // Opened at each commit: a handle kept across commits could outlive the file SQLite
            // keeps its log in.
            let wal = File::open(&self.wal)
                .with_context(|| format!("cannot open SQLite's log {} to sync it", self.wal.display()))?;
            syncs.data_owned(wal, format!("SQLite's log {}", self.wal.display()));
            syncs.call(self.backfill.step());
        }
        Ok(syncs)
    }

    fn close_part(&mut self, _part: &PartitionKey) -> Result<()> {
        Ok(())
    }

    fn count_cpu_in(&mut self, meter: CpuMeter) {
        self.meter = Some(meter);
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.commit()?.run()?;
        let (db, backfill) = self.stop()?;
        db.close()?;
        backfill.close().context("cannot close the SQLite database")
    }

    fn abort(self: Box<Self>) -> Result<()> {
        // What was not committed is rolled back as the connection closes.
        let (db, backfill) = self.stop()?;
        drop(db);
        backfill.close().context("cannot close the SQLite database")
    }
}

impl CheckpointStore for SqliteDestination {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        state::sqlite::load(&self.db()?.conn, key)
    }

    fn reader(&self) -> Option<ReaderOpener> {
        self.path.clone().map(state::sqlite::reader_at)
    }

    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
        let db = self.db()?;
        // Not once the pages it follows were rolled back.
        db.not_rolled_back()?;
        state::sqlite::save(&db.conn, key, checkpoint)
    }
}

/// `INSERT ... ON CONFLICT (key) DO UPDATE` for these columns.
fn upsert(table: &TableSchema, columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let holes = vec!["?"; columns.len()].join(", ");
    let key: Vec<String> = table.primary_key.iter().map(|k| quote(k)).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !table.primary_key.contains(c))
        .map(|c| format!("{0} = excluded.{0}", quote(c)))
        .collect();
    let action = if updates.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updates.join(", ")) };
    format!(
        "INSERT INTO {} ({}) VALUES ({holes}) ON CONFLICT ({}) DO {action}",
        quote(&table.name),
        names.join(", "),
        key.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::types::FromSql;

    use super::*;
    use crate::dest::Column;
    use inserter::ROLLED_BACK;

    fn table() -> TableSchema {
        TableSchema {
            name: "issue".into(),
            columns: vec![
                Column { name: "id".into(), field_type: FieldType::Integer },
                Column { name: "title".into(), field_type: FieldType::String },
                Column { name: "labels".into(), field_type: FieldType::List },
            ],
            primary_key: vec!["id".into()],
        }
    }

    /// The rows `sql` selects, three columns each.
    fn select3<A: FromSql, B: FromSql, C: FromSql>(db: &Connection, sql: &str) -> Vec<(A, B, C)> {
        let mut statement = db.prepare(sql).unwrap();
        statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// The partition every test writes issues of.
    fn part() -> PartitionKey {
        PartitionKey { flow: "f".into(), object: "issue".into(), scope: "project-1".into() }
    }

    /// A destination on a new database in a folder of its own, named after the test.
    fn fresh(name: &str) -> (PathBuf, SqliteDestination) {
        let dir = std::env::temp_dir().join(format!("sqlite-dest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dest = SqliteDestination::open(&dir.join("t.db")).unwrap();
        (dir, dest)
    }

    #[test]
    fn upserts_on_the_primary_key_and_adds_columns() {
        let (dir, mut dest) = fresh("upsert");
        let part = part();
        dest.prepare(&table()).unwrap();
        dest.write_page(
            &part,
            b"{\"id\":1,\"title\":\"a\",\"labels\":[\"x\"]}\n{\"id\":2,\"title\":\"b\",\"labels\":[]}\n",
            None,
        )
        .unwrap();
        let checkpoint = Checkpoint { page_token: Some("/next".into()), ..Checkpoint::default() };
        dest.write_page(&part, b"{\"id\":1,\"title\":\"a2\",\"labels\":null}\n", Some(&checkpoint)).unwrap();
        assert_eq!(dest.load(&part).unwrap(), Some(checkpoint));
        let mut wider = table();
        wider.columns.push(Column { name: "upvotes".into(), field_type: FieldType::Integer });
        dest.prepare(&wider).unwrap();
        dest.write_page(&part, b"{\"id\":3,\"title\":\"c\",\"labels\":[],\"upvotes\":4}\n", None).unwrap();
        let rows: Vec<(i64, String, Option<String>)> =
            select3(&dest.db().unwrap().conn, "SELECT id, title, labels FROM issue ORDER BY id");
        assert_eq!(rows[0], (1, "a2".into(), None));
        assert_eq!(rows[1], (2, "b".into(), Some("[]".into())));
        assert_eq!(rows.len(), 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The table's ids, in order.
    fn ids(dest: &mut SqliteDestination) -> Vec<i64> {
        let mut statement = dest.db().unwrap().conn.prepare("SELECT id FROM issue ORDER BY id").unwrap();
        statement.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_page_with_a_record_it_cannot_take_fails_alone_and_leaves_nothing() {
        let (dir, mut dest) = fresh("checked");
        let part = part();
        dest.prepare(&table()).unwrap();
        dest.write_page(&part, b"{\"id\":1,\"title\":\"a\"}\n", None).unwrap();
        for (bad, why) in [
            (&b"{\"id\":null,\"title\":\"b\"}"[..], "record 2 of the page: its key id is null"),
            (b"{\"id\":\"x\",\"title\":\"b\"}", "record 2 of the page: its key id is not an integer: Text(\"x\")"),
            (b"{\"title\":\"b\"}", "record 2 of the page: it has no key id"),
            (b"{\"id\":3,\"title\":\"b\",\"nope\":1}", "record 2 of the page: table issue has no column named nope"),
            (b"{\"id\":3,\"title\":}", "record 2 of the page: not a JSON object: expected a value at line 1 column 17"),
        ] {
            let page = [&b"{\"id\":2,\"title\":\"b\"}\n"[..], bad, b"\n"].concat();
            let error = dest.write_page(&part, &page, None).unwrap_err();
            assert_eq!(format!("{error:#}"), why);
        }
        let checkpoint = Checkpoint { page_token: Some("/next".into()), ..Checkpoint::default() };
        dest.write_page(&part, b"{\"id\":4,\"title\":\"d\"}\n", Some(&checkpoint)).unwrap();
        dest.commit().unwrap().run().unwrap();
        assert_eq!(ids(&mut dest), [1, 4], "nothing of the refused pages");
        assert_eq!(dest.load(&part).unwrap(), Some(checkpoint));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_page_sqlite_fails_to_write_rolls_back_its_group_and_the_group_fails() {
        let (dir, mut dest) = fresh("rolled-back");
        let part = part();
        dest.prepare(&table()).unwrap();
        let first = Checkpoint { page_token: Some("/2".into()), ..Checkpoint::default() };
        dest.write_page(&part, b"{\"id\":1,\"title\":\"a\"}\n", Some(&first)).unwrap();
        dest.commit().unwrap().run().unwrap();
        // A trigger a user added refuses a row only as SQLite writes it.
        dest.db()
            .unwrap()
            .conn
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON issue WHEN NEW.title = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom is refused'); END",
            )
            .unwrap();
        let later = Checkpoint { page_token: Some("/3".into()), ..Checkpoint::default() };
        dest.write_page(&part, b"{\"id\":2,\"title\":\"b\"}\n", Some(&later)).unwrap();
        let other = PartitionKey { scope: "project-2".into(), ..part.clone() };
        // The page is checked and handed to the inserting thread: it fails there.
        dest.write_page(&other, b"{\"id\":3,\"title\":\"c\"}\n{\"id\":4,\"title\":\"boom\"}\n", None).unwrap();
        let why = "record 2 of the page: boom is refused: Error code 1811: A RAISE function within a trigger fired";
        // The rest of the group is refused, its commit too: none of it was kept.
        let refused = format!("{ROLLED_BACK}: {why}");
        let error = dest.write_page(&part, b"{\"id\":5,\"title\":\"e\"}\n", None).unwrap_err();
        assert_eq!(format!("{error:#}"), refused);
        assert_eq!(format!("{:#}", dest.save(&part, &later).unwrap_err()), refused);
        assert_eq!(format!("{:#}", dest.commit().err().expect("the commit fails")), refused);
        assert_eq!(ids(&mut dest), [1]);
        assert_eq!(dest.load(&part).unwrap(), Some(first));
        // The next group starts afresh.
        dest.write_page(&part, b"{\"id\":2,\"title\":\"b\"}\n", Some(&later)).unwrap();
        dest.commit().unwrap().run().unwrap();
        assert_eq!(ids(&mut dest), [1, 2]);
        assert_eq!(dest.load(&part).unwrap(), Some(later));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_inserting_threads_cpu_is_counted_by_the_time_finish_returns_and_abort_keeps_only_commits() {
        let (dir, mut dest) = fresh("threads");
        let meter = CpuMeter::default();
        dest.count_cpu_in(meter.clone());
        dest.prepare(&table()).unwrap();
        let page = |from: i64| -> Vec<u8> {
            (from..from + 1000).flat_map(|id| format!("{{\"id\":{id},\"title\":\"t\"}}\n").into_bytes()).collect()
        };
        for from in (0..20_000).step_by(1000) {
            dest.write_page(&part(), &page(from), None).unwrap();
        }
        dest.commit().unwrap().run().unwrap();
        dest.write_page(&part(), &page(20_000), None).unwrap();
        assert_eq!(meter.seconds(), 0.0, "counted as the thread ends");
        // The page after the commit is in flight, or inserted but not committed: abort drops it.
        Box::new(dest).abort().unwrap();
        assert!(meter.seconds() > 0.0, "20,000 upserts on the inserting thread");
        let mut dest = SqliteDestination::open(&dir.join("t.db")).unwrap();
        assert_eq!(ids(&mut dest).len(), 20_000);
        let meter = CpuMeter::default();
        dest.count_cpu_in(meter.clone());
        dest.prepare(&table()).unwrap();
        dest.write_page(&part(), &page(20_000), None).unwrap();
        Box::new(dest).finish().unwrap();
        assert!(meter.seconds() > 0.0);
        let mut dest = SqliteDestination::open(&dir.join("t.db")).unwrap();
        assert_eq!(ids(&mut dest).len(), 21_000, "finish commits");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rows_are_stored_in_the_order_they_arrive_and_the_key_is_an_index() {
        let (dir, mut dest) = fresh("order");
        let part = part();
        dest.prepare(&table()).unwrap();
        // Newest first, as GitLab lists them; then an update of the first row.
        dest.write_page(&part, b"{\"id\":30,\"title\":\"c\"}\n{\"id\":20,\"title\":\"b\"}\n", None).unwrap();
        dest.write_page(&part, b"{\"id\":10,\"title\":\"a\"}\n{\"id\":30,\"title\":\"c2\"}\n", None).unwrap();
        let stored: Vec<(i64, i64, String)> =
            select3(&dest.db().unwrap().conn, "SELECT rowid, id, title FROM issue ORDER BY rowid");
        assert_eq!(stored, [(1, 30, "c2".into()), (2, 20, "b".into()), (3, 10, "a".into())]);
        let page_size: u32 = dest.db().unwrap().conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(page_size, PAGE_SIZE);
        let key: String = dest
            .db()
            .unwrap()
            .conn
            .query_row("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'issue'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(key, "CREATE UNIQUE INDEX \"issue_primary_key\" ON \"issue\" (\"id\")");
        // A record without its key is refused, naming the key.
        let error = dest.write_page(&part, b"{\"title\":\"no id\"}\n", None).unwrap_err();
        assert_eq!(format!("{error:#}"), "record 1 of the page: it has no key id");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_table_an_earlier_version_made_keeps_its_primary_key() {
        let (dir, mut dest) = fresh("earlier");
        dest.db().unwrap().conn.execute_batch("CREATE TABLE issue (id INTEGER, title TEXT, PRIMARY KEY (id))").unwrap();
        let part = part();
        dest.prepare(&table()).unwrap();
        dest.write_page(&part, b"{\"id\":1,\"title\":\"a\"}\n{\"id\":1,\"title\":\"a2\",\"labels\":[]}\n", None)
            .unwrap();
        let rows: Vec<(i64, String, Option<String>)> =
            select3(&dest.db().unwrap().conn, "SELECT id, title, labels FROM issue");
        assert_eq!(rows, [(1, "a2".into(), Some("[]".into()))]);
        let indexes: i64 = dest
            .db()
            .unwrap()
            .conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexes, 1, "only the checkpoints' own index");
        let _ = std::fs::remove_dir_all(dir);
    }
}
