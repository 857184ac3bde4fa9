//! The PostgreSQL destination: a table per object, typed columns, upsert on the primary key, bulk loads
//! with `COPY`, and the checkpoints in the same database.
//!
//! Types: integer → bigint, number → double precision, boolean → boolean, string → text, date → date,
//! date-time → timestamptz, struct and list → jsonb. A field new to the schema adds a column
//! (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`); nothing is ever dropped.
//!
//! Each page is one transaction: its records are `COPY`ed (text format) into a temporary table, then
//! moved with one `INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE` (the last record wins should a
//! key appear twice in a page), and the partition's checkpoint is saved in the `_checkpoints` table of
//! [`crate::state::postgres`] before the commit: a page and its checkpoint land together or not at
//! all, whatever moment the process dies at. Text cannot hold the NUL character in PostgreSQL, so it is
//! dropped from strings.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::SinkExt;
use serde_json::{Map, Value};
use tokio_postgres::Client;

use super::{Column, Destination, TableSchema};
use crate::pg::{PgClient, PgUrl};
use crate::sandbox::wit::FieldType;
use crate::state::{self, Checkpoint, CheckpointStore, PartitionKey};

pub struct PostgresDestination {
    db: PgClient,
    tables: HashMap<String, TableSchema>,
}

impl PostgresDestination {
    /// Connect to `url` and make sure the checkpoint table exists.
    pub fn open(url: &PgUrl) -> Result<Self> {
        let db = PgClient::connect(url)?;
        db.run(|client| async move { state::postgres::create_table(&client).await })
            .context("cannot create the _checkpoints table")?;
        Ok(PostgresDestination { db, tables: HashMap::new() })
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

/// Append `text` to a COPY (text format) field, escaped.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => {}
            c => out.push(c),
        }
    }
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

/// Append `value` as a COPY field for a column of `field_type`.
fn push_field(out: &mut String, value: Option<&Value>, field_type: FieldType) {
    match (value, field_type) {
        (None | Some(Value::Null), _) => out.push_str("\\N"),
        (Some(value), FieldType::Struct | FieldType::List) => {
            let json = value.to_string();
            // jsonb refuses the \u0000 escape: drop NULs from the value first.
            let json = if json.contains("\\u0000") { without_nul(value.clone()).to_string() } else { json };
            push_escaped(out, &json);
        }
        (Some(Value::String(text)), _) => push_escaped(out, text),
        (Some(Value::Bool(b)), _) => out.push_str(if *b { "t" } else { "f" }),
        (Some(other), _) => push_escaped(out, &other.to_string()),
    }
}

/// One page, ready to load: the columns it has and its rows in COPY text format.
#[derive(Debug)]
struct Load {
    columns: Vec<Column>,
    copy: String,
}

/// Parse a page of NDJSON records for `table`. Its columns are those of the table that appear in its
/// records (a projection keeps only the selected fields), each record's row starting with its number.
fn page_load(table: &TableSchema, records: &[u8]) -> Result<Load> {
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    for (number, line) in super::record::lines(records).enumerate() {
        let record: Map<String, Value> = serde_json::from_slice(line)
            .with_context(|| format!("record {} of the page is not a JSON object", number + 1))?;
        if let Some(unknown) = record.keys().find(|k| !table.columns.iter().any(|c| &c.name == *k)) {
            bail!(
                "record {} has the field '{unknown}', which the schema of '{}' does not have",
                number + 1,
                table.name
            );
        }
        rows.push(record);
    }
    let columns: Vec<Column> =
        table.columns.iter().filter(|c| rows.iter().any(|r| r.contains_key(&c.name))).cloned().collect();
    for key in &table.primary_key {
        if !columns.iter().any(|c| &c.name == key) {
            bail!("the records of '{}' lack their primary key '{key}'", table.name);
        }
    }
    let mut copy = String::with_capacity(records.len() + rows.len() * 8);
    for (number, row) in rows.iter().enumerate() {
        copy.push_str(&number.to_string());
        for column in &columns {
            copy.push('\t');
            push_field(&mut copy, row.get(&column.name), column.field_type);
        }
        copy.push('\n');
    }
    Ok(Load { columns, copy })
}

/// The statements that load a page into `table`: create the staging table, COPY into it, upsert from it.
fn load_statements(table: &TableSchema, columns: &[Column]) -> [String; 3] {
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
        format!("CREATE TEMPORARY TABLE _page (_row bigint, {}) ON COMMIT DROP", typed.join(", ")),
        format!("COPY _page (_row, {}) FROM STDIN", names.join(", ")),
        format!(
            "INSERT INTO {table} ({names}) SELECT DISTINCT ON ({key}) {names} FROM _page ORDER BY {key}, _row DESC \
             ON CONFLICT ({key}) DO {action}",
            table = quote(&table.name),
            names = names.join(", "),
            key = key.join(", "),
        ),
    ]
}

impl Destination for PostgresDestination {
    fn prepare(&mut self, table: &TableSchema) -> Result<()> {
        if table.primary_key.is_empty() {
            bail!("'{}' has no primary key to upsert on", table.name);
        }
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
        let object = part.object.as_str();
        let table = self.tables.get(object).ok_or_else(|| anyhow!("table '{object}' was not prepared"))?;
        let load = page_load(table, records)?;
        let [create, copy, upsert] = load_statements(table, &load.columns);
        let data = Bytes::from(load.copy);
        let (part, checkpoint) = (part.clone(), checkpoint.cloned());
        self.db.run(|client| {
            in_transaction(client, |client| async move {
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
            })
        })?;
        Ok(None)
    }

    fn close_part(&mut self, _part: &PartitionKey) -> Result<()> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl CheckpointStore for PostgresDestination {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        let key = key.clone();
        self.db.run(|client| async move { state::postgres::load(&*client, &key).await })
    }

    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
        let (key, checkpoint) = (key.clone(), checkpoint.clone());
        self.db.run(|client| async move { state::postgres::save(&*client, &key, &checkpoint).await })
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
    fn records_outside_the_schema_or_without_their_key_are_refused() {
        let err = page_load(&table(), b"{\"id\":1,\"surprise\":2}\n").unwrap_err().to_string();
        assert!(err.contains("'surprise'"), "{err}");
        let err = page_load(&table(), b"{\"title\":\"x\"}\n").unwrap_err().to_string();
        assert!(err.contains("primary key 'id'"), "{err}");
    }

    #[test]
    fn the_upsert_keeps_the_last_record_of_a_key() {
        let table = table();
        let [create, copy, upsert] = load_statements(&table, &table.columns[..2]);
        assert_eq!(create, "CREATE TEMPORARY TABLE _page (_row bigint, \"id\" bigint, \"title\" text) ON COMMIT DROP");
        assert_eq!(copy, "COPY _page (_row, \"id\", \"title\") FROM STDIN");
        assert_eq!(
            upsert,
            "INSERT INTO \"issue\" (\"id\", \"title\") SELECT DISTINCT ON (\"id\") \"id\", \"title\" FROM _page \
             ORDER BY \"id\", _row DESC ON CONFLICT (\"id\") DO UPDATE SET \"title\" = excluded.\"title\""
        );
    }
}
