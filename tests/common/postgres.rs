//! A real PostgreSQL server for the tests (Debian's `postgresql`): `initdb` and `postgres` in a
//! temporary directory, listening on 127.0.0.1 on a free port (its unix socket in the same
//! directory). PostgreSQL refuses to run as root, so when the tests run as root both run as
//! `nobody` (`setpriv`, which execs, so the child is the server itself). One server per test
//! binary ([`PostgresServer::shared`]); a test may stop and start it. A watchdog shell stops it
//! and removes the directory when the test process exits (a server in a `static` is never
//! dropped); [`Drop`] stops it too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::etcd::free_port;

/// The superuser `initdb` creates, and its password (the server asks for passwords: scram).
pub const SUPERUSER: &str = "potter";
const SUPERUSER_PASSWORD: &str = "potter-test-superuser";
/// A login role that may only SELECT, as an operator would configure for a source.
pub const READER: &str = "potter_reader";
pub const READER_PASSWORD: &str = "reader-secret-5d1c";
/// The database the tests use.
pub const DATABASE: &str = "settings";

pub struct PostgresServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    process: Mutex<Option<Child>>,
    /// Tests that query hold it for reading; a test that stops the server holds it for writing.
    running: RwLock<()>,
    _watchdog: Child,
}

/// `/usr/lib/postgresql/<version>/bin`, the newest installed.
fn binaries() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian's postgresql) is installed by scripts/setup")
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    found.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
    found.pop().expect("no /usr/lib/postgresql/*/bin/postgres")
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0").unwrap_or(false)
}

/// `program` as the unprivileged user when the tests run as root.
fn unprivileged(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// The test binary's server, started on first use.
    pub fn shared() -> &'static PostgresServer {
        static SERVER: OnceLock<PostgresServer> = OnceLock::new();
        SERVER.get_or_init(PostgresServer::start)
    }

    fn start() -> PostgresServer {
        let dir = tempfile::Builder::new().prefix("potter-postgres-").tempdir().unwrap().keep();
        let bin = binaries();
        if running_as_root() {
            let status = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(&dir).status().unwrap();
            assert!(status.success(), "chown of {}", dir.display());
        }
        let password_file = dir.join("superuser-password");
        std::fs::write(&password_file, SUPERUSER_PASSWORD).unwrap();
        if running_as_root() {
            Command::new("chown").args(["nobody:nogroup"]).arg(&password_file).status().unwrap();
        }
        let initdb = unprivileged(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", password_file.display()))
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        let watchdog = super::watchdog("postgres-watchdog", &dir, r#"[ -f "$1/postgres.pid" ] && kill -INT "$(cat "$1/postgres.pid")" 2>/dev/null && sleep 1; rm -rf "$1""#);
        let server = PostgresServer { dir, bin, port: free_port(), process: Mutex::new(None), running: RwLock::new(()), _watchdog: watchdog };
        server.start_process();
        server.psql_as(SUPERUSER, "postgres", &format!("CREATE DATABASE {DATABASE}"));
        server.psql(&format!(
            "CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}';
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER};"
        ));
        server
    }

    fn start_process(&self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("postgres.log")).unwrap();
        let child = unprivileged(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        std::fs::write(self.dir.join("postgres.pid"), child.id().to_string()).unwrap();
        *self.process.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.try_psql(SUPERUSER, "postgres", "SELECT 1").status.success() {
            assert!(Instant::now() < deadline, "postgres did not start; see {}", self.dir.join("postgres.log").display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fast shutdown (SIGINT), waiting for the server to exit.
    fn stop_process(&self) {
        if let Some(mut child) = self.process.lock().unwrap().take() {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Held while a test relies on the server running.
    pub fn in_use(&self) -> RwLockReadGuard<'_, ()> {
        self.running.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held while a test stops and starts the server (no other test queries meanwhile).
    pub fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.running.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the server (hold [`Self::exclusive`]).
    pub fn stop(&self) {
        self.stop_process();
    }

    /// Starts it again with its data (hold [`Self::exclusive`]).
    pub fn restart(&self) {
        self.start_process();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `user` (no password: the host reads it from a variable).
    pub fn url(&self, user: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    fn try_psql(&self, user: &str, database: &str, sql: &str) -> std::process::Output {
        let password = if user == SUPERUSER { SUPERUSER_PASSWORD } else { READER_PASSWORD };
        Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .unwrap()
    }

    fn psql_as(&self, user: &str, database: &str, sql: &str) -> String {
        let out = self.try_psql(user, database, sql);
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `sql` as the superuser in the tests' database; returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as(SUPERUSER, DATABASE, sql)
    }

    /// A table of settings rows under a fresh name (each test its own), readable by the reader.
    pub fn settings_table(&self, prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let table = format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql(&format!(
            "CREATE SEQUENCE {table}_versions;
             CREATE TABLE {table} (
                 environment text NOT NULL,
                 key text NOT NULL,
                 value text NOT NULL,
                 version bigint NOT NULL DEFAULT nextval('{table}_versions'),
                 PRIMARY KEY (environment, key)
             );"
        ));
        table
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop_process();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
