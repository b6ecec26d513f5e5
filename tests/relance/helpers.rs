//! Test helpers: fresh databases on each backend, a scratch directory with a
//! configuration, and running the `relance` binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use relance::config::DatabaseUrl;
use relance::store::{self, Store};
use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn postgres_admin_url() -> Option<String> {
    std::env::var("RELANCE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Says, visibly even under output capture, that the PostgreSQL run is skipped.
pub fn say_postgres_skipped(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "note: {test}: PostgreSQL run skipped, RELANCE_TEST_POSTGRES_URL is not set"
    );
}

/// A database for one test: a SQLite file in a temp dir, or a new PostgreSQL database.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        TestDb {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A new, empty PostgreSQL database. Fails the test if the server is unreachable.
    pub async fn postgres(admin_url: &str) -> TestDb {
        let name = format!(
            "relance_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            chrono::Utc::now().timestamp_subsec_nanos()
        );
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("RELANCE_TEST_POSTGRES_URL is set but the server is unreachable: {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        TestDb {
            url: format!("{base}/{name}"),
            _dir: None,
            pg: Some((admin_url.to_string(), name)),
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        let s = store::open(&DatabaseUrl::new(self.url.clone()), 4)
            .await
            .expect("open store");
        s.migrate().await.expect("migrate");
        s
    }

    /// Drops a PostgreSQL test database (SQLite files go with their temp dir).
    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// A scratch directory holding a `relance.yaml` that points at a SQLite file in it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

pub const MINIMAL_CONFIG: &str = "\
database:
  url: sqlite://ledger.db
company:
  name: Test SAS
  currency: EUR
  address: { country: FR }
timezone: Europe/Paris
late_payment:
  reference_rates:
    - { from: 2026-01-01, rate: \"2.15\" }
    - { from: 2026-07-01, rate: \"2.15\" }
";

impl Workspace {
    pub fn new() -> Workspace {
        let w = Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        w.write("relance.yaml", MINIMAL_CONFIG);
        w
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// Writes `customers.csv` and `invoices.csv` and imports them.
    pub fn import_ledger(&self, customers: &str, invoices: &str) {
        self.write("customers.csv", customers);
        self.write("invoices.csv", invoices);
        self.relance(&["import", "customers", "customers.csv"])
            .expect_code(0);
        self.relance(&["import", "invoices", "invoices.csv"])
            .expect_code(0);
    }

    /// Starts `relance dispatch --once` with the crash-injection point `failpoint`
    /// (`dispatch-after-claim`, `pause-after-claim`, `dispatch-after-send`).
    pub fn dispatch_with_failpoint(&self, failpoint: &str) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_relance"))
            .arg("--config")
            .arg(self.path("relance.yaml"))
            .args(["dispatch", "--once"])
            .current_dir(self.dir.path())
            .env("RELANCE_FAILPOINT", failpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run relance")
    }

    /// Runs `relance --config <workspace>/relance.yaml ARGS` in the workspace.
    pub fn relance(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_relance"))
            .arg("--config")
            .arg(self.path("relance.yaml"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RELANCE_DATABASE_URL")
            .env_remove("RELANCE_CONFIG")
            .env_remove("RELANCE_LOG")
            .output()
            .expect("run relance");
        Run::from(out)
    }
}

/// Runs the binary with exactly these arguments, in `dir`.
pub fn relance_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(args)
        .current_dir(dir)
        .env_remove("RELANCE_DATABASE_URL")
        .env_remove("RELANCE_CONFIG")
        .output()
        .expect("run relance");
    Run::from(out)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The repository's root, for the shipped examples.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A workspace whose configuration maps each named segment to `rules/<segment>.rhai`,
/// with `extra` appended to the configuration.
pub fn workspace_with_rules_and(rules: &[(&str, &str)], extra: &str) -> Workspace {
    let w = Workspace::new();
    std::fs::create_dir_all(w.path("rules")).unwrap();
    let mut config = format!("{MINIMAL_CONFIG}insurers:\n  coface-fr:\n    name: Coface\n    declaration_deadline_days: 90\nsegments:\n");
    for (segment, source) in rules {
        w.write(&format!("rules/{segment}.rhai"), source);
        config.push_str(&format!(
            "  {segment}:\n    rules: rules/{segment}.rhai\n    schedule: \"0 0 9 * * Mon-Fri\"\n"
        ));
    }
    config.push_str(extra);
    w.write("relance.yaml", config);
    w
}

/// A running `relance serve --listen 127.0.0.1:0`: its process, the base URL of its
/// HTTP API, and its log (standard error) as it grows.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    pub log: Arc<std::sync::Mutex<String>>,
}

impl Workspace {
    /// Starts `relance serve` on a free port with these extra environment variables and
    /// waits until its HTTP API listens.
    pub fn serve(&self, env: &[(&str, &str)]) -> Served {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_relance"))
            .args(["--config", self.path("relance.yaml").to_str().unwrap()])
            .args(["serve", "--grace", "5", "--listen", "127.0.0.1:0"])
            .current_dir(self.dir.path())
            .env_remove("RELANCE_LOG")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run relance serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("HTTP API listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&format!("{line}\n"));
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the service did not start:\n{}",
                    log.lock().unwrap_or_else(|e| e.into_inner())
                )
            });
        Served {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    /// Creates an API token with these scopes; returns its secret.
    pub fn token(&self, name: &str, scope: &str) -> String {
        let r = self.relance(&["tokens", "create", "--name", name, "--scope", scope]);
        r.expect_code(0);
        r.stdout.trim().to_string()
    }
}

impl Served {
    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the service with SIGTERM, checks it exits 0, and returns its log.
    pub fn stop(mut self) -> String {
        // SAFETY: signalling the child this test spawned.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let log = self.log();
        assert_eq!(status.code(), Some(0), "{log}");
        log
    }
}

/// The service started in-process through the library's composition root
/// (`relance::runtime::launch`), on its own runtime and threads, listening on port 0,
/// with its log captured apart from any other service the tests run at the same time.
pub struct InProcess {
    pub base: String,
    log: Arc<std::sync::Mutex<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ended: std::sync::mpsc::Receiver<Result<(), String>>,
}

/// A log destination for one in-process service.
struct LogSink(Arc<std::sync::Mutex<String>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Workspace {
    /// Starts the service of this workspace's `relance.yaml` in-process (as
    /// `relance serve --grace 5 --listen 127.0.0.1:0` would) and waits until it listens.
    pub fn launch(&self) -> InProcess {
        self.launch_with(|_, _| {})
    }

    /// [`Workspace::launch`], with the configuration and options adjusted first.
    pub fn launch_with(
        &self,
        adjust: impl FnOnce(&mut relance::config::Config, &mut relance::runtime::ServeOptions),
    ) -> InProcess {
        let mut config = relance::config::Config::load(Some(&self.path("relance.yaml")))
            .unwrap_or_else(|e| panic!("the configuration does not load: {e:?}"));
        let mut opts = relance::runtime::ServeOptions {
            grace: std::time::Duration::from_secs(5),
            ..relance::runtime::ServeOptions::default()
        };
        adjust(&mut config, &mut opts);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let dispatch = relance::telemetry::dispatch(
            relance::telemetry::LogFormat::Human,
            tracing_subscriber::EnvFilter::new("info,sqlx=warn"),
            false,
            move || LogSink(sink.clone()),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _log = tracing::dispatcher::set_default(&dispatch);
            let on_start = dispatch.clone();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                // Every thread of this service logs into its own log for as long as
                // the thread lives.
                .on_thread_start(move || {
                    std::mem::forget(tracing::dispatcher::set_default(&on_start));
                })
                .build()
                .unwrap();
            let result = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                relance::runtime::launch(std::sync::Arc::new(config), opts, Some(listener), async {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string())
            });
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            let _ = done.send(result);
        });
        let service = InProcess {
            base,
            log,
            stop: Some(stop),
            ended,
        };
        let started = std::time::Instant::now();
        while !service.log().contains("relance is running") {
            if let Ok(result) = service.ended.try_recv() {
                panic!(
                    "the service stopped at start: {result:?}\n{}",
                    service.log()
                );
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the service did not start:\n{}",
                service.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        service
    }
}

impl InProcess {
    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until a line of the log contains every one of `what`; returns that line.
    pub fn wait_for_line(&self, what: &[&str]) -> String {
        let started = std::time::Instant::now();
        loop {
            let text = self.log();
            if let Some(line) = text.lines().find(|l| what.iter().all(|w| l.contains(w))) {
                return line.to_string();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "no line with {what:?} in the log:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops the service through its shutdown future, checks it ended without error,
    /// and returns its log.
    pub fn stop(mut self) -> String {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = self
            .ended
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the service did not stop:\n{}", self.log()));
        let log = self.log();
        assert_eq!(result, Ok(()), "{log}");
        log
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // A test that failed half-way: stop the service rather than leave it running.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let _ = self.ended.recv_timeout(std::time::Duration::from_secs(30));
        }
    }
}

/// What the tests read of a running service, in-process or a `relance serve` process.
pub trait Service {
    fn base(&self) -> &str;
    fn log(&self) -> String;
}

impl Service for InProcess {
    fn base(&self) -> &str {
        &self.base
    }
    fn log(&self) -> String {
        InProcess::log(self)
    }
}

impl Service for Served {
    fn base(&self) -> &str {
        &self.base
    }
    fn log(&self) -> String {
        Served::log(self)
    }
}

impl Workspace {
    /// Runs `f` while the configuration also has segment `name` (a script of nothing):
    /// a customer imported meanwhile belongs to a segment that is then removed.
    pub fn with_segment_for_a_while(&self, name: &str, f: impl FnOnce()) {
        let cfg = std::fs::read_to_string(self.path("relance.yaml")).unwrap();
        assert!(cfg.contains("segments:\n"), "{cfg}");
        self.write(&format!("rules/{name}.rhai"), "[]");
        self.write(
            "relance.yaml",
            cfg.replacen(
                "segments:\n",
                &format!("segments:\n  {name}:\n    rules: rules/{name}.rhai\n    schedule: \"0 0 9 * * Mon-Fri\"\n"),
                1,
            ),
        );
        f();
        self.write("relance.yaml", cfg);
        let _ = std::fs::remove_file(self.path(&format!("rules/{name}.rhai")));
    }
}
