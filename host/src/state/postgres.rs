//! Checkpoints in PostgreSQL: the `_checkpoints` table, in a database several hosts can share
//! (`--state postgres://...`) or beside the tables of a PostgreSQL destination, where a page and its
//! checkpoint commit in one transaction.
//!
//! The table has the columns of [`crate::state::sqlite`]'s, keyed by (flow, object, scope); each save
//! is one upsert, so hosts saving different partitions never wait on each other.

use std::sync::Arc;

use anyhow::Result;
use tokio_postgres::{Client, GenericClient};

use super::{Checkpoint, CheckpointStore, PartitionKey};
use crate::pg::{PgClient, PgUrl};

/// Create the checkpoint table if it is missing. Hosts starting together serialize on an advisory
/// lock, since `CREATE TABLE IF NOT EXISTS` alone can race.
pub async fn create_table(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('_checkpoints'));
             CREATE TABLE IF NOT EXISTS _checkpoints (
                flow text NOT NULL,
                object text NOT NULL,
                scope text NOT NULL,
                page_token text,
                read_high text,
                watermark text,
                dest_marker text,
                selection text,
                read_mode text,
                saved_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (flow, object, scope)
             );
             ALTER TABLE _checkpoints ADD COLUMN IF NOT EXISTS selection text;
             ALTER TABLE _checkpoints ADD COLUMN IF NOT EXISTS read_mode text;
             COMMIT;",
        )
        .await
}

/// The checkpoint of `key`.
pub async fn load(
    client: &impl GenericClient,
    key: &PartitionKey,
) -> Result<Option<Checkpoint>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT page_token, read_high, watermark, dest_marker, selection, read_mode FROM _checkpoints
             WHERE flow = $1 AND object = $2 AND scope = $3",
            &[&key.flow, &key.object, &key.scope],
        )
        .await?;
    Ok(row.map(|row| Checkpoint {
        page_token: row.get(0),
        read_high: row.get(1),
        watermark: row.get(2),
        dest_marker: row.get(3),
        selection: row.get(4),
        read_mode: row.get(5),
    }))
}

/// Replace the checkpoint of `key` (inside the caller's transaction, if any).
pub async fn save(
    client: &impl GenericClient,
    key: &PartitionKey,
    checkpoint: &Checkpoint,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO _checkpoints
                (flow, object, scope, page_token, read_high, watermark, dest_marker, selection, read_mode)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (flow, object, scope) DO UPDATE SET
                page_token = excluded.page_token, read_high = excluded.read_high,
                watermark = excluded.watermark, dest_marker = excluded.dest_marker,
                selection = excluded.selection, read_mode = excluded.read_mode, saved_at = now()",
            &[
                &key.flow,
                &key.object,
                &key.scope,
                &checkpoint.page_token,
                &checkpoint.read_high,
                &checkpoint.watermark,
                &checkpoint.dest_marker,
                &checkpoint.selection,
                &checkpoint.read_mode,
            ],
        )
        .await?;
    Ok(())
}

/// A checkpoint store in a PostgreSQL database.
pub struct PostgresCheckpoints {
    db: PgClient,
}

impl PostgresCheckpoints {
    /// Connect to `url` and create the checkpoint table if it is missing.
    pub fn open(url: &PgUrl) -> Result<Self> {
        let db = PgClient::connect(url)?;
        db.run(|client: Arc<Client>| async move { create_table(&client).await })?;
        Ok(PostgresCheckpoints { db })
    }
}

impl CheckpointStore for PostgresCheckpoints {
    fn load(&mut self, key: &PartitionKey) -> Result<Option<Checkpoint>> {
        let key = key.clone();
        self.db.run(|client| async move { load(&*client, &key).await })
    }

    fn save(&mut self, key: &PartitionKey, checkpoint: &Checkpoint) -> Result<()> {
        let (key, checkpoint) = (key.clone(), checkpoint.clone());
        self.db.run(|client| async move { save(&*client, &key, &checkpoint).await })
    }
}
