//! The PostgreSQL destination: a table per object, typed columns, upsert on the primary key, bulk loads
//! with `COPY`, and the checkpoints in the same database.
//!
//! Types: integer → bigint, number → double precision, boolean → boolean, string → text, date → date,
//! date-time → timestamptz, struct and list → jsonb. A field new to the schema adds a column
//! (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`); nothing is ever dropped.
//!
//! The pages of one group of the writer are one transaction, committed at the writer's commit
//! ([`Destination::commit`]): a commit (and its WAL flush) per group, not per page. Each page runs in
//! a savepoint: its records are `COPY`ed (text format) into a temporary staging table of its columns
//! (one per set of columns, kept for the session), then moved with one `INSERT ... SELECT ... ON
//! CONFLICT (key) DO UPDATE` (the last record wins should a key appear twice in a page), and the
//! partition's checkpoint is saved in the `_checkpoints` table of [`crate::state::postgres`]. A page
//! PostgreSQL refuses is rolled back to its savepoint and fails alone; the group's other pages stay.
//! A group holds at most [`SAVEPOINTS_PER_TRANSACTION`] jobs, so that its savepoints stay within what
//! PostgreSQL keeps in shared memory for each transaction. A page and its checkpoint land together or not at all, whatever moment the process dies at. Text
//! cannot hold the NUL character in PostgreSQL, so it is dropped from strings.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_postgres::Client;

use super::record::{self, ColumnPlaces, Scalar};
use super::{Column, Destination, Syncs, TableSchema};
use crate::pg::{PgClient, PgUrl};
use crate::sandbox::wit::FieldType;
use crate::state::{self, Checkpoint, CheckpointStore, PartitionKey};

pub struct PostgresDestination {
    db: PgClient,
    tables: HashMap<String, TableSchema>,
    /// The staging table of each set of columns of a table, by the table and its columns' names.
    staging: HashMap<(String, Vec<String>), String>,
    /// Whether the group's transaction is open.
    in_transaction: bool,
    /// Why the group's transaction can no longer commit (a statement failed outside a page's
    /// savepoint, or rolling back to it failed): its pages, checkpoints and commit are refused.
    broken: Option<String>,
}

/// Why the pages and checkpoints of a group whose transaction broke are refused.
const BROKEN: &str = "the pages written with this one were rolled back when PostgreSQL failed";

impl PostgresDestination {
    /// Connect to `url` and make sure the checkpoint table exists.
    pub fn open(url: &PgUrl) -> Result<Self> {
        let db = PgClient::connect(url)?;
        db.run(|client| async move { state::postgres::create_table(&client).await })
            .context("cannot create the _checkpoints table")?;
        Ok(PostgresDestination {
            db,
            tables: HashMap::new(),
            staging: HashMap::new(),
            in_transaction: false,
            broken: None,
        })
    }
}

/// `name` as an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Boolean => "boolean",
        FieldType::Integer => "bigint",
        FieldType::Number => "double precision",
        FieldType::String => "text",
        FieldType::Date => "date",
        FieldType::DateTime => "timestamptz",
        FieldType::Struct | FieldType::List => "jsonb",
    }
}

/// Run `body` in a transaction: committed if it succeeds, rolled back otherwise.
async fn in_transaction<F, Fut>(client: Arc<Client>, body: F) -> Result<(), tokio_postgres::Error>
where
    F: FnOnce(Arc<Client>) -> Fut,
    Fut: Future<Output = Result<(), tokio_postgres::Error>>,
{
    client.batch_execute("BEGIN").await?;
    match body(client.clone()).await {
        Ok(()) => client.batch_execute("COMMIT").await,
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

/// Append `text` to a COPY (text format) field, escaped, without its NUL characters. The bytes to
/// escape are ASCII, so the runs between them are copied whole.
fn push_escaped(out: &mut String, text: &str) {
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0 => "",
            _ => continue,
        };
        out.push_str(&text[start..at]);
        out.push_str(escaped);
        start = at + 1;
    }
    out.push_str(&text[start..]);
}

/// `value` without NUL characters in any of its strings (keys included).
fn without_nul(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('\0', "")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k.replace('\0', ""), without_nul(v))).collect())
        }
        other => other,
    }
}

/// Append a value, given as the JSON text the plugin wrote, as a COPY field for a column of
/// `field_type`: a struct or list as that text (jsonb reads it), a string unescaped, a boolean as
/// `t`/`f`, a number as written, null or a missing field as `\N`.
fn push_field(out: &mut String, raw: Option<&str>, field_type: FieldType) -> Result<()> {
    let Some(raw) = raw.filter(|raw| *raw != "null") else {
        out.push_str("\\N");
        return Ok(());
    };
    if matches!(field_type, FieldType::Struct | FieldType::List) {
        if raw.contains("\\u0000") {
            // jsonb refuses the \u0000 escape: drop NULs from the value first (rare: the slow path).
            let value: Value = serde_json::from_str(raw)?;
            push_escaped(out, &without_nul(value).to_string());
        } else {
            push_escaped(out, raw);
        }
        return Ok(());
    }
    match Scalar::of(raw)? {
        Scalar::Text(text) => push_escaped(out, &text),
        Scalar::Bool(value) => out.push_str(if value { "t" } else { "f" }),
        _ => push_escaped(out, raw),
    }
    Ok(())
}

/// One page, ready to load: the columns it has and its rows in COPY text format.
#[derive(Debug)]
struct Load {
    columns: Vec<Column>,
    copy: String,
}

/// Read a page of NDJSON records for `table` (with `json_scan`: each value as the JSON text the
/// plugin wrote, no tree built). Its columns are those of the table that appear in its records (a
/// projection keeps only the selected fields), each record's row starting with its number.
fn page_load(table: &TableSchema, records: &[u8]) -> Result<Load> {
    let width = table.columns.len();
    // Each record's values, column by column, one after the other.
    let mut values: Vec<Option<&str>> = Vec::with_capacity(100 * width);
    let mut present = vec![false; width];
    let mut places = ColumnPlaces::new(table.columns.iter().map(|c| c.name.as_str()));
    let mut fields = Vec::with_capacity(width);
    for (number, line) in record::lines(records).enumerate() {
        places.read(line, &mut fields).with_context(|| format!("record {} of the page", number + 1))?;
        if let Some(unknown) = places.unknown() {
            bail!(
                "record {} has the field '{}', which the schema of '{}' does not have",
                number + 1,
                fields[unknown].0,
                table.name
            );
        }
        for (column, present) in present.iter_mut().enumerate() {
            let value = places.field_of(column).map(|field| fields[field].1);
            *present |= value.is_some();
            values.push(value);
        }
    }
    let columns: Vec<Column> =
        table.columns.iter().zip(&present).filter(|(_, present)| **present).map(|(c, _)| c.clone()).collect();
    for key in &table.primary_key {
        if !columns.iter().any(|c| &c.name == key) {
            bail!("the records of '{}' lack their primary key '{key}'", table.name);
        }
    }
    let mut copy = String::with_capacity(records.len() + values.len() / width.max(1) * 8);
    for (number, row) in values.chunks(width.max(1)).enumerate() {
        copy.push_str(&number.to_string());
        for ((column, raw), _) in table.columns.iter().zip(row).zip(&present).filter(|(_, present)| **present) {
            copy.push('\t');
            push_field(&mut copy, *raw, column.field_type)
                .with_context(|| format!("record {} of the page, field {}", number + 1, column.name))?;
        }
        copy.push('\n');
    }
    Ok(Load { columns, copy })
}

/// The statements that load a page into `table` through the staging table `staging`: create it
/// (once a session), COPY into it, then upsert from it and empty it.
fn load_statements(table: &TableSchema, columns: &[Column], staging: &str) -> [String; 3] {
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let typed: Vec<String> = columns.iter().map(|c| format!("{} {}", quote(&c.name), sql_type(c.field_type))).collect();
    let key: Vec<String> = table.primary_key.iter().map(|k| quote(k)).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name))
        .map(|c| format!("{0} = excluded.{0}", quote(&c.name)))
        .collect();
    let action = if updates.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", updates.join(", ")) };
    [
        format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (_row bigint, {}) ON COMMIT DELETE ROWS",
            typed.join(", ")
        ),
        format!("COPY {staging} (_row, {}) FROM STDIN", names.join(", ")),
        format!(
            "INSERT INTO {table} ({names}) SELECT DISTINCT ON ({key}) {names} FROM {staging} ORDER BY {key}, _row DESC \
             ON CONFLICT ({key}) DO {action}; DELETE FROM {staging}",
            table = quote(&table.name),
            names = names.join(", "),
            key = key.join(", "),
        ),
    ]
}

impl PostgresDestination {
    /// The staging table for pages of `table` with `columns`: `_page_N`, N counting the sets of
    /// columns met in this session.
    fn staging(&mut self, table: &TableSchema, columns: &[Column]) -> String {
        let count = self.staging.len();
        let key = (table.name.clone(), columns.iter().map(|c| c.name.clone()).collect());
        self.staging.entry(key).or_insert_with(|| format!("_page_{count}")).clone()
    }

    /// Refuse what belongs to a group whose transaction broke.
    fn not_broken(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(anyhow!("{BROKEN}: {why}")),
            None => Ok(()),
        }
    }

    /// Run `statement` (or nothing) in the group's transaction, which it opens if needed; a failure
    /// breaks it.
    fn in_group(&mut self, statement: &str) -> Result<()> {
        self.not_broken()?;
        let sql = match (self.in_transaction, statement) {
            (true, "") => return Ok(()),
            (true, _) => statement.to_owned(),
            (false, _) => format!("BEGIN; {statement}"),
        };
        let done = self.db.run(|client| async move { client.batch_execute(&sql).await });
        self.in_transaction = true;
        done.inspect_err(|error| self.broken = Some(format!("{error:#}")))
    }
}

/// The most subtransactions a PostgreSQL backend lists in shared memory for its transaction
/// (`PGPROC_MAX_CACHED_SUBXIDS`): past them, every other session's snapshot looks further (in
/// `pg_subtrans`) for as long as the transaction is open. Each page's savepoint is one.
pub const SAVEPOINTS_PER_TRANSACTION: usize = 64;

impl Destination for PostgresDestination {
    fn most_jobs_per_commit(&self) -> usize {
        SAVEPOINTS_PER_TRANSACTION
    }

    fn prepare(&mut self, table: &TableSchema) -> Result<()> {
        if table.primary_key.is_empty() {
            bail!("'{}' has no primary key to upsert on", table.name);
        }
        // Tables are prepared before any page; should a group be open, its own transaction ends first.
        self.commit()?.run()?;
        let name = quote(&table.name);
        let columns: Vec<String> =
            table.columns.iter().map(|c| format!("{} {}", quote(&c.name), sql_type(c.field_type))).collect();
        let key: Vec<String> = table.primary_key.iter().map(|k| quote(k)).collect();
        let mut sql = vec![
            // Hosts preparing the same table at once take turns.
            format!("SELECT pg_advisory_xact_lock(hashtext({}))", literal(&format!("table {}", table.name))),
            format!("CREATE TABLE IF NOT EXISTS {name} ({}, PRIMARY KEY ({}))", columns.join(", "), key.join(", ")),
        ];
        sql.extend(table.columns.iter().map(|c| {
            format!("ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {} {}", quote(&c.name), sql_type(c.field_type))
        }));
        let batch = sql.join(";\n");
        self.db
            .run(|client| in_transaction(client, |client| async move { client.batch_execute(&batch).await }))
            .with_context(|| format!("cannot create or widen the table {name}"))?;
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
        self.not_broken()?;
        let object = part.object.as_str();
        let table = self.tables.get(object).ok_or_else(|| anyhow!("table '{object}' was not prepared"))?.clone();
        // Everything that could refuse the page in Rust is checked before any of it is sent.
        let load = page_load(&table, records)?;
        let staging = self.staging(&table, &load.columns);
        let [create, copy, upsert] = load_statements(&table, &load.columns, &staging);
        self.in_group("SAVEPOINT page")?;
        let data = Bytes::from(load.copy);
        let (part, checkpoint) = (part.clone(), checkpoint.cloned());
        let written = self.db.run(|client| async move {
            client.batch_execute(&create).await?;
            let sink = client.copy_in(&copy).await?;
            futures_util::pin_mut!(sink);
            sink.send(data).await?;
            sink.finish().await?;
            client.batch_execute(&upsert).await?;
            if let Some(checkpoint) = checkpoint {
                state::postgres::save(&*client, &part, &checkpoint).await?;
            }
            Ok(())
        });
        match written {
            Ok(()) => self.in_group("RELEASE SAVEPOINT page")?,
            // The page leaves nothing behind; the group's other pages stay.
            Err(error) => {
                self.in_group("ROLLBACK TO SAVEPOINT page; RELEASE SAVEPOINT page")?;
                return Err(error);
            }
        }
        Ok(None)
    }

    fn commit(&mut self) -> Result<Syncs> {
        if let Some(why) = self.broken.take() {
            // The next group starts afresh.
            self.in_transaction = false;
            let _ = self.db.run(|client| async move { client.batch_execute("ROLLBACK").await });
            bail!("{BROKEN}: {why}");
        }
        if self.in_transaction {
            self.in_transaction = false;
            self.db
                .run(|client| async move { client.batch_execute("COMMIT").await })
                .context("cannot commit the pages to PostgreSQL")?;
        }
        Ok(Syncs::default())
    }

    fn close_part(&mut self, _part: &PartitionKey) -> Result<()> {
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.commit()?.run()
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl CheckpointStore for PostgresDestination {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        let key = key.clone();
        let loaded = self.db.run(|client| async move { state::postgres::load(&*client, &key).await });
        // A statement that fails inside the group's transaction aborts it: its COMMIT would only
        // roll it back, so the group fails instead of passing for committed.
        if self.in_transaction { loaded.inspect_err(|error| self.broken = Some(format!("{error:#}"))) } else { loaded }
    }

    /// Saved in the group's transaction (opened if need be), durable at its commit.
    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
        self.in_group("")?;
        let (key, checkpoint) = (key.clone(), checkpoint.clone());
        let saved = self.db.run(|client| async move { state::postgres::save(&*client, &key, &checkpoint).await });
        saved.inspect_err(|error| self.broken = Some(format!("{error:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableSchema {
        let column = |name: &str, field_type| Column { name: name.into(), field_type };
        TableSchema {
            name: "issue".into(),
            columns: vec![
                column("id", FieldType::Integer),
                column("title", FieldType::String),
                column("closed", FieldType::Boolean),
                column("author", FieldType::Struct),
                column("weight", FieldType::Number),
            ],
            primary_key: vec!["id".into()],
        }
    }

    #[test]
    fn pages_become_escaped_copy_rows_of_the_fields_present() {
        let records = b"{\"id\":1,\"title\":\"tab\\there\\\\ and\\nnew\\u0000line\",\"closed\":true,\"author\":{\"n\":\"a\\u0000b\"}}\n{\"id\":2,\"title\":null,\"closed\":false,\"author\":null}\n";
        let load = page_load(&table(), records).unwrap();
        let names: Vec<&str> = load.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "title", "closed", "author"]);
        assert_eq!(load.copy, "0\t1\ttab\\there\\\\ and\\nnewline\tt\t{\"n\":\"ab\"}\n1\t2\t\\N\tf\t\\N\n");
    }

    #[test]
    fn rows_follow_the_columns_whatever_the_order_of_the_fields() {
        let records = concat!(
            "{\"id\":1,\"weight\":1.50}\n{\"id\":2,\"weight\":2}\n{\"weight\":3e0,\"id\":3}\n",
            "{\"id\":4,\"closed\":true,\"author\":[\"tab\\t\"]}\n"
        );
        let load = page_load(&table(), records.as_bytes()).unwrap();
        let names: Vec<&str> = load.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "closed", "author", "weight"]);
        assert_eq!(
            load.copy,
            concat!("0\t1\t\\N\t\\N\t1.50\n1\t2\t\\N\t\\N\t2\n2\t3\t\\N\t\\N\t3e0\n", "3\t4\tt\t[\"tab\\\\t\"]\t\\N\n")
        );
        let err = page_load(&table(), b"{\"id\":1}\n{\"id\":2,}\n").unwrap_err();
        assert!(format!("{err:#}").contains("record 2 of the page"), "{err:#}");
    }

    #[test]
    fn records_outside_the_schema_or_without_their_key_are_refused() {
        let err = page_load(&table(), b"{\"id\":1,\"surprise\":2}\n").unwrap_err().to_string();
        assert!(err.contains("'surprise'"), "{err}");
        let err = page_load(&table(), b"{\"title\":\"x\"}\n").unwrap_err().to_string();
        assert!(err.contains("primary key 'id'"), "{err}");
    }

    #[test]
    fn the_upsert_keeps_the_last_record_of_a_key() {
        let table = table();
        let [create, copy, upsert] = load_statements(&table, &table.columns[..2], "_page_0");
        assert_eq!(
            create,
            "CREATE TEMPORARY TABLE IF NOT EXISTS _page_0 (_row bigint, \"id\" bigint, \"title\" text) ON COMMIT DELETE ROWS"
        );
        assert_eq!(copy, "COPY _page_0 (_row, \"id\", \"title\") FROM STDIN");
        assert_eq!(
            upsert,
            "INSERT INTO \"issue\" (\"id\", \"title\") SELECT DISTINCT ON (\"id\") \"id\", \"title\" FROM _page_0 \
             ORDER BY \"id\", _row DESC ON CONFLICT (\"id\") DO UPDATE SET \"title\" = excluded.\"title\"; DELETE FROM _page_0"
        );
    }
}
