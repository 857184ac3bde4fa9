//! Every destination kind end to end: the real host and gitlab.wasm, the simulator over real HTTP, and
//! real servers (PostgreSQL from Debian's package, moto's S3 server; see `support/servers.rs`).
//!
//! For each kind: a full sync whose typed values are read back and compared, field by field, with the
//! connector's own records (a JSONL run of the same flow); and a `kill -9` + resume test: `host run`
//! on `bigco/monorepo`'s issues (30,000 here) is killed with SIGKILL at a few moments mid-read, then run again
//! until it succeeds. Databases then hold exactly the upstream's records, files hold every record
//! exactly once across their published parts (and every part in exactly one manifest), and the runs
//! together asked for barely more pages than one read: they resumed rather than started over.

#[path = "support/servers.rs"]
mod servers;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use gitlab_sim::Simulator;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value};
use support::{HostRun, TOKEN, artifacts, read_jsonl_object, simulator, simulator_with_big_issues, temp_dir};

/// The flow of the full syncs: issues and merge requests of two projects.
const SMALL_FLOW: &[&str] =
    &["--object", "issue", "--object", "project_merge_request", "--project", "demo/website", "--project", "demo/api"];
const SMALL_OBJECTS: [&str; 2] = ["issue", "project_merge_request"];

/// `host run --plugin gitlab.wasm --base-url SIM ...rest`, with `env` added, ready to spawn.
fn host_command(sim: &Simulator, rest: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(&artifacts().host);
    command
        .args(["run", "--plugin", artifacts().gitlab_wasm.to_str().unwrap(), "--base-url", &sim.base_url()])
        .args(rest)
        .env_remove("GITLAB_OAUTH_TOKEN")
        .env_remove("HOST_PLUGIN")
        .env("GITLAB_TOKEN", TOKEN)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// Run `host run ... --dest DEST` to completion and expect success; returns what it printed.
fn sync(sim: &Simulator, flow: &[&str], dest: &str, env: &[(&str, String)]) -> String {
    let mut args = flow.to_vec();
    args.extend(["--dest", dest]);
    let run = HostRun::from(host_command(sim, &args, env).output().unwrap());
    assert!(run.success, "host run --dest {dest} failed:\n{}", run.output());
    run.output()
}

/// The connector's own records of `flow`, per object (a JSONL run: the plugin's bytes as they are).
fn reference(sim: &Simulator, flow: &[&str], objects: &[&str]) -> BTreeMap<String, Vec<Value>> {
    let dir = temp_dir();
    sync(sim, flow, &format!("jsonl:{}", dir.path().display()), &[]);
    objects.iter().map(|o| (o.to_string(), read_jsonl_object(dir.path(), o))).collect()
}

/// The record field types of `object`, from `host describe --json`, by name.
fn field_types(object: &str) -> BTreeMap<String, String> {
    support::field_types(object).into_iter().collect()
}

/// A date-time as the connector writes them (RFC 3339, UTC, milliseconds), from any RFC 3339 text.
fn utc_millis(text: &str) -> String {
    support::utc_millis(text)
}

/// Check that `got` (records read back from a destination, each a JSON object built from typed
/// values) holds exactly `expected`, field by field, by id. Date-times compare as instants, numbers
/// as numbers, structs and lists as JSON; a missing field counts as null. CSV cannot tell an empty
/// string from null: for `what == "csv"`, an empty expected string may read back as null.
fn assert_same_records(object: &str, expected: &[Value], got: &[Map<String, Value>], what: &str) {
    let types = field_types(object);
    let by_id: HashMap<i64, &Map<String, Value>> = got.iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect();
    assert_eq!(by_id.len(), got.len(), "{what}: an {object} appears twice");
    assert_eq!(got.len(), expected.len(), "{what}: {object} count");
    for record in expected {
        let id = record["id"].as_i64().unwrap();
        let row = by_id.get(&id).unwrap_or_else(|| panic!("{what}: {object} {id} is missing"));
        for (field, want) in record.as_object().unwrap() {
            let have = row.get(field).unwrap_or(&Value::Null);
            let same = match (types[field].as_str(), want, have) {
                (_, Value::Null, have) => have.is_null(),
                (_, Value::String(w), Value::Null) if what == "csv" => w.is_empty(),
                ("date-time", Value::String(w), Value::String(h)) => utc_millis(w) == utc_millis(h),
                ("number", w, h) => w.as_f64() == h.as_f64(),
                (_, w, h) => w == h,
            };
            assert!(same, "{what}: {object} {id} field {field}: expected {want}, read back {have}");
        }
    }
}

// ---- reading back each kind ----

/// Every row of `table` as JSON built from PostgreSQL's typed values.
fn postgres_rows(database: &str, table: &str) -> Vec<Map<String, Value>> {
    let mut client = servers::postgres().connect(database).unwrap();
    client.batch_execute("SET TIME ZONE 'UTC'").unwrap();
    client
        .query(&format!("SELECT to_jsonb(t)::text FROM {table} t"), &[])
        .unwrap()
        .iter()
        .map(|row| serde_json::from_str::<Map<String, Value>>(row.get::<_, &str>(0)).unwrap())
        .collect()
}

/// `table`'s column types in PostgreSQL.
fn postgres_types(database: &str, table: &str) -> BTreeMap<String, String> {
    let mut client = servers::postgres().connect(database).unwrap();
    client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = $1",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// The value at `row` of an Arrow column, as JSON (timestamps as RFC 3339 UTC, dates as YYYY-MM-DD,
/// JSON text parsed), checking that the column has the Arrow type `field_type` maps to.
fn arrow_value(column: &dyn Array, row: usize, field_type: &str) -> Value {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMillisecondType};
    let expected = match field_type {
        "integer" => DataType::Int64,
        "number" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "date-time" => DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
        _ => DataType::Utf8,
    };
    assert_eq!(column.data_type(), &expected, "a {field_type} column");
    if column.is_null(row) {
        return Value::Null;
    }
    match field_type {
        "integer" => column.as_primitive::<Int64Type>().value(row).into(),
        "number" => column.as_primitive::<Float64Type>().value(row).into(),
        "boolean" => column.as_boolean().value(row).into(),
        "date" => column.as_primitive::<Date32Type>().value_as_date(row).unwrap().to_string().into(),
        "date-time" => {
            let millis = column.as_primitive::<TimestampMillisecondType>().value(row);
            chrono::DateTime::from_timestamp_millis(millis)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into()
        }
        "struct" | "list" => serde_json::from_str(column.as_string::<i32>().value(row)).unwrap(),
        _ => column.as_string::<i32>().value(row).into(),
    }
}

/// Every record of a Parquet file, as JSON built from its typed columns.
fn parquet_records(bytes: bytes::Bytes, object: &str) -> Vec<Map<String, Value>> {
    let types = field_types(object);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let mut records = Vec::new();
    for batch in reader {
        let batch: RecordBatch = batch.unwrap();
        for row in 0..batch.num_rows() {
            let mut record = Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                record.insert(field.name().clone(), arrow_value(column.as_ref(), row, &types[field.name()]));
            }
            records.push(record);
        }
    }
    records
}

/// Every record of a CSV file, each cell read back by its field's type (an empty cell is null).
fn csv_records(bytes: &[u8], object: &str) -> Vec<Map<String, Value>> {
    let types = field_types(object);
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            header
                .iter()
                .zip(row.iter())
                .map(|(name, cell)| {
                    let value = match (types[name].as_str(), cell) {
                        (_, "") => Value::Null,
                        ("integer" | "number" | "boolean" | "struct" | "list", cell) => serde_json::from_str(cell)
                            .unwrap_or_else(|e| panic!("{object}.{name}: cell {cell:?} is not JSON: {e}")),
                        (_, cell) => cell.into(),
                    };
                    (name.clone(), value)
                })
                .collect()
        })
        .collect()
}

/// Records of one part, whatever its format.
fn part_records(format: &str, bytes: bytes::Bytes, object: &str) -> Vec<Map<String, Value>> {
    match format {
        "jsonl" => {
            bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
        }
        "csv" => csv_records(&bytes, object),
        "parquet" => parquet_records(bytes, object),
        other => panic!("unknown format {other}"),
    }
}

/// The published parts of a file destination (a local folder or an S3 prefix), by path.
trait Published {
    /// Paths (relative to the folder or prefix) of every published file under `folder`.
    fn list(&self, folder: &str) -> Vec<String>;
    fn read(&self, path: &str) -> bytes::Bytes;
}

impl Published for PathBuf {
    fn list(&self, folder: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.join(folder)) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| format!("{folder}/{n}"))
            .collect();
        names.sort();
        names
    }

    fn read(&self, path: &str) -> bytes::Bytes {
        std::fs::read(self.join(path)).unwrap().into()
    }
}

/// An S3 prefix, read with object_store.
struct Bucket {
    store: object_store::aws::AmazonS3,
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

impl Bucket {
    fn new(bucket: &str, prefix: &str) -> Bucket {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Bucket { store: servers::s3().store(bucket), prefix: prefix.to_owned(), runtime }
    }
}

impl Published for Bucket {
    fn list(&self, folder: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        let location = object_store::path::Path::from(format!("{}/{folder}", self.prefix));
        let objects: Vec<object_store::ObjectMeta> =
            self.runtime.block_on(self.store.list(Some(&location)).try_collect()).unwrap();
        let mut names: Vec<String> = objects
            .iter()
            .map(|o| o.location.as_ref().strip_prefix(&format!("{}/", self.prefix)).unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    fn read(&self, path: &str) -> bytes::Bytes {
        let location = object_store::path::Path::from(format!("{}/{path}", self.prefix));
        self.runtime.block_on(async { self.store.get(&location).await.unwrap().bytes().await.unwrap() })
    }
}

/// The records of `object` across its published parts, and the manifests' account of them: every
/// published part is listed in exactly one manifest, with its record count and byte size.
fn published_records(published: &dyn Published, format: &str, object: &str) -> Vec<Map<String, Value>> {
    let parts = published.list(object);
    let mut listed: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut complete = 0;
    for manifest in published.list("_manifests") {
        let manifest: Value = serde_json::from_slice(&published.read(&manifest)).unwrap();
        complete += usize::from(manifest["status"] == "complete");
        for part in manifest["parts"].as_array().unwrap().iter().filter(|p| p["object"] == object) {
            let path = part["path"].as_str().unwrap().to_owned();
            let figures = (part["records"].as_u64().unwrap(), part["bytes"].as_u64().unwrap());
            assert!(listed.insert(path.clone(), figures).is_none(), "{path} is in two manifests");
        }
    }
    assert!(complete >= 1, "the last run wrote its manifest");
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), parts, "the manifests list exactly the published parts");
    let mut records = Vec::new();
    for part in &parts {
        let bytes = published.read(part);
        let part_records = part_records(format, bytes.clone(), object);
        assert_eq!(listed[part], (part_records.len() as u64, bytes.len() as u64), "{part}: the manifest's figures");
        records.extend(part_records);
    }
    records
}

// ---- full syncs, typed ----

#[test]
fn postgres_holds_typed_columns_and_widens_its_tables() {
    let sim = simulator();
    let expected = reference(&sim, SMALL_FLOW, &SMALL_OBJECTS);
    let url = servers::postgres().database("full_sync");
    sync(&sim, SMALL_FLOW, &url, &[]);
    for object in SMALL_OBJECTS {
        assert_same_records(object, &expected[object], &postgres_rows("full_sync", object), "postgres");
    }
    // Every column has the SQL type of its field's type.
    for object in SMALL_OBJECTS {
        let columns = postgres_types("full_sync", object);
        for (field, field_type) in field_types(object) {
            let sql = match field_type.as_str() {
                "integer" => "bigint",
                "number" => "double precision",
                "boolean" => "boolean",
                "date" => "date",
                "date-time" => "timestamp with time zone",
                "struct" | "list" => "jsonb",
                _ => "text",
            };
            assert_eq!(columns[&field], sql, "{object}.{field} ({field_type})");
        }
    }
    // A table from an older schema gets the fields it lacks, and nothing is dropped.
    let mut client = servers::postgres().connect("full_sync").unwrap();
    client.batch_execute("ALTER TABLE issue DROP COLUMN title; ALTER TABLE issue ADD COLUMN kept_by_us text").unwrap();
    sync(&sim, SMALL_FLOW, &url, &[]);
    assert_same_records("issue", &expected["issue"], &postgres_rows("full_sync", "issue"), "postgres, widened");
    let types = postgres_types("full_sync", "issue");
    assert_eq!(types["title"], "text");
    assert_eq!(types["kept_by_us"], "text");
}

#[test]
fn file_formats_hold_typed_records_in_parts_and_manifests() {
    let sim = simulator();
    let expected = reference(&sim, SMALL_FLOW, &SMALL_OBJECTS);
    for format in ["jsonl", "csv", "parquet"] {
        let dir = temp_dir();
        sync(&sim, SMALL_FLOW, &format!("{format}:{}", dir.path().display()), &[]);
        for object in SMALL_OBJECTS {
            let folder = dir.path().to_path_buf();
            let records = published_records(&folder, format, object);
            assert_same_records(object, &expected[object], &records, format);
            assert_eq!(folder.list(object).len(), 2, "{format}: one part per partition");
        }
    }
}

#[test]
fn s3_holds_typed_parquet_parts_and_manifests() {
    let sim = simulator();
    let expected = reference(&sim, SMALL_FLOW, &SMALL_OBJECTS);
    let s3 = servers::s3();
    s3.bucket("full-sync");
    let spool = temp_dir();
    let dest = format!("s3://full-sync/exports/gitlab?format=parquet&spool={}", spool.path().display());
    let printed = sync(&sim, SMALL_FLOW, &dest, &s3.env());
    assert!(!printed.contains(servers::S3_SECRET) && !printed.contains(servers::S3_KEY_ID), "{printed}");
    let bucket = Bucket::new("full-sync", "exports/gitlab");
    for object in SMALL_OBJECTS {
        let records = published_records(&bucket, "parquet", object);
        assert_same_records(object, &expected[object], &records, "s3 parquet");
    }
}

#[test]
fn s3_refuses_a_missing_bucket_before_reading_and_shows_no_secret() {
    let sim = simulator();
    let s3 = servers::s3();
    let spool = temp_dir();
    let dest = format!("s3://no-such-bucket/x?spool={}", spool.path().display());
    let run = HostRun::from(
        host_command(&sim, &["--object", "issue", "--project", "demo/api", "--dest", &dest], &s3.env())
            .output()
            .unwrap(),
    );
    let printed = run.output();
    assert!(!run.success);
    assert!(printed.contains("cannot reach s3://no-such-bucket/x"), "{printed}");
    assert!(!printed.contains(servers::S3_SECRET) && !printed.contains(servers::S3_KEY_ID), "{printed}");
    assert!(sim.requests().iter().all(|r| !r.path.ends_with("/issues")), "no issue was read");
}

#[test]
fn s3_without_credentials_says_which_variables_to_set() {
    let sim = simulator();
    let s3 = servers::s3();
    s3.bucket("no-keys");
    let spool = temp_dir();
    // No keys, and an instance metadata service that is not there (a closed port, refused at once).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut env = s3.env();
    env.push(("AWS_METADATA_ENDPOINT", format!("http://{closed}")));
    let dest = format!("s3://no-keys/x?spool={}", spool.path().display());
    let mut command = host_command(&sim, &["--object", "issue", "--project", "demo/api", "--dest", &dest], &env);
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
        .into_iter()
        .chain(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SKIP_SIGNATURE"])
    {
        command.env_remove(name); // after the server's keys: removed from them too
    }
    let run = HostRun::from(command.output().unwrap());
    let printed = run.output();
    assert!(!run.success, "{printed}");
    assert!(printed.contains("cannot reach s3://no-keys/x"), "{printed}");
    assert!(
        printed.contains("no AWS credentials are set, so they were asked of the EC2 instance metadata service")
            && printed.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{printed}"
    );
    assert!(sim.requests().iter().all(|r| !r.path.ends_with("/issues")), "no issue was read");
}

#[test]
fn a_sqlite_file_that_is_a_folder_is_refused_by_name() {
    let sim = simulator();
    let dir = temp_dir();
    let folder = dir.path().display().to_string();
    let file = dir.path().join("out.db").display().to_string();
    for (dest, state, what) in [
        (format!("sqlite:{folder}"), None, "the SQLite database"),
        (format!("sqlite:{file}"), Some(format!("sqlite:{folder}")), "the checkpoint database"),
    ] {
        let mut args = vec!["--object", "issue", "--project", "demo/api", "--dest", &dest];
        if let Some(state) = &state {
            args.extend(["--state", state]);
        }
        let run = support::host_run(&sim, &args, Some(TOKEN));
        assert!(!run.success, "{}", run.output());
        let expected = format!("cannot open {what} {folder}: it is a folder; name a database file, such as {folder}/");
        assert!(run.stderr.contains(&expected), "{}", run.output());
    }
    assert!(sim.requests().iter().all(|r| !r.path.ends_with("/issues")), "no issue was read");
}

// ---- kill -9 and resume ----

/// `bigco/monorepo`'s issues: the flow of the kill tests.
const BIG_FLOW: &[&str] = &["--object", "issue", "--project", "bigco/monorepo"];

/// Kill `host run BIG_FLOW --dest DEST` with SIGKILL once after each of `kills` further page requests,
/// then run it until it succeeds. Returns the ids upstream and the number of issue pages requested
/// in all.
fn kill_and_resume(sim: &Simulator, dest: &str, env: &[(&str, String)], kills: &[usize]) -> (BTreeSet<i64>, usize) {
    kill_and_resume_with(sim, &["--dest", dest], env, kills)
}

/// [`kill_and_resume`] with more arguments after the big flow's (`--dest`, `--state`...).
fn kill_and_resume_with(
    sim: &Simulator,
    extra: &[&str],
    env: &[(&str, String)],
    kills: &[usize],
) -> (BTreeSet<i64>, usize) {
    let mut args = BIG_FLOW.to_vec();
    args.extend_from_slice(extra);
    let pages = |sim: &Simulator| sim.requests().iter().filter(|r| r.path.ends_with("/issues")).count();
    for &after in kills {
        let before = pages(sim);
        let mut child = host_command(sim, &args, env).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        while pages(sim) < before + after {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
            assert!(started.elapsed() < Duration::from_secs(60), "the run stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut attempts = 0;
    loop {
        let output = host_command(sim, &args, env).output().unwrap();
        if output.status.success() {
            break;
        }
        attempts += 1;
        assert!(attempts < 3, "the resumed run keeps failing: {}", String::from_utf8_lossy(&output.stderr));
    }
    let world = sim.world();
    let project = world.project_by_ref("bigco/monorepo").unwrap();
    let ids: BTreeSet<i64> = world.issues(project.id).iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), BIG_ISSUES);
    let total = pages(sim);
    // One read is ids/100 pages; each kill costs at most the pages whose checkpoints were not saved:
    // those written but not yet durable (a group being made durable and the next being written:
    // the host's COMMIT_PAGES, 16, each), the two in the writer's hands (PAGES_IN_WRITER), the one
    // the plugin is returning, and the one it reads ahead: 36. Starting over would cost the kills'
    // pages again (225, against 3 × 36 = 108).
    let one_read = ids.len().div_ceil(100);
    assert!(total <= one_read + 36 * kills.len(), "{total} pages for a read of {one_read}: it did not resume");
    (ids, total)
}

/// The kill moments, in pages after each (re)start: each more than a kill may cost (36 pages, see
/// [`kill_and_resume_with`]), so that only resumed runs pass, and together fewer than one read of
/// [`BIG_ISSUES`] (300 pages), so that no run ends before it is killed, even one that started over.
const KILLS: &[usize] = &[50, 100, 75];

/// The issues of `bigco/monorepo` in the kill tests.
const BIG_ISSUES: usize = 30_000;

/// The simulator of the kill tests.
fn big_simulator() -> Simulator {
    simulator_with_big_issues(BIG_ISSUES)
}

fn ids_of(records: &[Map<String, Value>]) -> Vec<i64> {
    records.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// Every id once, and exactly the upstream's.
fn assert_exactly_once(mut ids: Vec<i64>, expected: &BTreeSet<i64>, what: &str) {
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(count, ids.len(), "{what}: {} records appear more than once", count - ids.len());
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), *expected, "{what}: not the upstream's records");
}

#[test]
fn sqlite_resumes_after_kill_9() {
    let sim = big_simulator();
    let dir = temp_dir();
    let db = dir.path().join("big.db");
    let (expected, _) = kill_and_resume(&sim, &format!("sqlite:{}", db.display()), &[], KILLS);
    // The run that completed copied its log into the database and closed both its connections: no
    // log is left (the killed runs' logs were taken up by the next run).
    assert!(!dir.path().join("big.db-wal").exists(), "SQLite's log was left behind");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM issue")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_exactly_once(ids, &expected, "sqlite");
}

#[test]
fn postgres_resumes_after_kill_9_and_a_rerun_upserts() {
    let sim = big_simulator();
    let url = servers::postgres().database("killed");
    let (expected, _) = kill_and_resume(&sim, &url, &[], KILLS);
    let ids = ids_of(&postgres_rows("killed", "issue"));
    assert_exactly_once(ids, &expected, "postgres");
    sync(&sim, BIG_FLOW, &url, &[]);
    assert_exactly_once(ids_of(&postgres_rows("killed", "issue")), &expected, "postgres, run again");
}

#[test]
fn a_page_postgres_refuses_fails_alone_and_the_pages_before_it_stay() {
    // 20 pages of issues; PostgreSQL will refuse one issue of the sixth. The pages are written in
    // groups of up to 16 in one transaction: the five before it must stay all the same.
    let sim = simulator_with_big_issues(2_000);
    let read_order: Vec<i64> =
        reference(&sim, BIG_FLOW, &["issue"])["issue"].iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let refused = read_order[550];
    let url = servers::postgres().database("refused_page");
    sync(&sim, BIG_FLOW, &url, &[]);
    let mut client = servers::postgres().connect("refused_page").unwrap();
    client
        .batch_execute(&format!(
            "TRUNCATE issue; DELETE FROM _checkpoints; ALTER TABLE issue ADD CONSTRAINT refuse_one CHECK (id <> {refused})"
        ))
        .unwrap();

    let mut args = BIG_FLOW.to_vec();
    args.extend(["--dest", &url]);
    let run = HostRun::from(host_command(&sim, &args, &[]).output().unwrap());
    assert!(!run.success, "the refused page failed the run:\n{}", run.output());
    assert!(run.output().contains("refuse_one"), "PostgreSQL's reason is shown:\n{}", run.output());
    let stored: BTreeSet<i64> = ids_of(&postgres_rows("refused_page", "issue")).into_iter().collect();
    assert_eq!(stored, read_order[..500].iter().copied().collect(), "exactly the five pages before the refused one");
    let checkpoints = postgres_rows("refused_page", "_checkpoints");
    assert!(checkpoints[0]["page_token"].is_string(), "the read stopped in progress: {checkpoints:?}");

    // Once the constraint is gone, the same command resumes at the refused page and completes.
    let before = sim.requests().len();
    client.batch_execute("ALTER TABLE issue DROP CONSTRAINT refuse_one").unwrap();
    sync(&sim, BIG_FLOW, &url, &[]);
    assert_exactly_once(
        ids_of(&postgres_rows("refused_page", "issue")),
        &read_order.iter().copied().collect(),
        "postgres",
    );
    let pages = sim.requests()[before..].iter().filter(|r| r.path.ends_with("/issues")).count();
    assert!(pages <= 16, "resumed at the refused page, not from the start: {pages} pages read");
}

#[test]
fn a_postgres_checkpoint_store_serves_a_file_destination_through_kill_9() {
    let sim = big_simulator();
    let dir = temp_dir();
    let state = servers::postgres().database("shared_state");
    let dest = format!("jsonl:{}", dir.path().display());
    let (expected, _) = kill_and_resume_with(&sim, &["--dest", &dest, "--state", &state], &[], KILLS);
    assert_exactly_once(ids_of(&published_records(&dir.path().to_path_buf(), "jsonl", "issue")), &expected, "jsonl");
    // The checkpoints live in PostgreSQL, not beside the files: the read completed, its watermark kept.
    assert!(!dir.path().join(".checkpoints.db").exists());
    let checkpoints = postgres_rows("shared_state", "_checkpoints");
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    assert_eq!(checkpoints[0]["object"], "issue");
    assert_eq!(checkpoints[0]["page_token"], Value::Null, "the read completed");
    assert!(checkpoints[0]["watermark"].is_string(), "{checkpoints:?}");
    assert_eq!(checkpoints[0]["read_mode"], "full");
}

fn files_resume_after_kill_9(format: &str) {
    let sim = big_simulator();
    let dir = temp_dir();
    let (expected, _) = kill_and_resume(&sim, &format!("{format}:{}", dir.path().display()), &[], KILLS);
    let records = published_records(&dir.path().to_path_buf(), format, "issue");
    assert_exactly_once(ids_of(&records), &expected, format);
    // Nothing is left in the spool: the resumed part was published whole.
    let leftovers: Vec<_> = walk(&dir.path().join("_spool"));
    assert!(leftovers.is_empty(), "{format}: left behind {leftovers:?}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[test]
fn jsonl_resumes_after_kill_9() {
    files_resume_after_kill_9("jsonl");
}

#[test]
fn csv_resumes_after_kill_9() {
    files_resume_after_kill_9("csv");
}

#[test]
fn parquet_resumes_after_kill_9() {
    files_resume_after_kill_9("parquet");
}

#[test]
fn s3_resumes_after_kill_9_with_a_multipart_upload() {
    let sim = big_simulator();
    let s3 = servers::s3();
    s3.bucket("killed");
    let spool = temp_dir();
    let dest = format!("s3://killed/big?spool={}", spool.path().display());
    let (expected, _) = kill_and_resume(&sim, &dest, &s3.env(), KILLS);
    let bucket = Bucket::new("killed", "big");
    let records = published_records(&bucket, "jsonl", "issue");
    assert_exactly_once(ids_of(&records), &expected, "s3");
    let part = &bucket.list("issue")[0];
    let size = bucket.read(part).len();
    assert!(size > 16 << 20, "the part ({size} bytes) is big enough to go up in several parts");
}
