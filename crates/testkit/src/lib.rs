//! Test harness shared by Gust's integration tests and benches: builds the test functions in
//! `tests/functions` for Wasm, and starts real `gust serve` processes on port 0 with a
//! temporary data directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The master key every process of a test on a shared store (PostgreSQL) is given: they must
/// all hold the same one, as a cluster's processes do.
pub const TEST_MASTER_KEY: &str =
    "6775737420746573742d6f6e6c79206d6173746572206b65792c206e6f742073";

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit is two levels below the root")
        .to_path_buf()
}

fn build_functions(target: &str) -> PathBuf {
    build_package("tests/functions/Cargo.toml", target)
}

/// Makes sure the toolchain has the standard library of `target`, adding it with rustup when
/// it is missing: rustup installs the targets `rust-toolchain.toml` lists only when it installs
/// the toolchain, so a machine that already had the toolchain lacks them. Without rustup it
/// panics with the command to run.
pub fn ensure_target(target: &str) {
    static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.iter().any(|t| t == target) {
        return;
    }
    let root = workspace_root();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(&root)
        .output()
        .expect("cannot run rustc");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let libdir = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("lib");
    if !libdir.is_dir() {
        eprintln!("the toolchain lacks {target}: running `rustup target add {target}`");
        let added = Command::new("rustup")
            .args(["target", "add", target])
            .current_dir(&root)
            .status();
        assert!(
            matches!(added, Ok(s) if s.success()),
            "the Rust standard library for {target} is missing and rustup could not add it: \
             run `rustup target add {target}`"
        );
    }
    checked.push(target.to_string());
}

/// Builds the test package at `manifest` (relative to the root) for `target`, release.
fn build_package(manifest: &str, target: &str) -> PathBuf {
    ensure_target(target);
    let root = workspace_root();
    let target_dir = root.join("target").join("functions");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            target,
            "--target-dir",
        ])
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(root.join(manifest))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cannot run cargo to build the test functions");
    assert!(
        status.success(),
        "building the test functions for {target} failed"
    );
    target_dir.join(target).join("release")
}

/// The bytes of test function `name` built for `wasm32-wasip1`.
pub fn function(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| build_functions("wasm32-wasip1"));
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The bytes of test function `name` built as a `wasm32-wasip2` command component.
pub fn component(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| build_functions("wasm32-wasip2"));
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The bytes of the test wasi:http handler (`tests/http-handler`), a `wasm32-wasip2`
/// component exporting `wasi:http/incoming-handler`.
pub fn http_handler() -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| build_package("tests/http-handler/Cargo.toml", "wasm32-wasip2"));
    std::fs::read(dir.join("gust_test_http_handler.wasm"))
        .unwrap_or_else(|e| panic!("gust_test_http_handler.wasm: {e}"))
}

/// Whether this process runs as root (the process sandbox needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

/// A Lambda custom runtime built with AWS's Rust `lambda_runtime` crate
/// (`tests/lambda-rust`), the `bootstrap` executable of a `provided.al2023` function.
pub fn lambda_rust_bootstrap() -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| build_package("tests/lambda-rust/Cargo.toml", "x86_64-unknown-linux-gnu"));
    std::fs::read(dir.join("bootstrap")).unwrap_or_else(|e| panic!("bootstrap: {e}"))
}

/// The JavaScript wasi:http handler (`tests/js-handler/handler.js` compiled with
/// componentize-js), or `None` when its npm packages are not installed
/// (`npm ci --prefix tests/js-handler`).
pub fn js_handler() -> Option<Vec<u8>> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let root = workspace_root();
            let dir = root.join("tests/js-handler");
            if !dir
                .join("node_modules/@bytecodealliance/componentize-js")
                .exists()
            {
                return None;
            }
            let out_dir = root.join("target").join("functions");
            std::fs::create_dir_all(&out_dir).expect("target/functions");
            let out = out_dir.join("js-handler.wasm");
            let status = Command::new("node")
                .arg(dir.join("build.mjs"))
                .arg(&out)
                .status()
                .expect("cannot run node to build the JavaScript handler");
            assert!(status.success(), "building the JavaScript handler failed");
            Some(std::fs::read(&out).expect("js-handler.wasm"))
        })
        .clone()
}

/// A running `gust serve`.
pub struct Server {
    pub child: Child,
    pub apihost: String,
    pub auth: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    bin: PathBuf,
    /// The PostgreSQL schema this server stores into, when the suite runs on PostgreSQL.
    schema: Option<Arc<Schema>>,
    /// The NATS cluster name this server's bus uses, when the suite runs on NATS.
    cluster: Option<Arc<NatsCluster>>,
    /// Extra `serve` flags, given again on a restart.
    args: Vec<String>,
    pub client: reqwest::Client,
    /// Everything the process wrote to stdout and stderr so far (stderr is also copied to
    /// the test's stderr).
    output: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts `bin serve` on a fresh temporary data directory, and on a fresh PostgreSQL
    /// schema when `GUST_TEST_STORE=postgres` (see [`store_under_test`]).
    pub fn start(bin: impl AsRef<Path>) -> Server {
        Self::start_with(bin, &[])
    }

    /// [`Server::start`] with more `serve` flags. Servers keep no prewarmed processes
    /// (`--stem-cells 0`) unless the flags ask for them.
    pub fn start_with(bin: impl AsRef<Path>, args: &[&str]) -> Server {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let schema = match store_under_test() {
            StoreUnderTest::Postgres(url) => Some(Arc::new(Schema::create(&url))),
            StoreUnderTest::Sqlite => None,
        };
        let cluster = bus_under_test().map(|url| Arc::new(NatsCluster::new(&url)));
        let mut s = Self::start_in(bin.as_ref(), &dir, schema, cluster, args);
        s._tmp = Some(tmp);
        s
    }

    /// `--store URL` for this server's `serve` and `admin`, when it is not the embedded store.
    pub fn store_args(&self) -> Vec<String> {
        match &self.schema {
            Some(schema) => vec!["--store".into(), schema.url.clone()],
            None => Vec::new(),
        }
    }

    /// Starts `bin serve` on `data_dir` (and on `schema` and `cluster`, if given).
    fn start_in(
        bin: &Path,
        data_dir: &Path,
        schema: Option<Arc<Schema>>,
        cluster: Option<Arc<NatsCluster>>,
        args: Vec<String>,
    ) -> Server {
        let mut extra: Vec<String> = match &schema {
            Some(schema) => vec!["--store".into(), schema.url.clone()],
            None => Vec::new(),
        };
        if let Some(c) = &cluster {
            extra.extend([
                "--bus".into(),
                c.url.clone(),
                "--cluster".into(),
                c.name.clone(),
            ]);
        }
        let mut child = Command::new(bin)
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-client-config",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .args(&args)
            .env_remove("GUST_GUEST_AUTH")
            .env_remove("GUST_MASTER_KEY")
            .envs(
                schema
                    .as_ref()
                    .map(|_| ("GUST_MASTER_KEY", TEST_MASTER_KEY)),
            )
            .env("GUST_STEM_CELLS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start gust serve");
        let output: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let keep = |line: &str, output: &std::sync::Mutex<Vec<u8>>| {
            let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        };
        let stderr = child.stderr.take().expect("stderr");
        let copy = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                keep(&line, &copy);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut apihost, mut auth) = (String::new(), String::new());
        while apihost.is_empty() || auth.is_empty() {
            let line = lines
                .next()
                .expect("gust serve exited before it was ready")
                .expect("read stdout");
            keep(&line, &output);
            if let Some(h) = line.strip_prefix("gust: API host ") {
                apihost = h.to_string();
            }
            if let Some(k) = line.strip_prefix("gust: guest key ") {
                auth = k.to_string();
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        let copy = output.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep(&line, &copy);
            }
        });
        Server {
            child,
            apihost,
            auth,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            bin: bin.to_path_buf(),
            schema,
            cluster,
            args,
            output,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
        }
    }

    /// Stops the server with SIGKILL (no chance to clean up) and starts it again on the same
    /// data directory.
    pub fn kill_and_restart(self) -> Server {
        self.kill_and_restart_after(Duration::ZERO)
    }

    /// Like [`Self::kill_and_restart`], with the server down for `down` in between.
    pub fn kill_and_restart_after(mut self, down: Duration) -> Server {
        self.kill();
        std::thread::sleep(down);
        self.restart()
    }

    /// Stops the server with SIGKILL and waits for it to exit; [`Self::restart`] starts it
    /// again.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a stopped server again on the same data directory.
    pub fn restart(mut self) -> Server {
        let tmp = self._tmp.take();
        let mut s = Self::start_in(
            &self.bin,
            &self.data_dir,
            self.schema.clone(),
            self.cluster.clone(),
            self.args.clone(),
        );
        s._tmp = tmp;
        s
    }

    /// Stops the server with SIGTERM, waits for it, and starts it again on the same data dir.
    pub fn stop_and_restart(mut self) -> Server {
        self.terminate();
        self.restart()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// What this process (since its last start) wrote to stdout and stderr.
    pub fn output(&self) -> String {
        let out = self.output.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Runs `gust admin` on this server's data directory; returns stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("admin")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(self.store_args())
            .args(args)
            .output()
            .expect("gust admin");
        assert!(
            out.status.success(),
            "gust admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.apihost, path)
    }

    fn split(auth: &str) -> (String, String) {
        let (u, k) = auth.split_once(':').expect("uuid:key");
        (u.to_string(), k.to_string())
    }

    /// Sends a request with the guest key; returns status, headers and JSON body (or the
    /// text as a JSON string when it is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.call_as(&self.auth.clone(), method, path, body).await
    }

    /// Like [`Self::call`] with another key (`uuid:key`); an empty `auth` sends none.
    pub async fn call_as(
        &self,
        auth: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if !auth.is_empty() {
            let (u, k) = Self::split(auth);
            req = req.basic_auth(u, Some(k));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Response::read(req.send().await.expect("request")).await
    }

    /// Sends raw bytes as the body.
    pub async fn call_raw(&self, method: &str, path: &str, body: Vec<u8>) -> Response {
        self.try_call_raw(method, path, body)
            .await
            .expect("request")
    }

    /// Sends raw bytes as the body; `None` when the server closed the connection before it
    /// had read the whole body (what a server may do with an oversized request).
    pub async fn try_call_raw(&self, method: &str, path: &str, body: Vec<u8>) -> Option<Response> {
        let (u, k) = Self::split(&self.auth);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let req = self
            .client
            .request(method, self.url(path))
            .basic_auth(u, Some(k))
            .header("content-type", "application/json")
            .body(body);
        match req.send().await {
            Ok(r) => Some(Response::read(r).await),
            Err(_) => None,
        }
    }

    /// Sends a request without the guest key (a web action's caller): any method, these
    /// headers, this body.
    pub async fn web(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Response::read(req.send().await.expect("request")).await
    }

    /// Creates (or replaces) action `name` from Wasm bytes, with extra fields merged into the
    /// PUT body; panics unless the server answers 200.
    pub async fn create(&self, name: &str, code: &[u8], extra: Value) -> Value {
        let r = self.put_action(name, code, extra).await;
        assert_eq!(r.status, 200, "creating {name}: {}", r.body);
        r.body
    }

    /// PUTs action `name` with `overwrite=true`.
    pub async fn put_action(&self, name: &str, code: &[u8], extra: Value) -> Response {
        let mut body = json!({
            "exec": { "kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(code), "binary": true }
        });
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        self.call(
            "PUT",
            &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
            Some(body),
        )
        .await
    }

    /// Invokes blocking and returns the response.
    pub async fn invoke(&self, name: &str, params: Value) -> Response {
        self.call(
            "POST",
            &format!("/api/v1/namespaces/_/actions/{name}?blocking=true"),
            Some(params),
        )
        .await
    }

    /// Polls until the record of `id` is readable (or 60 s pass).
    pub async fn wait_for_record(&self, id: &str) -> Value {
        for _ in 0..600 {
            let r = self
                .call(
                    "GET",
                    &format!("/api/v1/namespaces/_/activations/{id}"),
                    None,
                )
                .await;
            if r.status == 200 {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no record for {id}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
    /// The body as it came.
    pub bytes: Vec<u8>,
}

impl Response {
    async fn read(r: reqwest::Response) -> Response {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body").to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response {
            status,
            headers,
            body,
            bytes,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` text of an error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// Which store the integration tests run `gust serve` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUnderTest {
    /// The embedded SQLite store (the default).
    Sqlite,
    /// PostgreSQL at this URL: `GUST_TEST_STORE=postgres` with `GUST_TEST_POSTGRES_URL` set.
    Postgres(String),
}

/// The store the suite runs on, from `GUST_TEST_STORE` (`sqlite` or `postgres`).
/// `postgres` without `GUST_TEST_POSTGRES_URL` is a mistake in the test set-up: it panics.
pub fn store_under_test() -> StoreUnderTest {
    match std::env::var("GUST_TEST_STORE").as_deref() {
        Ok("postgres") => StoreUnderTest::Postgres(
            postgres_url().expect("GUST_TEST_STORE=postgres needs GUST_TEST_POSTGRES_URL"),
        ),
        Ok("sqlite") | Err(_) => StoreUnderTest::Sqlite,
        Ok(other) => panic!("GUST_TEST_STORE={other}: expected sqlite or postgres"),
    }
}

/// The NATS URL the suite runs every server's bus on: `GUST_TEST_BUS=nats` with
/// `GUST_TEST_NATS_URL` set; None for the in-process bus.
pub fn bus_under_test() -> Option<String> {
    match std::env::var("GUST_TEST_BUS").as_deref() {
        Ok("nats") => Some(nats_url().expect("GUST_TEST_BUS=nats needs GUST_TEST_NATS_URL")),
        Ok("memory") | Err(_) => None,
        Ok(other) => panic!("GUST_TEST_BUS={other}: expected memory or nats"),
    }
}

/// `GUST_TEST_NATS_URL`, if the machine offers a NATS server with JetStream for tests.
pub fn nats_url() -> Option<String> {
    std::env::var("GUST_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A NATS cluster name of one test's own; its invocation stream is deleted when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    pub url: String,
    pub name: String,
}

impl NatsCluster {
    pub fn new(url: &str) -> NatsCluster {
        NatsCluster {
            url: url.to_string(),
            name: format!("test_{}", uuid_like()),
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), gust_bus::nats::invoke_stream(&self.name));
        on_own_runtime(async move {
            if let Ok(client) = async_nats::connect(&url).await {
                let _ = async_nats::jetstream::new(client)
                    .delete_stream(stream)
                    .await;
            }
        });
    }
}

/// `GUST_TEST_POSTGRES_URL`, if the machine offers a PostgreSQL for tests.
pub fn postgres_url() -> Option<String> {
    std::env::var("GUST_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh PostgreSQL schema of one test's own, dropped with everything in it when the
/// value is dropped. `url` selects it through the search path.
#[derive(Debug)]
pub struct Schema {
    pub url: String,
    base: String,
    name: String,
}

impl Schema {
    pub fn create(base: &str) -> Schema {
        let name = format!("gust_test_{}", uuid_like());
        run_sql(base, &format!("CREATE SCHEMA {name}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        Schema {
            url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
            base: base.to_string(),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        run_sql(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// A random hex name part (no uuid crate here).
fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Runs one SQL statement on its own thread and runtime, so it works from sync code, async
/// tests and `Drop` alike.
fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    on_own_runtime(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// Runs `work` to the end on a thread and runtime of its own.
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    })
    .join()
    .expect("the helper thread panicked")
}

/// One process of a [`Cluster`].
#[derive(Debug)]
pub struct Member {
    pub id: String,
    child: Option<Child>,
    /// `http://addr` of a controller.
    pub apihost: Option<String>,
}

impl Member {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A cluster of real `gust controller` and `gust invoker` processes on loopback, on a fresh
/// PostgreSQL schema and NATS cluster name of its own. Dropping it kills every process.
pub struct Cluster {
    bin: PathBuf,
    schema: Schema,
    nats: NatsCluster,
    dir: tempfile::TempDir,
    pub auth: String,
    pub controllers: Vec<Member>,
    pub invokers: Vec<Member>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("cluster", &self.nats.name)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster with no process yet and a `guest` namespace (key in `auth`).
    pub fn new(bin: impl AsRef<Path>, postgres: &str, nats: &str) -> Cluster {
        let mut cluster = Cluster {
            bin: bin.as_ref().to_path_buf(),
            schema: Schema::create(postgres),
            nats: NatsCluster::new(nats),
            dir: tempfile::tempdir().expect("tempdir"),
            auth: String::new(),
            controllers: Vec::new(),
            invokers: Vec::new(),
        };
        cluster.auth = cluster.admin(&["namespace", "create", "guest"]);
        cluster
    }

    fn command(&self, role: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(role)
            .env("GUST_STORE", &self.schema.url)
            .env("GUST_BUS", &self.nats.url)
            .env("GUST_CLUSTER", &self.nats.name)
            .env("GUST_MASTER_KEY", TEST_MASTER_KEY)
            .env_remove("GUST_CONFIG")
            .env_remove("GUST_ID");
        cmd
    }

    /// Runs `gust admin` on the cluster's store; returns stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self
            .command("admin")
            .args(args)
            .output()
            .expect("gust admin");
        assert!(
            out.status.success(),
            "gust admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts `role` and waits for the stdout line starting with `ready`; returns the child,
    /// the rest of that line and the lines before it.
    fn spawn(
        &self,
        role: &str,
        id: &str,
        extra: &[&str],
        ready: &str,
    ) -> (Child, String, Vec<String>) {
        let mut child = self
            .command(role)
            .args(["--id", id, "--data-dir"])
            .arg(self.dir.path().join(id))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gust {role}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut before = Vec::new();
        let rest = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("gust {role} {id} exited before it was ready"))
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix(ready) {
                break rest.to_string();
            }
            before.push(line);
        };
        std::thread::spawn(move || for _ in lines {});
        (child, rest, before)
    }

    /// Starts an invoker named `id` and waits until it takes work.
    pub fn add_invoker(&mut self, id: &str) {
        self.add_invoker_with(id, &[]);
    }

    /// [`Self::add_invoker`] with more flags; returns the lines it printed before it took
    /// work.
    pub fn add_invoker_with(&mut self, id: &str, extra: &[&str]) -> Vec<String> {
        let (child, _, before) = self.spawn(
            "invoker",
            id,
            extra,
            &format!("gust: invoker {id} taking work"),
        );
        self.invokers.push(Member {
            id: id.to_string(),
            child: Some(child),
            apihost: None,
        });
        before
    }

    /// Starts a controller named `id` on a free port and waits until it listens.
    pub fn add_controller(&mut self, id: &str) {
        self.add_controller_with(id, &[]);
    }

    /// [`Self::add_controller`] with more flags; returns the lines it printed before it
    /// listened.
    pub fn add_controller_with(&mut self, id: &str, extra: &[&str]) -> Vec<String> {
        let args: Vec<&str> = ["--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let (child, rest, before) = self.spawn(
            "controller",
            id,
            &args,
            &format!("gust: controller {id} on "),
        );
        self.controllers.push(Member {
            id: id.to_string(),
            child: Some(child),
            apihost: Some(rest.trim().to_string()),
        });
        before
    }

    fn member(&mut self, id: &str) -> &mut Member {
        self.controllers
            .iter_mut()
            .chain(self.invokers.iter_mut())
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("no process {id}"))
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self, id: &str) {
        if let Some(mut child) = self.member(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, id: &str) -> bool {
        let Some(mut child) = self.member(id).child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// The API hosts of the controllers still running.
    pub fn apihosts(&self) -> Vec<String> {
        self.controllers
            .iter()
            .filter(|m| m.is_running())
            .filter_map(|m| m.apihost.clone())
            .collect()
    }

    /// One number from the cluster's store (`sql` selects a single bigint).
    pub fn count(&self, sql: &str) -> i64 {
        let (url, sql) = (self.schema.url.clone(), sql.to_string());
        on_own_runtime(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let row = client.query_one(&sql, &[]).await.expect("query");
            row.get::<_, i64>(0)
        })
    }

    /// How many invocations JetStream has delivered to invoker `id`'s queue (0 if it has
    /// none), and how many messages the cluster's invocation stream still holds.
    pub fn queue_state(&self, id: &str) -> (u64, u64) {
        let (url, stream) = (
            self.nats.url.clone(),
            gust_bus::nats::invoke_stream(&self.nats.name),
        );
        let consumer = format!("invoke-{id}");
        on_own_runtime(async move {
            let client = async_nats::connect(&url).await.expect("connect to NATS");
            let js = async_nats::jetstream::new(client);
            let mut stream = js.get_stream(stream).await.expect("the invocation stream");
            let left = stream.info().await.expect("stream info").state.messages;
            let delivered = match stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&consumer)
                .await
            {
                Ok(mut c) => c.info().await.map_or(0, |i| i.delivered.consumer_sequence),
                Err(_) => 0,
            };
            (delivered, left)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in self.controllers.iter_mut().chain(self.invokers.iter_mut()) {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
