//! The SQLite destination: a table per object, typed columns, upsert on the primary key.
//!
//! The pages of one group of the writer are one transaction. A page is read and checked whole before
//! any of it is written ([`CheckedPage`]: every record parsed, every key present, every statement
//! prepared), so a page the plugin got wrong fails alone and leaves nothing. A page that then fails
//! as SQLite writes it failed for a reason of SQLite's own (a full disk, an I/O error, a trigger a
//! user added): the transaction is rolled back and the whole group fails, to be read again. A
//! savepoint per page would roll back that page alone, but SQLite copies each page of the database
//! it touches first into the savepoint's journal: a tenth of the writer's time for a rare failure.
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
mod upsert;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use json_scan::{Field, KeyOrder};
use rusqlite::Connection;

use super::record::{self, Scalar};
use super::syncs::Syncs;
use super::{Destination, TableSchema};
use crate::sandbox::wit::FieldType;
use crate::state::{self, Checkpoint, CheckpointStore, PartitionKey, ReaderOpener};
use backfill::{Backfill, LOG_LIMIT};
use upsert::Upsert;

/// The page size of a database the destination creates: a page holds about a dozen issues (SQLite's
/// default, 4 KiB, holds one ~2.7 KB row and leaves the rest empty). Appending rows, 32 KiB was the
/// fastest (50,000 issues: 0.62–0.85 s; 16 KiB 0.67–0.89 s, 4 KiB 1.02–1.20 s). The price is in
/// updates of rows scattered over a large table, each of which rewrites a whole page: 10,000 of
/// 50,000 rows updated at random took 1.5 s against 1.2 s with 16 KiB and 0.7 s with 4 KiB.
const PAGE_SIZE: u32 = 32 << 10;

/// Why the pages and checkpoints of a group rolled back are refused.
const ROLLED_BACK: &str = "the pages written with this one were rolled back when one failed";

/// Refuse what belongs to a group whose transaction was rolled back (`rolled_back` says why).
fn not_rolled_back(rolled_back: Option<&str>) -> Result<()> {
    match rolled_back {
        Some(why) => Err(anyhow!("{ROLLED_BACK}: {why}")),
        None => Ok(()),
    }
}

pub struct SqliteDestination {
    /// Statements on `db`: declared before it, so dropped before it closes.
    upserts: Upserts,
    db: Connection,
    /// The write-ahead log, `FILE-wal`.
    wal: PathBuf,
    tables: HashMap<String, TableSchema>,
    /// Whether a transaction holds pages not yet committed.
    in_transaction: bool,
    /// Why the group's transaction was rolled back, when a page failed half-written: the group's
    /// other pages, its checkpoints and its commit fail too.
    rolled_back: Option<String>,
    backfill: Backfill,
}

impl SqliteDestination {
    pub fn open(path: &Path) -> Result<Self> {
        let db = state::sqlite::open_file(path, "the SQLite database")?;
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
        Ok(SqliteDestination {
            upserts: Upserts::default(),
            db,
            wal: PathBuf::from(wal),
            tables: HashMap::new(),
            in_transaction: false,
            rolled_back: None,
            backfill,
        })
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
        if !table_exists(&self.db, &table.name)? {
            self.db.execute_batch(&create_table(table))?;
        }
        let existing: Vec<String> = self
            .db
            .prepare(&format!("PRAGMA table_info({name})"))?
            .query_map([], |row| row.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        for column in table.columns.iter().filter(|c| !existing.contains(&c.name)) {
            self.db.execute_batch(&format!(
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
        not_rolled_back(self.rolled_back.as_deref())?;
        if !self.in_transaction {
            self.backfill.wait_if_long();
            self.db.execute_batch("BEGIN")?;
            self.in_transaction = true;
        }
        // Everything that could refuse the page is checked before any of it is written...
        let page = CheckedPage::read(&self.db, &mut self.upserts, table, records)?;
        self.backfill.wrote(records.len());
        let written = page.write(&mut self.upserts).and_then(|()| match checkpoint {
            Some(checkpoint) => state::sqlite::save(&self.db, part, checkpoint),
            None => Ok(()),
        });
        // ... so a page that fails half-written failed in SQLite itself (a full disk, an I/O error, a
        // trigger a user added): the group's transaction is rolled back, and the group fails.
        if let Err(error) = written {
            self.in_transaction = false;
            self.rolled_back = Some(format!("{error:#}"));
            // SQLite may have rolled it back itself (after SQLITE_FULL, say).
            if !self.db.is_autocommit() {
                self.db.execute_batch("ROLLBACK").context("cannot roll back a page SQLite failed to write")?;
            }
            return Err(error);
        }
        Ok(None)
    }

    fn commit(&mut self) -> Result<Syncs> {
        // The group's pages fail with the page that rolled them back; the next group starts afresh.
        not_rolled_back(self.rolled_back.take().as_deref())?;
        let mut syncs = Syncs::default();
        if self.in_transaction {
            self.db.execute_batch("COMMIT").context("cannot commit the pages to SQLite")?;
            self.in_transaction = false;
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

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.commit()?.run()?;
        // SQLite closes a connection only once its statements are finalized.
        self.upserts = Upserts::default();
        self.db.close().map_err(|(_, e)| e)?;
        self.backfill.close().context("cannot close the SQLite database")
    }
}

impl CheckpointStore for SqliteDestination {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        state::sqlite::load(&self.db, key)
    }

    fn reader(&self) -> Option<ReaderOpener> {
        state::sqlite::reader(&self.db)
    }

    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
        // Not once the pages it follows were rolled back.
        not_rolled_back(self.rolled_back.as_deref())?;
        state::sqlite::save(&self.db, key, checkpoint)
    }
}

/// A page of records read and checked against its table, not yet written: every value parsed, every
/// key present, every statement prepared.
struct CheckedPage<'page> {
    /// The values of every record, one after the other.
    values: Vec<Scalar<'page>>,
    /// Each record: where its values end in `values`, and its upsert in [`Upserts`].
    records: Vec<(usize, usize)>,
}

impl<'page> CheckedPage<'page> {
    fn read(db: &Connection, upserts: &mut Upserts, table: &TableSchema, page: &'page [u8]) -> Result<Self> {
        let mut checked = CheckedPage { values: Vec::with_capacity(4096), records: Vec::with_capacity(100) };
        // One vector of fields for the whole page, cleared for each record.
        let mut fields = Vec::with_capacity(64);
        let mut order = KeyOrder::default();
        // Records of a page have the same fields, as a rule: one statement until they change.
        let mut current = None;
        for (number, line) in record::lines(page).enumerate() {
            let what = || format!("record {} of the page", number + 1);
            let same = record::fields_in_order(line, &mut order, &mut fields).with_context(what)?;
            let start = checked.values.len();
            for (_, raw) in &fields {
                checked.values.push(Scalar::of(raw).with_context(what)?);
            }
            let upsert = match current {
                Some(at) if same => at,
                _ => upserts.find(db, table, &fields).with_context(what)?,
            };
            current = Some(upsert);
            upserts.0[upsert].check_key(&checked.values[start..]).with_context(what)?;
            checked.records.push((checked.values.len(), upsert));
        }
        Ok(checked)
    }

    /// Upsert every record.
    fn write(&self, upserts: &mut Upserts) -> Result<()> {
        let mut start = 0;
        for (number, &(end, upsert)) in self.records.iter().enumerate() {
            let values = &self.values[start..end];
            upserts.0[upsert].upsert.execute(values).with_context(|| format!("record {} of the page", number + 1))?;
            start = end;
        }
        Ok(())
    }
}

/// The upserts prepared so far, each with its table and columns: the records of a page share their
/// fields, as a rule, and so do the pages of an object.
#[derive(Default)]
struct Upserts(Vec<Prepared>);

/// An upsert of some columns into a table.
struct Prepared {
    table: String,
    columns: Vec<String>,
    /// Where the table's key columns are among `columns`, and whether each is an integer.
    key: Vec<(usize, bool)>,
    upsert: Upsert,
}

impl Prepared {
    /// Refuse a record whose key is missing, null, or not an integer where the key is one (SQLite
    /// would, but only as it writes it).
    fn check_key(&self, values: &[Scalar<'_>]) -> Result<()> {
        for &(at, integer) in &self.key {
            match &values[at] {
                Scalar::Null => bail!("its key {} is null", self.columns[at]),
                Scalar::Integer(_) => {}
                other if integer => bail!("its key {} is not an integer: {other:?}", self.columns[at]),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Upserts {
    /// So many different sets of columns and the cache starts over.
    const LIMIT: usize = 16;

    /// The index of the upsert of `fields` into `table`, prepared if it is new.
    fn find(&mut self, db: &Connection, table: &TableSchema, fields: &[Field<'_>]) -> Result<usize> {
        let same_columns = |columns: &[String]| {
            columns.len() == fields.len() && columns.iter().zip(fields).all(|(column, (name, _))| column == name)
        };
        if let Some(found) = self.0.iter().position(|p| p.table == table.name && same_columns(&p.columns)) {
            return Ok(found);
        }
        let columns: Vec<String> = fields.iter().map(|(name, _)| name.to_string()).collect();
        let key = table
            .primary_key
            .iter()
            .map(|name| {
                let at = columns.iter().position(|c| c == name).ok_or_else(|| anyhow!("it has no key {name}"))?;
                let integer = table.columns.iter().any(|c| c.name == *name && c.field_type == FieldType::Integer);
                Ok((at, integer))
            })
            .collect::<Result<_>>()?;
        if self.0.len() == Self::LIMIT {
            self.0.clear();
        }
        // SAFETY: the destination drops its upserts before its connection, and clears them before
        // it closes it.
        let upsert = unsafe { Upsert::prepare(db, &upsert(table, &columns)) }?;
        self.0.push(Prepared { table: table.name.clone(), columns, key, upsert });
        Ok(self.0.len() - 1)
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
            select3(&dest.db, "SELECT id, title, labels FROM issue ORDER BY id");
        assert_eq!(rows[0], (1, "a2".into(), None));
        assert_eq!(rows[1], (2, "b".into(), Some("[]".into())));
        assert_eq!(rows.len(), 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The table's ids, in order.
    fn ids(dest: &SqliteDestination) -> Vec<i64> {
        let mut statement = dest.db.prepare("SELECT id FROM issue ORDER BY id").unwrap();
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
            (
                b"{\"id\":3,\"title\":\"b\",\"nope\":1}",
                "record 2 of the page: table issue has no column named nope: Error code 1: SQL error or missing database",
            ),
            (b"{\"id\":3,\"title\":}", "record 2 of the page: not a JSON object: expected a value at line 1 column 17"),
        ] {
            let page = [&b"{\"id\":2,\"title\":\"b\"}\n"[..], bad, b"\n"].concat();
            let error = dest.write_page(&part, &page, None).unwrap_err();
            assert_eq!(format!("{error:#}"), why);
        }
        let checkpoint = Checkpoint { page_token: Some("/next".into()), ..Checkpoint::default() };
        dest.write_page(&part, b"{\"id\":4,\"title\":\"d\"}\n", Some(&checkpoint)).unwrap();
        dest.commit().unwrap().run().unwrap();
        assert_eq!(ids(&dest), [1, 4], "nothing of the refused pages");
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
        dest.db
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON issue WHEN NEW.title = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom is refused'); END",
            )
            .unwrap();
        let later = Checkpoint { page_token: Some("/3".into()), ..Checkpoint::default() };
        dest.write_page(&part, b"{\"id\":2,\"title\":\"b\"}\n", Some(&later)).unwrap();
        let other = PartitionKey { scope: "project-2".into(), ..part.clone() };
        let error =
            dest.write_page(&other, b"{\"id\":3,\"title\":\"c\"}\n{\"id\":4,\"title\":\"boom\"}\n", None).unwrap_err();
        let why = "record 2 of the page: boom is refused: Error code 1811: A RAISE function within a trigger fired";
        assert_eq!(format!("{error:#}"), why);
        // The rest of the group is refused, its commit too: none of it was kept.
        let refused = format!("{ROLLED_BACK}: {why}");
        let error = dest.write_page(&part, b"{\"id\":5,\"title\":\"e\"}\n", None).unwrap_err();
        assert_eq!(format!("{error:#}"), refused);
        assert_eq!(format!("{:#}", dest.save(&part, &later).unwrap_err()), refused);
        assert_eq!(format!("{:#}", dest.commit().err().expect("the commit fails")), refused);
        assert_eq!(ids(&dest), [1]);
        assert_eq!(dest.load(&part).unwrap(), Some(first));
        // The next group starts afresh.
        dest.write_page(&part, b"{\"id\":2,\"title\":\"b\"}\n", Some(&later)).unwrap();
        dest.commit().unwrap().run().unwrap();
        assert_eq!(ids(&dest), [1, 2]);
        assert_eq!(dest.load(&part).unwrap(), Some(later));
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
        let stored: Vec<(i64, i64, String)> = select3(&dest.db, "SELECT rowid, id, title FROM issue ORDER BY rowid");
        assert_eq!(stored, [(1, 30, "c2".into()), (2, 20, "b".into()), (3, 10, "a".into())]);
        let page_size: u32 = dest.db.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(page_size, PAGE_SIZE);
        let key: String = dest
            .db
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
        dest.db.execute_batch("CREATE TABLE issue (id INTEGER, title TEXT, PRIMARY KEY (id))").unwrap();
        let part = part();
        dest.prepare(&table()).unwrap();
        dest.write_page(&part, b"{\"id\":1,\"title\":\"a\"}\n{\"id\":1,\"title\":\"a2\",\"labels\":[]}\n", None)
            .unwrap();
        let rows: Vec<(i64, String, Option<String>)> = select3(&dest.db, "SELECT id, title, labels FROM issue");
        assert_eq!(rows, [(1, "a2".into(), Some("[]".into()))]);
        let indexes: i64 =
            dest.db.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index'", [], |r| r.get(0)).unwrap();
        assert_eq!(indexes, 1, "only the checkpoints' own index");
        let _ = std::fs::remove_dir_all(dir);
    }
}
