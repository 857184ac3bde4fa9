//! File destinations: one part per partition per run, in a local folder or an S3 bucket.
//!
//! ```text
//!  write_page ──► spool  SPOOL/parts/FLOW/OBJECT/SCOPE.ndjson   (appended; marker RUN:BYTES:RECORDS)
//!             ──► a big CSV or Parquet part: its file written ahead, page by page (`format::PartWriter`)
//!  commit     ──► every spool written and every folder changed since the last commit, to be synced
//!                 (by the writer's committer thread, see `syncs`)
//!  close_part ──► render (JSONL: the spool itself; CSV, Parquet: the file written ahead, finished,
//!                 or the spool rendered whole, see `format`)
//!             ──► publish OBJECT/RUN-SCOPE.EXT on the target (a folder: link or copy, then rename;
//!                 S3: upload) ──► journal of the run (see `manifest`)
//!  finish     ──► manifest _manifests/RUN.json (and those of dead runs) ──► spools removed
//! ```
//!
//! A part is named after the run that started it. The writer saves a completed read's checkpoint only
//! after its part is published, so a run killed at any moment is resumed as follows: a part whose read
//! was in progress is reopened from its spool, cut back to the marker of its last saved checkpoint,
//! and unpublished if it had been published already (the checkpoint saying "complete" was not saved);
//! the pages read again then land exactly once, and the part is published whole. A part whose read had
//! completed was published before its checkpoint was saved, and is not touched again.
//!
//! Spools live in the destination's folder (`DIR/_spool`) for a local folder, so that publishing is a
//! hard link and a rename; for S3 in a local folder of their own (see [`super::s3`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::format::{self, FileFormat, PartWriter, SeenFields};
use super::manifest::{ManifestColumn, PartEntry, RunLog};
use super::spool::{Marker, Spool};
use super::syncs::Syncs;
use super::{Column, Destination, TableSchema, create_folders, create_folders_durably, path_component, sync_dir};
use crate::state::{Checkpoint, PartitionKey};

/// Where published parts and manifests go.
pub trait Target: Send {
    /// The target, for messages (a folder, or an `s3://` URL).
    fn location(&self) -> String;
    /// Publish the local file `file` as `name` (`OBJECT/RUN-SCOPE.EXT`), whole or not at all. `file`
    /// stays where it is.
    fn publish(&mut self, file: &Path, name: &str) -> Result<()>;
    /// Whether `name` is published.
    fn exists(&mut self, name: &str) -> Result<bool>;
    /// Unpublish `name` (nothing happens if it is not published).
    fn remove(&mut self, name: &str) -> Result<()>;
    /// Write `bytes` as `name`, whole or not at all.
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Have the parts published since the last commit made durable by `syncs`.
    fn commit(&mut self, _syncs: &mut Syncs) -> Result<()> {
        Ok(())
    }
}

/// A local folder.
pub struct LocalDir {
    dir: PathBuf,
    /// Folders where parts were renamed into place since the last commit.
    unsynced: BTreeSet<PathBuf>,
}

impl LocalDir {
    pub fn new(dir: &Path) -> Result<LocalDir> {
        create_folders_durably(dir)?;
        Ok(LocalDir { dir: dir.to_owned(), unsynced: BTreeSet::new() })
    }

    /// `name`'s path, a temporary path beside it, and the folders whose entries change as it is
    /// made there (its own, and the parent of each folder made for it), to be synced.
    fn paths(&self, name: &str) -> Result<(PathBuf, PathBuf, Vec<PathBuf>)> {
        let path = self.dir.join(name);
        let parent = path.parent().ok_or_else(|| anyhow!("'{name}' has no folder"))?;
        let changed = create_folders(parent)?;
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("part");
        let temporary = parent.join(format!(".{file_name}.tmp"));
        Ok((path, temporary, changed))
    }

    /// Move `temporary` into place as `path` (durable once its folder is synced).
    fn rename_into_place(temporary: &Path, path: &Path) -> Result<()> {
        std::fs::rename(temporary, path).with_context(|| format!("cannot move {} into place", path.display()))
    }

    /// `path`'s folder.
    fn folder(path: &Path) -> &Path {
        path.parent().unwrap_or(Path::new("."))
    }
}

impl Target for LocalDir {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn publish(&mut self, file: &Path, name: &str) -> Result<()> {
        let (path, temporary, changed) = self.paths(name)?;
        let _ = std::fs::remove_file(&temporary);
        // A hard link publishes a spool without copying it; across file systems, copy.
        if std::fs::hard_link(file, &temporary).is_err() {
            std::fs::copy(file, &temporary)
                .and_then(|_| std::fs::File::open(&temporary)?.sync_all())
                .with_context(|| format!("cannot copy {} to {}", file.display(), temporary.display()))?;
        }
        Self::rename_into_place(&temporary, &path)?;
        self.unsynced.extend(changed);
        Ok(())
    }

    fn exists(&mut self, name: &str) -> Result<bool> {
        Ok(self.dir.join(name).exists())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(Self::folder(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let (path, temporary, changed) = self.paths(name)?;
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        Self::rename_into_place(&temporary, &path)?;
        changed.iter().try_for_each(|folder| sync_dir(folder))
    }

    fn commit(&mut self, syncs: &mut Syncs) -> Result<()> {
        while let Some(dir) = self.unsynced.pop_first() {
            syncs.folder(&dir);
        }
        Ok(())
    }
}

/// A part being written.
struct OpenPart {
    /// The run that started the part.
    run: String,
    spool: Spool,
    columns: PartColumns,
}

/// How a part's columns are known: by the field names its records have so far, until it is written
/// ahead; then by the columns it was started with (its writer reads every record, and notes one
/// with a field of the table that is none of them).
enum PartColumns {
    /// Rendered from the spool when published; `ahead_failed`: writing it ahead was tried and failed.
    Seen { seen: SeenFields, ahead_failed: bool },
    /// Written as its pages come (see [`FileDestination::write_ahead`]).
    Ahead(Box<PartWriter>),
    /// Written ahead until that failed: its field names are to be read from its spool.
    Unread,
    /// Its file is finished, with these columns (kept for a retry of its publishing).
    Finished(Vec<Column>),
}

impl OpenPart {
    fn new(run: String, spool: Spool, seen: SeenFields) -> OpenPart {
        OpenPart { run, spool, columns: PartColumns::Seen { seen, ahead_failed: false } }
    }

    /// Stop writing the part ahead, if it is: it is rendered from its spool when published.
    fn stop_ahead(&mut self, part: &PartitionKey, why: &str) {
        if let PartColumns::Ahead(_) = self.columns {
            tracing::debug!("{part} is rendered when published, not as it is read: {why}");
            self.columns = PartColumns::Unread;
        }
    }

    /// The field names of the part's records, read from its spool if they are not known.
    fn seen(&mut self, part: &PartitionKey) -> Result<&mut SeenFields> {
        if let PartColumns::Unread = self.columns {
            let mut seen = SeenFields::default();
            seen.spool(self.spool.path())?;
            self.columns = PartColumns::Seen { seen, ahead_failed: true };
        }
        match &mut self.columns {
            PartColumns::Seen { seen, .. } => Ok(seen),
            _ => bail!("{part} is written ahead or finished: its field names are not noted"),
        }
    }

    /// Check and note a page's records before they are spooled: write them ahead, or note their
    /// field names. A page with a line that is not a record is refused.
    fn take(&mut self, part: &PartitionKey, records: &[u8]) -> Result<()> {
        if let PartColumns::Ahead(writer) = &mut self.columns {
            let why = match writer.page(records) {
                Ok(()) if !writer.outgrown() => return Ok(()),
                Ok(()) => "a record has a field of the table that the part's columns lack".to_owned(),
                Err(error) => format!("{error:#}"),
            };
            self.stop_ahead(part, &why);
        }
        self.seen(part)?.page(records)
    }

    /// Finish the part's file as `format` (CSV or Parquet) at `out`, durably: the writer ahead's
    /// if it has all the part's records, else rendered from the spool. Returns the part's columns.
    fn finish(
        &mut self,
        part: &PartitionKey,
        format: FileFormat,
        table: &TableSchema,
        out: &Path,
    ) -> Result<Vec<Column>> {
        if let PartColumns::Ahead(writer) = &self.columns
            && writer.records() != self.spool.records()
        {
            self.stop_ahead(part, "its writer does not have every record of the spool");
        }
        let columns = match std::mem::replace(&mut self.columns, PartColumns::Unread) {
            PartColumns::Ahead(writer) => {
                let columns = writer.columns().to_vec();
                if let Err(error) = writer.finish() {
                    // Rendered from the spool instead (the part's columns `Unread`).
                    return self.finish(part, format, table, out).with_context(|| format!("{error:#}"));
                }
                columns
            }
            PartColumns::Finished(columns) => columns,
            unread_or_seen => {
                self.columns = unread_or_seen;
                let columns = self.seen(part)?.columns(table);
                format::render(format, self.spool.path(), &columns, out)?;
                columns
            }
        };
        self.columns = PartColumns::Finished(columns.clone());
        Ok(columns)
    }
}

/// A CSV or Parquet part is written as its pages come, instead of rendered from its spool once its
/// last page is read, once it holds this many records: rendering is then done while the read goes
/// on, not after it (a tail of about 1.5 s per 100,000 issues). Smaller parts, whose tail is short,
/// are rendered when published, one at a time, so that a run of many partitions holds no writer
/// for each.
const WRITE_AHEAD_RECORDS: u64 = 5_000;
/// How many parts of a destination are written ahead at once (each holds up to a row group).
const WRITE_AHEAD_PARTS: usize = 2;

/// A file destination: parts of one format, spooled locally, published to a [`Target`].
pub struct FileDestination {
    format: FileFormat,
    target: Box<dyn Target>,
    /// The local folder of spools (`parts/`) and runs (`runs/`).
    spool_dir: PathBuf,
    run: RunLog,
    tables: HashMap<String, TableSchema>,
    open: HashMap<PartitionKey, OpenPart>,
    /// Spools of the parts published since the last commit: synced then.
    published: Vec<Spool>,
    /// Spools of the parts this run closed: removed once the run's manifest is written.
    closed: Vec<PathBuf>,
}

impl FileDestination {
    /// Parts in the local folder `dir`, spooled in `dir/_spool`.
    pub fn local(format: FileFormat, dir: &Path) -> Result<FileDestination> {
        let target = LocalDir::new(dir)?;
        FileDestination::open(format, Box::new(target), &dir.join("_spool"))
    }

    /// Parts published to `target`, spooled in `spool_dir`.
    pub fn open(format: FileFormat, target: Box<dyn Target>, spool_dir: &Path) -> Result<FileDestination> {
        let run = RunLog::start(&spool_dir.join("runs"))?;
        Ok(FileDestination {
            format,
            target,
            spool_dir: spool_dir.to_owned(),
            run,
            tables: HashMap::new(),
            open: HashMap::new(),
            published: Vec::new(),
            closed: Vec::new(),
        })
    }

    /// `part`'s spool. One file per part, not one per run: the run that started it is in its marker.
    /// All spools of an object share a folder, so that a run of 2,000 partitions makes 2,000 files,
    /// not 2,000 folders as well (a folder per part cost a tenth of such a run's CPU).
    fn spool_path(&self, part: &PartitionKey) -> PathBuf {
        self.spool_dir
            .join("parts")
            .join(path_component(&part.flow))
            .join(path_component(&part.object))
            .join(format!("{}.ndjson", path_component(&part.scope)))
    }

    /// The published name of `part` when started by `run`.
    fn part_name(&self, part: &PartitionKey, run: &str) -> String {
        format!("{}/{run}-{}.{}", path_component(&part.object), path_component(&part.scope), self.format.name())
    }

    /// Render (unless JSONL) and publish `part`, and record it in the run's journal.
    fn publish(&mut self, part: &PartitionKey, open: &mut OpenPart) -> Result<()> {
        let table = self.tables.get(&part.object).ok_or_else(|| anyhow!("table '{}' was not prepared", part.object))?;
        let spool = open.spool.path().to_owned();
        let (columns, rendered) = match self.format {
            FileFormat::Jsonl => (open.seen(part)?.columns(table), None),
            format => {
                let out = spool.with_extension(format.name());
                let columns = open
                    .finish(part, format, table, &out)
                    .with_context(|| format!("cannot render {part} as {}", format.name()))?;
                (columns, Some(out))
            }
        };
        let file = rendered.as_deref().unwrap_or(&spool);
        let bytes = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
        let name = self.part_name(part, &open.run);
        self.target
            .publish(file, &name)
            .with_context(|| format!("cannot publish {name} to {}", self.target.location()))?;
        if let Some(rendered) = rendered {
            let _ = std::fs::remove_file(rendered);
        }
        self.run.record(PartEntry {
            flow: part.flow.clone(),
            object: part.object.clone(),
            scope: part.scope.clone(),
            path: name,
            format: self.format.name().into(),
            records: open.spool.records(),
            bytes,
            primary_key: table.primary_key.clone(),
            columns: ManifestColumn::list(&columns),
        })
    }

    /// Start writing `part` ahead (from its spool) once it holds [`WRITE_AHEAD_RECORDS`] and fewer
    /// than [`WRITE_AHEAD_PARTS`] parts are written ahead. Failing to is not the page's: the part
    /// is then rendered from its spool when published, which reports it if it is the part's.
    fn write_ahead(&mut self, part: &PartitionKey) {
        if self.format == FileFormat::Jsonl {
            return;
        }
        let big = |open: &OpenPart| open.spool.records() >= WRITE_AHEAD_RECORDS;
        if !self.open.get(part).is_some_and(big)
            || self.open.values().filter(|open| matches!(open.columns, PartColumns::Ahead(_))).count()
                >= WRITE_AHEAD_PARTS
        {
            return;
        }
        let (Some(open), Some(table)) = (self.open.get_mut(part), self.tables.get(&part.object)) else { return };
        let PartColumns::Seen { seen, ahead_failed: false } = &open.columns else { return };
        let out = open.spool.path().with_extension(self.format.name());
        let started = PartWriter::create(self.format, seen.columns(table), &out).and_then(|mut writer| {
            writer.watch(table);
            writer.spool(open.spool.path())?;
            Ok(writer)
        });
        match started {
            Ok(writer) => open.columns = PartColumns::Ahead(Box::new(writer)),
            Err(error) => {
                tracing::debug!("{part} is rendered when published, not as it is read: {error:#}");
                if let PartColumns::Seen { ahead_failed, .. } = &mut open.columns {
                    *ahead_failed = true;
                }
            }
        }
    }

    /// Write the manifests of this run and of the runs that died before writing theirs.
    fn write_manifests(&mut self) -> Result<()> {
        let target = &mut self.target;
        let dead = self.run.dead_runs(|entry| target.exists(&entry.path))?;
        for run in dead {
            let name = format!("_manifests/{}.json", run.manifest.run);
            self.target.put(&name, &serde_json::to_vec_pretty(&run.manifest)?)?;
            run.forget()?;
        }
        let manifest = self.run.manifest();
        let name = format!("_manifests/{}.json", manifest.run);
        self.target
            .put(&name, &serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| format!("cannot write the manifest {name} to {}", self.target.location()))
    }
}

impl Destination for FileDestination {
    fn prepare(&mut self, table: &TableSchema) -> Result<()> {
        // Each part gets the schema its table has when it is published: a new field shows up there,
        // so a part written ahead with the columns of the schema before is rendered when published.
        let changed = self.tables.get(&table.name).is_some_and(|before| before.columns != table.columns);
        if changed {
            for (part, open) in self.open.iter_mut().filter(|(part, _)| part.object == table.name) {
                open.stop_ahead(part, "its table's schema changed");
            }
        }
        self.tables.insert(table.name.clone(), table.clone());
        Ok(())
    }

    fn open_part(&mut self, part: &PartitionKey, resume: Option<&str>) -> Result<()> {
        if self.open.contains_key(part) {
            bail!("{part} is already being written");
        }
        let path = self.spool_path(part);
        let open = match resume {
            None => {
                // A spool left by an earlier read of this partition belongs to a read that completed
                // (and was published) or was never checkpointed: nothing refers to it any more, and
                // `Spool::create` removes it.
                let run = self.run.id.clone();
                OpenPart::new(run, Spool::create(&path)?, SeenFields::default())
            }
            Some(marker) => {
                let marker: Marker = marker.parse()?;
                // Published, but its completed checkpoint never saved: take it back first.
                let name = self.part_name(part, &marker.run);
                self.target
                    .remove(&name)
                    .with_context(|| format!("cannot unpublish {name} from {}", self.target.location()))?;
                let spool = Spool::resume(&path, &marker)?;
                let mut seen = SeenFields::default();
                seen.spool(&path)?;
                OpenPart::new(marker.run, spool, seen)
            }
        };
        self.open.insert(part.clone(), open);
        Ok(())
    }

    fn write_page(&mut self, part: &PartitionKey, records: &[u8], _: Option<&Checkpoint>) -> Result<Option<String>> {
        let open = self.open.get_mut(part).ok_or_else(|| anyhow!("{part} was not opened"))?;
        // A page with a line that is not a record is refused before any of it is written.
        open.take(part, records)?;
        if let Err(error) = open.spool.append(records) {
            // The writer ahead has a page the spool does not.
            open.stop_ahead(part, "the spool refused a page");
            return Err(error);
        }
        let marker = open.spool.marker(&open.run).to_string();
        self.write_ahead(part);
        Ok(Some(marker))
    }

    fn close_part(&mut self, part: &PartitionKey) -> Result<()> {
        let Some(mut open) = self.open.remove(part) else { return Ok(()) };
        if open.spool.records() > 0
            && let Err(error) = self.publish(part, &mut open)
        {
            // Still open: a retry (or a resumed run) publishes it.
            self.open.insert(part.clone(), open);
            return Err(error);
        }
        self.published.push(open.spool);
        Ok(())
    }

    fn commit(&mut self) -> Result<Syncs> {
        // The pages, then the parts published from them, then the journal that lists those parts.
        let mut syncs = Syncs::default();
        for open in self.open.values_mut() {
            open.spool.sync_later(&mut syncs)?;
        }
        for mut spool in std::mem::take(&mut self.published) {
            spool.sync_later(&mut syncs)?;
            self.closed.push(spool.path().to_owned());
        }
        self.target.commit(&mut syncs)?;
        self.run.sync_later(&mut syncs)?;
        Ok(syncs)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.commit()?.run()?;
        self.write_manifests()?;
        for spool in &self.closed {
            let _ = std::fs::remove_file(spool);
        }
        self.run.forget()
    }

    fn abort(self: Box<Self>) -> Result<()> {
        // Spools stay for a resumed run; the journal stays for the next run to write this run's manifest.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dest::Column;
    use crate::dest::manifest::Manifest;
    use crate::sandbox::wit::FieldType;

    fn table(extra: bool) -> TableSchema {
        let mut columns = vec![
            Column { name: "id".into(), field_type: FieldType::Integer },
            Column { name: "title".into(), field_type: FieldType::String },
        ];
        if extra {
            columns.push(Column { name: "weight".into(), field_type: FieldType::Integer });
        }
        TableSchema { name: "issue".into(), columns, primary_key: vec!["id".into()] }
    }

    /// A destination of `format` in `dir`, its table prepared (with the extra column, if `extra`).
    fn prepared(format: FileFormat, dir: &Path, extra: bool) -> Box<FileDestination> {
        let mut dest = Box::new(FileDestination::local(format, dir).unwrap());
        dest.prepare(&table(extra)).unwrap();
        dest
    }

    fn part() -> PartitionKey {
        PartitionKey { flow: "cli".into(), object: "issue".into(), scope: "project-1".into() }
    }

    fn page(ids: std::ops::Range<u32>) -> Vec<u8> {
        ids.map(|i| format!("{{\"id\":{i},\"title\":\"t{i}\"}}\n")).collect::<String>().into_bytes()
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("files-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_part_published_in_a_new_folder_has_that_folders_entry_synced_too() {
        let root = dir("folders");
        let mut target = LocalDir::new(&root).unwrap();
        let file = root.join("spooled");
        std::fs::write(&file, "{}\n").unwrap();
        target.publish(&file, "issue/a.jsonl").unwrap();
        // The part's folder holds its new entry; the destination's folder holds the new folder's.
        assert_eq!(target.unsynced, BTreeSet::from([root.clone(), root.join("issue")]));
        target.commit(&mut Syncs::default()).unwrap();
        target.publish(&file, "issue/b.jsonl").unwrap();
        assert_eq!(target.unsynced, BTreeSet::from([root.join("issue")]), "the folder is there already");
        target.put("_manifests/run.json", b"{}").unwrap();
        assert!(root.join("_manifests/run.json").is_file());
        let _ = std::fs::remove_dir_all(root);
    }

    /// Every record id across the published parts, with how often it appears.
    fn published_ids(dir: &Path) -> BTreeMap<i64, usize> {
        let mut ids = BTreeMap::new();
        let Ok(listing) = std::fs::read_dir(dir.join("issue")) else { return ids };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                *ids.entry(value["id"].as_i64().unwrap()).or_default() += 1;
            }
        }
        ids
    }

    fn manifests(dir: &Path) -> Vec<Manifest> {
        let mut all: Vec<Manifest> = std::fs::read_dir(dir.join("_manifests"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
            .collect();
        all.sort_by(|a, b| a.run.cmp(&b.run));
        all
    }

    #[test]
    fn a_run_publishes_one_part_per_partition_and_a_manifest() {
        let dir = dir("plain");
        let mut dest = prepared(FileFormat::Jsonl, &dir, false);
        dest.open_part(&part(), None).unwrap();
        let first = dest.write_page(&part(), &page(0..3), None).unwrap().unwrap();
        assert!(first.ends_with(":3"), "{first}");
        dest.write_page(&part(), &page(3..5), None).unwrap();
        assert!(!dir.join("issue").exists(), "nothing is published before the read completes");
        dest.close_part(&part()).unwrap();
        dest.close_part(&part()).unwrap();
        let run = dest.run.id.clone();
        dest.finish().unwrap();
        assert_eq!(published_ids(&dir).len(), 5);
        assert!(dir.join(format!("issue/{run}-project-1.jsonl")).exists());
        let manifests = manifests(&dir);
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].status, "complete");
        assert_eq!(manifests[0].parts[0].records, 5);
        assert_eq!(manifests[0].parts[0].path, format!("issue/{run}-project-1.jsonl"));
        // Nothing left behind but the (empty) spool folders of the object and the runs.
        assert_eq!(std::fs::read_dir(dir.join("_spool/runs")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.join("_spool/parts/cli/issue")).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_read_without_records_leaves_no_spool_and_publishes_nothing() {
        let dir = dir("empty");
        let mut dest = prepared(FileFormat::Jsonl, &dir, false);
        dest.open_part(&part(), None).unwrap();
        dest.commit().unwrap().run().unwrap();
        dest.close_part(&part()).unwrap();
        dest.finish().unwrap();
        assert!(!dir.join("_spool/parts/cli").exists(), "no spool made, nor its folder");
        assert!(!dir.join("issue").exists(), "nothing published");
        assert!(manifests(&dir)[0].parts.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A run dies (it is dropped without finishing, its lock released as at kill -9) after `pages`
    /// pages, the last `saved` of whose markers were checkpointed; with `published`, after publishing
    /// too (but before the completed checkpoint was saved). The next run resumes from the saved marker.
    fn die_and_resume(name: &str, pages: usize, saved: usize, published: bool) {
        let dir = dir(name);
        let mut dest = prepared(FileFormat::Jsonl, &dir, false);
        dest.open_part(&part(), None).unwrap();
        let mut markers = Vec::new();
        for p in 0..pages as u32 {
            markers.push(dest.write_page(&part(), &page(p * 10..p * 10 + 10), None).unwrap().unwrap());
        }
        if published {
            dest.close_part(&part()).unwrap();
        }
        drop(dest);
        let resume = markers[saved - 1].clone();

        let mut dest = prepared(FileFormat::Jsonl, &dir, true);
        dest.open_part(&part(), Some(&resume)).unwrap();
        assert!(published_ids(&dir).is_empty(), "the resumed part is unpublished until it completes");
        for p in saved as u32..6 {
            dest.write_page(&part(), &page(p * 10..p * 10 + 10), None).unwrap();
        }
        dest.close_part(&part()).unwrap();
        dest.finish().unwrap();

        let ids = published_ids(&dir);
        assert_eq!(ids.len(), 60, "every record");
        assert!(ids.values().all(|n| *n == 1), "exactly once: {ids:?}");
        let manifests = manifests(&dir);
        assert_eq!(manifests.len(), 2, "the dead run's manifest too");
        let dead = manifests.iter().find(|m| m.status == "interrupted").unwrap();
        let complete = manifests.iter().find(|m| m.status == "complete").unwrap();
        assert!(dead.parts.is_empty(), "the dead run's part was taken over");
        assert_eq!(complete.parts.len(), 1);
        assert_eq!(complete.parts[0].records, 60);
        // The part is named after the run that started it.
        assert_eq!(complete.parts[0].path, format!("issue/{}-project-1.jsonl", dead.run));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn killed_after_writing_past_the_saved_checkpoint() {
        die_and_resume("past", 4, 2, false);
    }

    #[test]
    fn killed_after_publishing_before_the_completed_checkpoint() {
        die_and_resume("published", 6, 5, true);
    }

    /// A run killed after publishing a part, and after saving the checkpoint that completes it, but
    /// before its end, leaves the part's spool behind: a hard link of the published part (and, for a
    /// rendered format, perhaps the rendered file too). The next read of the partition starts a new
    /// spool, and the published part stays as it was.
    #[test]
    fn a_new_read_never_cuts_the_files_a_killed_run_published() {
        for format in [FileFormat::Jsonl, FileFormat::Csv] {
            let dir = dir(&format!("linked-{}", format.name()));
            let mut dest = prepared(format, &dir, false);
            dest.open_part(&part(), None).unwrap();
            dest.write_page(&part(), &page(0..10), None).unwrap();
            dest.close_part(&part()).unwrap();
            let first = dir.join(dest.part_name(&part(), &dest.run.id.clone()));
            let spool = dest.spool_path(&part());
            drop(dest);
            let published = std::fs::read(&first).unwrap();
            if format != FileFormat::Jsonl {
                // Killed between publishing the rendered file and removing it.
                std::fs::hard_link(&first, spool.with_extension(format.name())).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));

            let mut dest = prepared(format, &dir, false);
            dest.open_part(&part(), None).unwrap();
            dest.write_page(&part(), &page(10..13), None).unwrap();
            dest.close_part(&part()).unwrap();
            let second = dir.join(dest.part_name(&part(), &dest.run.id.clone()));
            dest.finish().unwrap();
            assert_ne!(first, second);
            assert_eq!(
                std::fs::read(&first).unwrap(),
                published,
                "{}: the first run's part is untouched",
                format.name()
            );
            let lines = std::fs::read_to_string(&second).unwrap().lines().count();
            let header = usize::from(format == FileFormat::Csv);
            assert_eq!(lines, 3 + header, "{}: the second run's part has its own records", format.name());
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn each_part_carries_the_schema_of_its_run_in_every_format() {
        for format in [FileFormat::Csv, FileFormat::Parquet] {
            let dir = dir(format.name());
            for extra in [false, true] {
                let mut dest = prepared(format, &dir, extra);
                dest.open_part(&part(), None).unwrap();
                let records = if extra { b"{\"id\":1,\"title\":\"a\",\"weight\":3}\n".to_vec() } else { page(0..2) };
                dest.write_page(&part(), &records, None).unwrap();
                dest.close_part(&part()).unwrap();
                dest.finish().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let manifests = manifests(&dir);
            let columns: Vec<usize> = manifests.iter().map(|m| m.parts[0].columns.len()).collect();
            assert_eq!(columns, [2, 3], "{}", format.name());
            for manifest in &manifests {
                let path = dir.join(&manifest.parts[0].path);
                assert_eq!(std::fs::metadata(&path).unwrap().len(), manifest.parts[0].bytes);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Three big parts at once: the first two are written ahead as their pages come (no more than
    /// [`WRITE_AHEAD_PARTS`]), the third not yet; the second gains a field after it started, so it
    /// is rendered when published, with it; the third then takes its place, until a page that is not
    /// records. Each published part is the part rendered whole.
    #[test]
    fn big_parts_are_written_as_their_pages_come_and_are_the_parts_rendered_whole() {
        for format in [FileFormat::Csv, FileFormat::Parquet] {
            let dir = dir(&format!("ahead-{}", format.name()));
            let mut dest = prepared(format, &dir, true);
            let parts: Vec<PartitionKey> =
                (1..=3).map(|n| PartitionKey { scope: format!("project-{n}"), ..part() }).collect();
            let pages = (WRITE_AHEAD_RECORDS / 100 + 5) as u32;
            for key in &parts {
                dest.open_part(key, None).unwrap();
            }
            for p in 0..pages {
                for key in &parts {
                    dest.write_page(key, &page(p * 100..p * 100 + 100), None).unwrap();
                }
            }
            let ahead: Vec<bool> =
                parts.iter().map(|key| matches!(dest.open[key].columns, PartColumns::Ahead(_))).collect();
            assert_eq!(ahead, [true, true, false], "{}", format.name());
            dest.write_page(&parts[1], b"{\"id\":999999,\"title\":\"w\",\"weight\":3}\n", None).unwrap();
            assert!(
                matches!(dest.open[&parts[1]].columns, PartColumns::Seen { ahead_failed: true, .. }),
                "a field its columns lack"
            );
            // A place is free: the third part is written ahead from its next page; a page that is not
            // records is refused as before, and the part is rendered when published.
            dest.write_page(&parts[2], &page(pages * 100..pages * 100 + 100), None).unwrap();
            assert!(matches!(dest.open[&parts[2]].columns, PartColumns::Ahead(_)));
            let error = dest.write_page(&parts[2], b"{\"id\":1}\n[1]\n", None).unwrap_err();
            assert!(format!("{error:#}").contains("record 2 of the page is not a JSON object"), "{error:#}");
            assert!(matches!(dest.open[&parts[2]].columns, PartColumns::Seen { ahead_failed: true, .. }));
            let table = table(true);
            let mut expected = Vec::new();
            for key in &parts {
                let spool = dest.open[key].spool.path().to_owned();
                let mut seen = SeenFields::default();
                seen.spool(&spool).unwrap();
                let columns = seen.columns(&table);
                let whole = dir.join(format!("whole-{}.{}", key.scope, format.name()));
                format::render(format, &spool, &columns, &whole).unwrap();
                expected.push((std::fs::read(whole).unwrap(), columns.len()));
                dest.close_part(key).unwrap();
            }
            let run = dest.run.id.clone();
            dest.finish().unwrap();
            assert_eq!(expected.iter().map(|(_, columns)| *columns).collect::<Vec<_>>(), [2, 3, 2]);
            for (key, (bytes, _)) in parts.iter().zip(expected) {
                let published =
                    std::fs::read(dir.join(format!("issue/{run}-{}.{}", key.scope, format.name()))).unwrap();
                assert!(published == bytes, "{} {}: the part rendered whole", format.name(), key.scope);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_marker_whose_spool_is_gone_is_a_clear_error() {
        let dir = dir("gone");
        let mut dest = prepared(FileFormat::Csv, &dir, false);
        let err = dest.open_part(&part(), Some("20200101T000000Z-000000:10:1")).unwrap_err();
        assert!(format!("{err:#}").contains("remove the partition's checkpoint"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
