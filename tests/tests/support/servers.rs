//! Real servers for the destination tests, on 127.0.0.1, each started once per test process and
//! stopped when it exits:
//!
//! - PostgreSQL from Debian's `postgresql` package: `initdb` into a temporary folder, then `postgres`
//!   on a free port, trusting local connections. PostgreSQL refuses to run as root, so as root the
//!   server runs as the package's `postgres` user.
//! - An S3-compatible server: moto's (`pip install 'moto[server]'`), on a free port.
//!
//! The servers are stopped by an `atexit` handler when the test process ends (libtest exits through
//! `exit`), and, should the process be killed, by the kernel (`PR_SET_PDEATHSIG`, set on processes
//! forked from a thread that lives as long as the process). `.ci/run` installs both packages.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A server process to stop at exit, and the folder to remove after it.
struct Running {
    pid: i32,
    signal: i32,
    dir: Option<PathBuf>,
}

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

extern "C" fn stop_servers() {
    let Ok(mut running) = RUNNING.try_lock() else { return };
    for server in running.drain(..) {
        // SAFETY: plain system calls on a child of this process.
        unsafe {
            libc::kill(server.pid, server.signal);
            let mut status = 0;
            libc::waitpid(server.pid, &mut status, 0);
        }
        if let Some(dir) = server.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

type SpawnRequest = (Command, i32, mpsc::Sender<std::io::Result<Child>>);

/// Spawn `command` so that it receives `death_signal` when this process dies, and is stopped (sent
/// `stop_signal`, then waited for) at exit; returns its process id. The kernel sends the death signal when the forking *thread* ends, so every server is
/// forked by one thread that never ends.
fn spawn_server(command: Command, death_signal: i32, stop_signal: i32, dir: Option<PathBuf>) -> u32 {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_servers) };
        let (requests, queue) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-server-keeper".into())
            .spawn(move || {
                for (mut command, signal, reply) in queue {
                    // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
                    unsafe {
                        command.pre_exec(move || {
                            libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong);
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the server keeper thread");
        Mutex::new(requests)
    });
    let (reply, answer) = mpsc::channel();
    keeper.lock().unwrap().send((command, death_signal, reply)).expect("the server keeper is alive");
    let child = answer.recv().expect("the server keeper answers").expect("starting a test server");
    let pid = child.id();
    // Waited for by `stop_servers`, at exit.
    drop(child);
    RUNNING.lock().unwrap().push(Running { pid: pid as i32, signal: stop_signal, dir });
    pid
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait until `ready` holds, or panic naming `what` (and what its log says).
fn wait_for(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start within 60 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `program` on the PATH, if there.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

/// The user id and group id of `user` in /etc/passwd.
fn system_user(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.split(':').next() == Some(user))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// A PostgreSQL server of this test process.
pub struct Postgres {
    pub port: u16,
    pub user: String,
}

/// The PostgreSQL server, started on first use.
pub fn postgres() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(start_postgres)
}

/// The folder of PostgreSQL's programs: where `initdb` is on the PATH, else Debian's newest
/// `/usr/lib/postgresql/VERSION/bin`.
fn postgres_bin() -> PathBuf {
    if let Some(initdb) = on_path("initdb") {
        return initdb.parent().unwrap().to_owned();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL is not installed: `apt-get install postgresql` (the destination tests start their own server)",
    )
}

fn start_postgres() -> Postgres {
    let bin = postgres_bin();
    let dir = tempfile::Builder::new().prefix("gitlab-host-pg").tempdir().unwrap().keep();
    // PostgreSQL refuses to run as root: run it as the package's `postgres` user.
    let as_user = if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = system_user("postgres")
            .expect("running as root, PostgreSQL needs the `postgres` user that Debian's postgresql package creates");
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        Some((uid, gid))
    } else {
        None
    };
    let command = |program: &str| {
        let mut command = Command::new(bin.join(program));
        if let Some((uid, gid)) = as_user {
            command.uid(uid).gid(gid);
        }
        command.env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
        command
    };
    let user = "gitlab_host_test".to_owned();
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    let initdb = command("initdb")
        .args(["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "-U", &user, "-D"])
        .arg(&data)
        .output()
        .expect("running initdb");
    assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));

    let port = free_port();
    let log_file = std::fs::File::create(&log).unwrap();
    let mut server = command("postgres");
    server
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=200", "-k"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    // SIGQUIT at the test process's death (the server ends its backends at once), SIGINT (a fast
    // shutdown) at its exit.
    spawn_server(server, libc::SIGQUIT, libc::SIGINT, Some(dir.clone()));
    let server = Postgres { port, user };
    wait_for("PostgreSQL", &log, || server.connect("postgres").is_ok());
    server
}

impl Postgres {
    /// The URL of `database`, as the host takes it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{database}", self.user, self.port)
    }

    pub fn connect(&self, database: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(&self.url(database), postgres::NoTls)
    }

    /// A new, empty database named `name` (dropped first if a test left one), and its URL.
    pub fn database(&self, name: &str) -> String {
        let mut admin = self.connect("postgres").unwrap();
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(name)
    }
}

/// The S3-compatible server of this test process.
pub struct S3 {
    pub endpoint: String,
}

/// The access key and secret the tests give the host (moto accepts any).
pub const S3_KEY_ID: &str = "AKIATESTKEYID0000001";
pub const S3_SECRET: &str = "test-secret-9f8e7d6c5b4a";

/// The S3 server, started on first use.
pub fn s3() -> &'static S3 {
    static SERVER: OnceLock<S3> = OnceLock::new();
    SERVER.get_or_init(start_s3)
}

fn start_s3() -> S3 {
    let port = free_port();
    let dir = tempfile::Builder::new().prefix("gitlab-host-s3").tempdir().unwrap().keep();
    let log = dir.join("moto.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut command = match on_path("moto_server") {
        Some(program) => Command::new(program),
        None => {
            let mut python = Command::new("python3");
            python.args(["-m", "moto.server"]);
            python
        }
    };
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    spawn_server(command, libc::SIGKILL, libc::SIGTERM, Some(dir));
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for("moto's S3 server (pip install 'moto[server]')", &log, || {
        ureq::get(&format!("{endpoint}/moto-api/")).call().is_ok()
    });
    S3 { endpoint }
}

impl S3 {
    /// Create the bucket `name`.
    pub fn bucket(&self, name: &str) {
        let response = ureq::put(&format!("{}/{name}", self.endpoint)).send_empty();
        assert!(response.is_ok(), "creating the bucket {name}: {response:?}");
    }

    /// The environment the host reads S3's address and keys from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", S3_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// An object_store client of `bucket`, as the host configures it.
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in self.env() {
            builder = builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value);
        }
        builder.build().unwrap()
    }
}
