//! Checkpoints in SQLite: the `_checkpoints` table, in a file of its own (`--state sqlite:PATH`) or
//! beside the tables of a SQLite destination, where a page and its checkpoint commit in one
//! transaction.

use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{Checkpoint, CheckpointReader, CheckpointStore, PartitionKey, ReaderOpener};

/// Columns added after the table's first version: (name, type), added to older tables when opened.
const ADDED_COLUMNS: [(&str, &str); 2] = [("selection", "TEXT"), ("read_mode", "TEXT")];

/// Open (creating it, and its folder, if needed) the SQLite database file at `path`, which `what`
/// names for people (`the SQLite database`). A folder at `path` is refused by name: SQLite's own
/// error for it is only "unable to open database file".
pub fn open_file(path: &Path, what: &str) -> Result<Connection> {
    if path.is_dir() {
        bail!(
            "cannot open {what} {}: it is a folder; name a database file, such as {}",
            path.display(),
            path.join("gitlab.db").display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // SQLite syncs the folder its files are in; the folders made for them are synced here.
        crate::dest::create_folders_durably(dir)?;
    }
    Connection::open(path).with_context(|| format!("cannot open {what} {}", path.display()))
}

/// Create the checkpoint table in `db` if it is missing (and add the columns an older one lacks).
pub fn create_table(db: &Connection) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS _checkpoints (
            flow TEXT NOT NULL,
            object TEXT NOT NULL,
            scope TEXT NOT NULL,
            page_token TEXT,
            read_high TEXT,
            watermark TEXT,
            dest_marker TEXT,
            selection TEXT,
            read_mode TEXT,
            saved_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (flow, object, scope)
        )",
    )
    .context("cannot create the _checkpoints table")?;
    let existing: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info('_checkpoints')")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, sql_type) in ADDED_COLUMNS.iter().filter(|(name, _)| !existing.iter().any(|e| e == name)) {
        db.execute_batch(&format!("ALTER TABLE _checkpoints ADD COLUMN {name} {sql_type}"))
            .with_context(|| format!("cannot add the column {name} to the _checkpoints table"))?;
    }
    Ok(())
}

/// The checkpoint of `key` in `db`.
pub fn load(db: &Connection, key: &PartitionKey) -> Result<Option<Checkpoint>> {
    // Cached, as `save`'s is: every partition loads its checkpoint, and parsing the statement each
    // time was 2.5 % of a run of 2,000 one-page partitions.
    db.prepare_cached(
        "SELECT page_token, read_high, watermark, dest_marker, selection, read_mode FROM _checkpoints
         WHERE flow = ?1 AND object = ?2 AND scope = ?3",
    )
    .and_then(|mut statement| {
        statement
            .query_row(params![key.flow, key.object, key.scope], |row| {
                Ok(Checkpoint {
                    page_token: row.get(0)?,
                    read_high: row.get(1)?,
                    watermark: row.get(2)?,
                    dest_marker: row.get(3)?,
                    selection: row.get(4)?,
                    read_mode: row.get(5)?,
                })
            })
            .optional()
    })
    .with_context(|| format!("cannot read the checkpoint of {key}"))
}

/// Replace the checkpoint of `key` in `db` (inside the caller's transaction, if any).
pub fn save(db: &Connection, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
    // Cached: a checkpoint is saved after every page, and parsing the statement each time was 1.5 %
    // of the destination writer's time.
    let mut statement = db
        .prepare_cached(
            "INSERT INTO _checkpoints
            (flow, object, scope, page_token, read_high, watermark, dest_marker, selection, read_mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (flow, object, scope) DO UPDATE SET
            page_token = excluded.page_token, read_high = excluded.read_high,
            watermark = excluded.watermark, dest_marker = excluded.dest_marker,
            selection = excluded.selection, read_mode = excluded.read_mode,
            saved_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .with_context(|| format!("cannot save the checkpoint of {key}"))?;
    statement
        .execute(params![
            key.flow,
            key.object,
            key.scope,
            checkpoint.page_token,
            checkpoint.read_high,
            checkpoint.watermark,
            checkpoint.dest_marker,
            checkpoint.selection,
            checkpoint.read_mode
        ])
        .with_context(|| format!("cannot save the checkpoint of {key}"))?;
    Ok(())
}

/// How to open a read-only connection to the checkpoints of the database `db` is connected to
/// (`None` for a database in memory).
pub fn reader(db: &Connection) -> Option<ReaderOpener> {
    let path = db.path().filter(|path| !path.is_empty())?.to_owned();
    Some(Box::new(move || {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let reader = Connection::open_with_flags(&path, flags)
            .and_then(|reader| reader.busy_timeout(std::time::Duration::from_secs(5)).map(|()| reader))
            .with_context(|| format!("cannot open the checkpoints in {path} a second time, to read them"))?;
        Ok(Box::new(SqliteReader(reader)) as Box<dyn CheckpointReader>)
    }))
}

/// A read-only connection to a SQLite database's checkpoints.
struct SqliteReader(Connection);

impl CheckpointReader for SqliteReader {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        load(&self.0, key)
    }
}

/// A checkpoint store in a SQLite file of its own.
pub struct SqliteCheckpoints {
    db: Connection,
}

impl SqliteCheckpoints {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = open_file(path, "the checkpoint database")?;
        db.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
            .with_context(|| format!("cannot configure the checkpoint database {}", path.display()))?;
        create_table(&db)?;
        Ok(SqliteCheckpoints { db })
    }
}

impl CheckpointStore for SqliteCheckpoints {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        load(&self.db, key)
    }

    fn reader(&self) -> Option<ReaderOpener> {
        reader(&self.db)
    }

    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
        save(&self.db, key, checkpoint)
    }

    fn save_all(&mut self, checkpoints: &[(PartitionKey, Checkpoint)]) -> Result<()> {
        let tx = self.db.transaction()?;
        for (key, checkpoint) in checkpoints {
            save(&tx, key, checkpoint)?;
        }
        Ok(tx.commit()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_by_partition() {
        let dir = tempfile_dir();
        let mut store = SqliteCheckpoints::open(&dir.join("state.db")).unwrap();
        let key = PartitionKey { flow: "f".into(), object: "issue".into(), scope: "project-1".into() };
        assert_eq!(store.load(&key).unwrap(), None);
        let checkpoint = Checkpoint {
            page_token: Some("/projects/1/issues?page=2".into()),
            read_high: Some("2024-01-01T00:00:00.000Z".into()),
            watermark: None,
            dest_marker: Some("part:120".into()),
            selection: Some(r#"{"object":"issue"}"#.into()),
            read_mode: Some("incremental".into()),
        };
        store.save(&key, &checkpoint).unwrap();
        store.save(&key, &checkpoint).unwrap();
        assert_eq!(store.load(&key).unwrap(), Some(checkpoint));
        let other = PartitionKey { scope: "project-2".into(), ..key };
        assert_eq!(store.load(&other).unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_older_table_gains_the_new_columns() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE _checkpoints (flow TEXT NOT NULL, object TEXT NOT NULL, scope TEXT NOT NULL,
             page_token TEXT, read_high TEXT, watermark TEXT, dest_marker TEXT,
             saved_at TEXT NOT NULL DEFAULT 'x', PRIMARY KEY (flow, object, scope))",
        )
        .unwrap();
        create_table(&db).unwrap();
        create_table(&db).unwrap();
        let key = PartitionKey { flow: "f".into(), object: "issue".into(), scope: "project-1".into() };
        let checkpoint = Checkpoint { read_mode: Some("full".into()), ..Checkpoint::default() };
        save(&db, &key, &checkpoint).unwrap();
        assert_eq!(load(&db, &key).unwrap(), Some(checkpoint));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("checkpoints-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
