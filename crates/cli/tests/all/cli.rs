//! The `gust` client commands, run as a user would: spawned binaries against a real server,
//! output parsed, exit statuses checked.

use std::path::Path;
use std::process::{Command, Output};

use gust_testkit::{Server, function};
use serde_json::Value;

use crate::server;

/// Runs `gust ARGS` with its configuration in `home` (nothing from the real user's).
fn gust(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    gust_command(home, env, args).output().unwrap()
}

/// `gust ARGS`, configured as [`gust`] runs it, not started.
fn gust_command(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gust"));
    cmd.args(args)
        .env("HOME", home)
        .env("GUST_CONFIG_DIR", home.join("config"))
        .env_remove("GUST_APIHOST")
        .env_remove("GUST_AUTH")
        .env_remove("XDG_CONFIG_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A server and a home directory of the test's own for the client's configuration.
fn setup() -> (Server, tempfile::TempDir) {
    (server(), tempfile::tempdir().unwrap())
}

/// `gust action create hello hello.wasm`, the test function written into `home`.
fn create_hello(home: &Path, env: &[(&str, &str)]) {
    let wasm = home.join("hello.wasm");
    std::fs::write(&wasm, function("hello")).unwrap();
    ok(&gust(
        home,
        env,
        &["action", "create", "hello", wasm.to_str().unwrap()],
    ));
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `gust` against `s`, configured through the environment.
fn against(s: &Server) -> [(&'static str, &str); 2] {
    [("GUST_APIHOST", &s.apihost), ("GUST_AUTH", &s.auth)]
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn fails(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure: {}", stdout(o));
    assert!(!stderr(o).contains("panicked"), "no panic: {}", stderr(o));
    stderr(o)
}

#[tokio::test]
async fn action_and_activation_commands() {
    let (s, home) = setup();
    let h = home.path();
    let env = against(&s);
    let wasm = h.join("hello.wasm");
    std::fs::write(&wasm, function("hello")).unwrap();
    let wasm = wasm.to_str().unwrap();

    let out = ok(&gust(
        h,
        &env,
        &[
            "action", "create", "hello", wasm, "-p", "name", "CLI", "-t", "3000",
        ],
    ));
    assert!(
        out.contains("ok: created action hello (version 0.0.1)"),
        "{out}"
    );
    let err = fails(&gust(h, &env, &["action", "create", "hello", wasm]));
    assert!(err.contains("already exists (409)"), "{err}");
    let out = ok(&gust(
        h,
        &env,
        &[
            "action",
            "update",
            "hello",
            "-m",
            "128",
            "--web",
            "raw",
            "-a",
            "team",
            "{\"x\":1}",
        ],
    ));
    assert!(out.contains("(version 0.0.2)"), "{out}");

    let out = ok(&gust(h, &env, &["action", "get", "hello", "--json"]));
    let a: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["limits"]["memory"], 128);
    assert_eq!(a["limits"]["timeout"], 3000);
    assert_eq!(a["parameters"][0]["value"], "CLI");
    let annotations = a["annotations"].to_string();
    for expected in [
        r#"{"key":"team","value":{"x":1}}"#,
        r#"{"key":"web-export","value":true}"#,
        r#"{"key":"raw-http","value":true}"#,
        r#"{"key":"final","value":true}"#,
    ] {
        assert!(annotations.contains(expected), "{annotations}");
    }
    let out = ok(&gust(h, &env, &["action", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(
        lines[1].starts_with("hello") && lines[1].contains("0.0.2") && lines[1].contains("wasm"),
        "{out}"
    );

    // `--web` made its parameters final: a request cannot override them, until the
    // annotations are replaced.
    let err = fails(&gust(
        h,
        &env,
        &["action", "invoke", "hello", "-p", "name", "Ada", "-r"],
    ));
    assert!(
        err.contains("not allowed") && err.contains("(400)"),
        "{err}"
    );
    ok(&gust(
        h,
        &env,
        &["action", "update", "hello", "-a", "final", "false"],
    ));

    // Invoke: result only, whole record, and non-blocking.
    let out = ok(&gust(
        h,
        &env,
        &["action", "invoke", "hello", "-p", "name", "Ada", "-r"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["greeting"], "Hello, Ada!");
    let out = ok(&gust(h, &env, &["action", "invoke", "hello", "-b"]));
    let rec: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, CLI!");
    let out = ok(&gust(
        h,
        &env,
        &["action", "invoke", "hello", "-p", "name", "{\"x\":1}"],
    ));
    let id = out.trim().rsplit(' ').next().unwrap().to_string();
    assert!(out.starts_with("ok: invoked hello with id "), "{out}");
    let rec = s.wait_for_record(&id).await;
    // The value was JSON, so `name` was an object, which hello does not greet.
    assert_eq!(rec["response"]["result"]["greeting"], "Hello, World!");

    // Activations.
    let out = ok(&gust(
        h,
        &env,
        &["activation", "list", "hello", "--limit", "2"],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("START") && lines[1].contains(&id),
        "{out}"
    );
    let out = ok(&gust(h, &env, &["activation", "result", "--last"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["greeting"], "Hello, World!");
    let out = ok(&gust(h, &env, &["activation", "logs", &id]));
    assert!(out.contains(" stderr: "), "{out}");
    let out = ok(&gust(h, &env, &["activation", "get", &id]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["activationId"], id.as_str());

    // A failing action prints its record and exits non-zero.
    let bad = h.join("apperror.wasm");
    std::fs::write(&bad, function("apperror")).unwrap();
    ok(&gust(
        h,
        &env,
        &["action", "create", "apperror", bad.to_str().unwrap()],
    ));
    let o = gust(h, &env, &["action", "invoke", "apperror", "-b"]);
    fails(&o);
    assert!(stdout(&o).contains("application error"), "{}", stdout(&o));

    let out = ok(&gust(h, &env, &["action", "delete", "hello"]));
    assert!(out.contains("ok: deleted action hello"), "{out}");
}

#[tokio::test]
async fn mistakes_get_clear_messages_and_a_failing_exit() {
    let (s, home) = setup();
    let h = home.path();
    let env = against(&s);

    let err = fails(&gust(h, &env, &["action", "get", "nope"]));
    assert!(
        err.contains("gust: action 'nope' does not exist in namespace 'guest' (404)"),
        "{err}"
    );
    let err = fails(&gust(h, &env, &["action", "invoke", "nope"]));
    assert!(
        err.contains("does not exist in namespace 'guest' (404)"),
        "{err}"
    );
    let err = fails(&gust(
        h,
        &env,
        &["action", "create", "x", "/no/such/file.wasm"],
    ));
    assert!(err.contains("cannot read /no/such/file.wasm"), "{err}");
    let java = h.join("Main.java");
    std::fs::write(&java, "class Main {}").unwrap();
    let err = fails(&gust(
        h,
        &env,
        &["action", "create", "x", java.to_str().unwrap()],
    ));
    assert!(err.contains("give --kind"), "{err}");
    let pfile = h.join("p.json");
    std::fs::write(&pfile, "{not json").unwrap();
    let err = fails(&gust(
        h,
        &env,
        &["action", "invoke", "x", "-P", pfile.to_str().unwrap()],
    ));
    assert!(err.contains("is not valid JSON"), "{err}");
    let err = fails(&gust(h, &env, &["activation", "get", "0123"]));
    assert!(err.contains("(400)"), "{err}");

    let wrong = [("GUST_APIHOST", s.apihost.as_str()), ("GUST_AUTH", "a:b")];
    let err = fails(&gust(h, &wrong, &["action", "list"]));
    assert!(
        err.contains("The supplied authentication is invalid. (401)"),
        "{err}"
    );
    let down = [("GUST_APIHOST", "http://127.0.0.1:9"), ("GUST_AUTH", "a:b")];
    let err = fails(&gust(h, &down, &["action", "list"]));
    assert!(
        err.contains("cannot reach the API host http://127.0.0.1:9"),
        "{err}"
    );
    let err = fails(&gust(h, &[], &["action", "list"]));
    assert!(err.contains("no API host"), "{err}");
}

#[tokio::test]
async fn properties_are_saved_and_overridden_in_order() {
    let (s, home) = setup();
    let h = home.path();

    // ~/.wskprops is the last resort.
    std::fs::write(
        h.join(".wskprops"),
        format!("APIHOST={}\nAUTH={}\n", s.apihost, s.auth),
    )
    .unwrap();
    ok(&gust(h, &[], &["action", "list"]));

    let out = ok(&gust(
        h,
        &[],
        &[
            "property",
            "set",
            "--apihost",
            "http://127.0.0.1:9",
            "--auth",
            &s.auth,
        ],
    ));
    assert!(out.starts_with("ok: saved in "), "{out}");
    let out = ok(&gust(h, &[], &["property", "get", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["apihost"], "http://127.0.0.1:9");
    // The saved host wins over ~/.wskprops (and is down); the environment and the flag win
    // over the saved one.
    fails(&gust(h, &[], &["action", "list"]));
    ok(&gust(
        h,
        &[("GUST_APIHOST", &s.apihost)],
        &["action", "list"],
    ));
    ok(&gust(h, &[], &["action", "list", "--apihost", &s.apihost]));
    let err = fails(&gust(h, &[], &["property", "set", "--auth", "nocolon"]));
    assert!(err.contains("UUID:KEY"), "{err}");
    ok(&gust(h, &[], &["property", "unset"]));
    ok(&gust(h, &[], &["action", "list"]));
}

#[tokio::test]
async fn poll_namespaces_list_and_completions() {
    let (s, home) = setup();
    let h = home.path();
    let env = against(&s);
    create_hello(h, &env);

    let out = ok(&gust(h, &env, &["namespace", "list"]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["NAMESPACE", "guest"]);
    let out = ok(&gust(h, &env, &["list"]));
    assert!(out.contains("/guest/hello"), "{out}");

    // Poll for 4 s while two activations land; each is printed once, with its logs (those
    // of the last 60 s too, so a stream that opens late misses nothing).
    let poll = gust_command(
        h,
        &env,
        &[
            "activation",
            "poll",
            "hello",
            "--exit",
            "4",
            "--since-seconds",
            "60",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let a = s.invoke("hello", serde_json::json!({"name": "one"})).await;
    let b = s.invoke("hello", serde_json::json!({"name": "two"})).await;
    let out = String::from_utf8(poll.wait_with_output().unwrap().stdout).unwrap();
    for r in [a, b] {
        let id = r.body["activationId"].as_str().unwrap();
        assert_eq!(
            out.matches(&format!("Activation: 'hello' ({id})")).count(),
            1,
            "{out}"
        );
    }
    assert!(out.contains(" stderr: "), "the logs are printed: {out}");

    // `gust logs --follow` prints the log lines of each activation (of the last 60 s, then
    // new ones) once, `gust logs NAME` the last one's; a wrong key is refused at once.
    let follow = gust_command(
        h,
        &env,
        &[
            "logs",
            "hello",
            "--follow",
            "--exit",
            "4",
            "--since-seconds",
            "60",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    s.invoke("hello", serde_json::json!({"name": "three"}))
        .await;
    let out = String::from_utf8(follow.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(out.matches("hello called for three").count(), 1, "{out}");
    assert_eq!(out.matches("hello called for two").count(), 1, "{out}");
    let out = ok(&gust(h, &env, &["logs", "hello"]));
    assert!(out.contains("hello called for three"), "{out}");
    let wrong = [("GUST_APIHOST", s.apihost.as_str()), ("GUST_AUTH", "a:b")];
    let err = fails(&gust(h, &wrong, &["logs", "--follow", "--exit", "10"]));
    assert!(
        err.contains("401") || err.to_lowercase().contains("authentication"),
        "{err}"
    );

    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&gust(h, &[], &["completion", shell]));
        assert!(
            out.contains("activation"),
            "{shell}: completions name the commands"
        );
    }
    let err = fails(&gust(h, &[], &["completion", "tcsh"]));
    assert!(err.contains("invalid value"), "{err}");
}

#[tokio::test]
async fn create_from_a_cargo_project_then_get_its_url_and_code() {
    let (s, home) = setup();
    let h = home.path();
    let root = gust_testkit::workspace_root();
    let project = root.join("tests/functions");
    let project = project.to_str().unwrap();
    // Share the harness's build of the test functions; the CLI's cargo build needs the target.
    gust_testkit::ensure_target("wasm32-wasip1");
    let target = root.join("target/functions");
    let mut env = against(&s).to_vec();
    env.push(("CARGO_TARGET_DIR", target.to_str().unwrap()));

    let err = fails(&gust(h, &env, &["action", "create", "built", project]));
    assert!(err.contains("several binaries"), "{err}");
    assert!(err.contains("--bin"), "{err}");
    let err = fails(&gust(
        h,
        &env,
        &["action", "create", "built", h.to_str().unwrap()],
    ));
    assert!(err.contains("without a Cargo.toml"), "{err}");
    ok(&gust(
        h,
        &env,
        &["action", "create", "built", project, "--bin", "hello"],
    ));
    let out = ok(&gust(h, &env, &["action", "invoke", "built", "-r"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["greeting"], "Hello, World!");

    let out = ok(&gust(h, &env, &["action", "get", "built", "--url"]));
    assert_eq!(
        out.trim(),
        format!("{}/api/v1/namespaces/guest/actions/built", s.apihost)
    );
    let save = |env: &[(&str, &str)]| {
        gust_command(h, env, &["action", "get", "built", "--save"])
            .current_dir(h)
            .output()
            .unwrap()
    };
    ok(&save(&env));
    let saved = std::fs::read(h.join("built.wasm")).unwrap();
    let built = std::fs::read(target.join("wasm32-wasip1/release/hello.wasm")).unwrap();
    assert_eq!(saved, built, "the saved code is the uploaded code");
    let err = fails(&save(&env));
    assert!(err.contains("cannot create built.wasm"), "{err}");
}

#[tokio::test]
async fn deploy_is_idempotent_and_undeploy_removes_what_it_made() {
    let (s, home) = setup();
    let h = home.path();
    let root = gust_testkit::workspace_root();
    let target = root.join("target/functions");
    let mut env = against(&s).to_vec();
    env.push(("CARGO_TARGET_DIR", target.to_str().unwrap()));
    std::fs::write(h.join("hello.wasm"), function("hello")).unwrap();
    let manifest = |echo_timeout: u64| {
        format!(
            r#"
[[action]]
name = "hello"
source = "hello.wasm"
parameters = {{ name = "Manifest" }}

[[action]]
name = "echo"
source = "{}"
bin = "echo"
limits = {{ timeout = {echo_timeout}, memory = 128 }}
annotations = {{ owner = "tests" }}
web = true
"#,
            root.join("tests/functions").display()
        )
    };
    let file = h.join("gust.toml");
    std::fs::write(&file, manifest(5000)).unwrap();
    let f = file.to_str().unwrap();

    let out = ok(&gust(h, &env, &["deploy", "-f", f]));
    assert!(out.contains("created action hello"), "{out}");
    assert!(out.contains("created action echo"), "{out}");
    assert!(out.contains("ok: 2 change(s)"), "{out}");
    let out = ok(&gust(h, &env, &["action", "invoke", "hello", "-r"]));
    assert!(out.contains("Hello, Manifest!"), "{out}");
    let a: Value =
        serde_json::from_str(&ok(&gust(h, &env, &["action", "get", "echo", "--json"]))).unwrap();
    assert_eq!(a["limits"]["timeout"], 5000);
    assert!(a["annotations"].to_string().contains("web-export"), "{a}");

    let out = ok(&gust(h, &env, &["deploy", "-f", f]));
    assert!(
        out.contains("unchanged action hello") && out.contains("unchanged action echo"),
        "{out}"
    );
    assert!(out.contains("ok: no changes"), "{out}");

    std::fs::write(&file, manifest(7000)).unwrap();
    let out = ok(&gust(h, &env, &["deploy", "-f", f]));
    assert!(out.contains("updated (limits) action echo"), "{out}");
    assert!(out.contains("unchanged action hello"), "{out}");

    let out = ok(&gust(h, &env, &["undeploy", "-f", f]));
    assert!(
        out.contains("deleted action hello") && out.contains("deleted action echo"),
        "{out}"
    );
    let out = ok(&gust(h, &env, &["undeploy", "-f", f]));
    assert!(out.contains("absent action hello"), "{out}");

    std::fs::write(
        &file,
        "[[action]]\nname = \"x\"\nsource = \"x.wasm\"\nmemroy = 1\n",
    )
    .unwrap();
    let err = fails(&gust(h, &env, &["deploy", "-f", f]));
    assert!(
        err.contains("is not valid") && err.contains("memroy"),
        "{err}"
    );
    let err = fails(&gust(h, &env, &["deploy", "-f", "/no/gust.toml"]));
    assert!(
        err.contains("cannot read the manifest /no/gust.toml"),
        "{err}"
    );
}

#[tokio::test]
async fn the_examples_deploy_and_work() {
    let (s, home) = setup();
    let h = home.path();
    let root = gust_testkit::workspace_root();
    let target = root.join("target/examples");
    let mut env = against(&s).to_vec();
    env.push(("CARGO_TARGET_DIR", target.to_str().unwrap()));
    let manifest = root.join("examples/gust.toml");
    let out = ok(&gust(
        h,
        &env,
        &["deploy", "-f", manifest.to_str().unwrap()],
    ));
    assert!(out.contains("ok: 3 change(s)"), "{out}");

    let run = |args: &[&str]| -> Value {
        let mut all = vec!["action", "invoke"];
        all.extend_from_slice(args);
        all.push("-r");
        serde_json::from_str(&ok(&gust(h, &env, &all))).unwrap()
    };
    assert_eq!(run(&["hello"])["greeting"], "Hello, World!");
    let records = r#"[{"id":1,"n":"a","ok":true},{"id":2,"n":"b","ok":false}]"#;
    let v = run(&[
        "transform",
        "-p",
        "records",
        records,
        "-p",
        "where",
        r#"{"ok":true}"#,
        "-p",
        "rename",
        r#"{"n":"name"}"#,
        "-p",
        "select",
        r#"["id","name"]"#,
    ]);
    assert_eq!(
        v,
        serde_json::json!({"count": 1, "records": [{"id": 1, "name": "a"}]})
    );
    let text = "gust ".repeat(200);
    let packed = run(&["compress", "-p", "text", &text]);
    assert!(
        packed["compressed_bytes"].as_u64().unwrap() < 100,
        "{packed}"
    );
    let b64 = packed["deflate_base64"].as_str().unwrap();
    let back = run(&["compress", "-p", "inflate_base64", b64]);
    assert_eq!(back["text"], text.as_str());
    // A mistake in the parameters is the function's application error (exit status 1).
    let o = gust(
        h,
        &env,
        &["action", "invoke", "transform", "-p", "records", "3", "-b"],
    );
    fails(&o);
    assert!(
        stdout(&o).contains("records must be an array"),
        "{}",
        stdout(&o)
    );
}

/// `sh -c CMD` on a pseudo-terminal (util-linux `script`), its output as the terminal saw it;
/// None where `script` is missing.
fn on_a_terminal(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Option<String> {
    let line = std::iter::once(env!("CARGO_BIN_EXE_gust"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let configured = gust_command(home, env, &[]);
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm")
        .envs(configured.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let out = match cmd.output() {
        Ok(o) => o,
        Err(_) => {
            eprintln!("skipped: no `script` to run gust on a terminal");
            return None;
        }
    };
    assert!(out.status.success(), "{}", stdout(&out));
    Some(stdout(&out))
}

#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    let (s, home) = setup();
    let h = home.path();
    let env = against(&s);
    create_hello(h, &env);

    // Piped (as every other test runs it): plain text.
    let piped = ok(&gust(h, &env, &["action", "list"]));
    assert!(!piped.contains('\x1b'), "{piped:?}");
    assert!(piped.starts_with("NAME"), "{piped:?}");
    let err = fails(&gust(h, &env, &["action", "get", "nope"]));
    assert!(!err.contains('\x1b'), "{err:?}");

    let Some(tty) = on_a_terminal(h, &env, &["action", "list"]) else {
        return;
    };
    assert!(tty.contains("\x1b[1mNAME"), "a bold header: {tty:?}");
    assert!(tty.contains("hello"), "{tty:?}");
    let tty = on_a_terminal(h, &env, &["action", "invoke", "hello"]).unwrap();
    assert!(tty.contains("\x1b[32m\x1b[1mok:"), "a green ok: {tty:?}");

    let mut no_color = env.to_vec();
    no_color.push(("NO_COLOR", "1"));
    let plain = on_a_terminal(h, &no_color, &["action", "list"]).unwrap();
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(plain.contains("hello"), "{plain:?}");
}

/// An HTTPS API host with a self-signed certificate (`openssl s_server` serving files), used
/// with and without `--insecure`; skipped where openssl is missing.
#[test]
fn https_hosts_are_checked_unless_insecure() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let www = h.join("www");
    std::fs::create_dir_all(www.join("api/v1")).unwrap();
    std::fs::write(www.join("api/v1/namespaces"), r#"["tls-guest"]"#).unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(&www)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no openssl to make a self-signed certificate");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server", "-quiet", "-WWW", "-cert", "cert.pem", "-key", "key.pem",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(&www)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let host = format!("https://127.0.0.1:{port}");
    let env = [("GUST_APIHOST", host.as_str()), ("GUST_AUTH", "a:b")];

    let err = fails(&gust(h, &env, &["namespace", "list"]));
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("add --insecure"), "{err}");
    let out = gust(h, &env, &["namespace", "list", "--insecure"]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok(&out).contains("tls-guest"), "{}", stdout(&out));
}

/// `gust admin` on the data directory of a running server, as an operator types it.
fn admin(s: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gust"))
        .arg("admin")
        .arg("--data-dir")
        .arg(&s.data_dir)
        .args(s.store_args())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn admin_commands_manage_namespaces_keys_and_limits() {
    let (s, home) = setup();
    let h = home.path();
    let as_tenant = |auth: &str| {
        gust(
            h,
            &[("GUST_APIHOST", &s.apihost), ("GUST_AUTH", auth)],
            &["namespace", "list"],
        )
    };

    let key = ok(&admin(&s, &["namespace", "create", "team-a"]));
    let key = key.trim();
    assert!(ok(&as_tenant(key)).contains("team-a"));
    let err = fails(&admin(&s, &["namespace", "create", "team-a"]));
    assert!(
        err.contains("namespace 'team-a' or its key already exists"),
        "{err}"
    );
    let err = fails(&admin(&s, &["namespace", "create", "bad/name"]));
    assert!(
        err.contains("The namespace contains illegal characters."),
        "{err}"
    );

    let out = ok(&admin(
        &s,
        &["limits", "set", "team-a", "--invocations-per-minute", "7"],
    ));
    assert!(out.contains("team-a: invocationsPerMinute=7"), "{out}");
    let list = ok(&admin(&s, &["namespace", "list"]));
    let lines: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAMESPACE", "UUID", "INVOCATIONS/MIN", "CONCURRENT"]
    );
    let row = lines
        .iter()
        .find(|r| r[0] == "team-a")
        .expect("team-a listed");
    assert_eq!(row[1], key.split(':').next().unwrap());
    assert_eq!(row[2], "7");
    assert!(lines.iter().any(|r| r[0] == "guest"), "{list}");
    let err = fails(&admin(
        &s,
        &["limits", "set", "nobody", "--concurrent-invocations", "1"],
    ));
    assert!(err.contains("namespace 'nobody' does not exist"), "{err}");

    let new_key = ok(&admin(&s, &["key", "rotate", "team-a"]));
    assert_ne!(new_key.trim(), key);
    // The server trusts what it authenticated for up to a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let err = fails(&as_tenant(key));
    assert!(err.contains("(401)"), "the old key stops working: {err}");
    ok(&as_tenant(new_key.trim()));
    let err = fails(&admin(&s, &["key", "rotate", "nobody"]));
    assert!(err.contains("namespace 'nobody' does not exist"), "{err}");

    let out = ok(&admin(&s, &["namespace", "delete", "team-a"]));
    assert!(out.contains("deleted namespace 'team-a'"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let err = fails(&as_tenant(new_key.trim()));
    assert!(
        err.contains("(401)"),
        "a deleted namespace's key stops working: {err}"
    );
    let err = fails(&admin(&s, &["namespace", "delete", "team-a"]));
    assert!(err.contains("namespace 'team-a' does not exist"), "{err}");
    assert!(!ok(&admin(&s, &["namespace", "list"])).contains("team-a"));

    // Retention by hand: records older than N days go, newer ones stay.
    create_hello(h, &against(&s));
    let r = s.invoke("hello", serde_json::json!({})).await;
    assert_eq!(r.status, 200);
    let out = ok(&admin(
        &s,
        &["activations", "prune", "--older-than-days", "30"],
    ));
    assert!(out.contains("deleted 0 activation record(s)"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let out = ok(&admin(
        &s,
        &["activations", "prune", "--older-than-days", "0"],
    ));
    assert!(out.contains("deleted 1 activation record(s)"), "{out}");
    let list = s
        .call("GET", "/api/v1/namespaces/_/activations", None)
        .await;
    assert_eq!(list.body, serde_json::json!([]));
}

#[tokio::test]
async fn packages_sequences_and_web_actions_from_the_client() {
    let (s, home) = setup();
    let env = against(&s);
    let home = home.path();
    ok(&gust(
        home,
        &env,
        &[
            "package", "create", "tools", "-p", "name", "\"Pkg\"", "--shared", "yes",
        ],
    ));
    let wasm = home.join("hello.wasm");
    std::fs::write(&wasm, function("hello")).unwrap();
    let wasm = wasm.to_str().unwrap();
    ok(&gust(
        home,
        &env,
        &["action", "create", "tools/hello", wasm, "--web", "true"],
    ));
    // The package's parameter reaches its action.
    let out = ok(&gust(
        home,
        &env,
        &["action", "invoke", "tools/hello", "-r"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["greeting"], "Hello, Pkg!");
    // A sequence from the client, with short and qualified names.
    ok(&gust(
        home,
        &env,
        &[
            "action",
            "create",
            "twice",
            "--sequence",
            "tools/hello,/guest/tools/hello",
        ],
    ));
    let out = ok(&gust(home, &env, &["--json", "action", "get", "twice"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exec"]["components"][1], "/guest/tools/hello");
    // The web URL, served without a key.
    let out = ok(&gust(
        home,
        &env,
        &["action", "get", "tools/hello", "--url"],
    ));
    let url = out.trim().to_string();
    assert_eq!(url, format!("{}/api/v1/web/guest/tools/hello", s.apihost));
    let r = reqwest::get(format!("{url}.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["greeting"], "Hello, Pkg!");
    // `--web true` made it final: a request cannot override the package's parameter.
    let r = reqwest::get(format!("{url}.json?name=Web")).await.unwrap();
    assert_eq!(r.status(), 400);
    // Listing, binding from another namespace, deleting with force.
    let out = ok(&gust(home, &env, &["package", "list"]));
    assert!(out.contains("/guest/tools"), "{out}");
    let b_auth = s.admin(&["namespace", "create", "tenantb"]);
    let b_env = [
        ("GUST_APIHOST", s.apihost.as_str()),
        ("GUST_AUTH", b_auth.as_str()),
    ];
    ok(&gust(
        home,
        &b_env,
        &[
            "package",
            "bind",
            "/guest/tools",
            "mytools",
            "-p",
            "name",
            "\"Bound\"",
        ],
    ));
    let out = ok(&gust(
        home,
        &b_env,
        &["action", "invoke", "mytools/hello", "-r"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["greeting"], "Hello, Bound!");
    // An API route to the web action, exported as OpenAPI.
    ok(&gust(
        home,
        &env,
        &[
            "api",
            "create",
            "/site",
            "/hello/{who}",
            "get",
            "tools/hello",
        ],
    ));
    let r = reqwest::get(format!("{}/api/guest/site/hello/x", s.apihost))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = ok(&gust(home, &env, &["api", "list"]));
    assert!(out.contains("/api/guest/site/hello/{who}"), "{out}");
    let out = ok(&gust(
        home,
        &env,
        &["api", "get", "/site", "--format", "openapi"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["paths"]["/hello/{who}"]["get"]["x-gust-action"],
        "/guest/tools/hello"
    );
    ok(&gust(home, &env, &["api", "delete", "/site"]));
    let err = fails(&gust(home, &env, &["package", "delete", "tools"]));
    assert!(err.contains("Package not empty"), "{err}");
    ok(&gust(
        home,
        &env,
        &["package", "delete", "tools", "--force"],
    ));
}

#[tokio::test]
async fn a_site_deploys_from_a_folder_and_calls_its_api_on_the_same_origin() {
    let (s, home) = setup();
    let env = against(&s);
    let home = home.path();
    // A page that calls the namespace's API route by its path: same origin, no CORS.
    let wasm = home.join("hello.wasm");
    std::fs::write(&wasm, function("hello")).unwrap();
    ok(&gust(
        home,
        &env,
        &[
            "action",
            "create",
            "hello",
            wasm.to_str().unwrap(),
            "--web",
            "true",
        ],
    ));
    ok(&gust(
        home,
        &env,
        &["api", "create", "/v1", "/hello", "get", "hello"],
    ));
    let public = home.join("public");
    std::fs::create_dir_all(public.join("css")).unwrap();
    std::fs::create_dir_all(public.join(".git")).unwrap();
    let page = "<script>fetch('/api/guest/v1/hello?name=Site').then(r => r.json())</script>";
    std::fs::write(public.join("index.html"), page).unwrap();
    std::fs::write(public.join("css/site.css"), "body{}").unwrap();
    std::fs::write(public.join(".git/config"), "secret").unwrap();
    let dir = public.to_str().unwrap();
    let out = ok(&gust(home, &env, &["site", "deploy", dir, "--spa"]));
    assert!(
        out.contains("deployed site public: 2 files, 2 uploaded"),
        "{out}"
    );
    assert!(out.contains("/sites/guest/public/"), "{out}");
    let page_url = format!("{}/sites/guest/public/", s.apihost);
    let r = reqwest::get(&page_url).await.unwrap();
    assert_eq!(r.text().await.unwrap(), page);
    let r = reqwest::get(format!("{}/api/guest/v1/hello?name=Site", s.apihost))
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["greeting"], "Hello, Site!");
    // Hidden folders stay home; a single-page app answers its page for any path.
    let r = reqwest::get(format!("{page_url}.git/config"))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), page);

    // A second deploy sends only what changed.
    std::fs::write(public.join("css/site.css"), "body{color:red}").unwrap();
    let out = ok(&gust(
        home,
        &env,
        &["site", "deploy", dir, "--name", "public"],
    ));
    assert!(out.contains("2 files, 1 uploaded (15 B)"), "{out}");
    let r = reqwest::get(format!("{page_url}css/site.css"))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "body{color:red}");
    let out = ok(&gust(home, &env, &["site", "list"]));
    assert!(
        out.contains("public") && out.contains("/sites/guest/public/"),
        "{out}"
    );
    let out = ok(&gust(home, &env, &["site", "get", "public"]));
    assert!(
        out.contains("css/site.css") && out.contains("text/css"),
        "{out}"
    );
    ok(&gust(home, &env, &["site", "delete", "public"]));
    let err = fails(&gust(home, &env, &["site", "get", "public"]));
    assert!(err.contains("site 'public' does not exist"), "{err}");
    let err = fails(&gust(
        home,
        &env,
        &["site", "deploy", home.join("nothing").to_str().unwrap()],
    ));
    assert!(err.contains("nothing"), "{err}");
}

#[tokio::test]
async fn triggers_rules_and_feeds_from_the_client() {
    let (s, home) = setup();
    let h = home.path();
    let env = against(&s);
    let echo = "/whisk.system/utils/echo";

    let out = ok(&gust(
        h,
        &env,
        &["trigger", "create", "hook", "-p", "source", "web"],
    ));
    assert!(
        out.contains("ok: created trigger hook (version 0.0.1)"),
        "{out}"
    );
    let err = fails(&gust(h, &env, &["trigger", "create", "hook"]));
    assert!(err.contains("trigger 'hook' already exists (409)"), "{err}");
    let out = ok(&gust(h, &env, &["trigger", "fire", "hook"]));
    assert!(
        out.contains("ok: triggered /_/hook (no active rule: nothing ran)"),
        "{out}"
    );
    let err = fails(&gust(h, &env, &["trigger", "fire", "nope"]));
    assert!(
        err.contains("trigger 'nope' does not exist in namespace 'guest' (404)"),
        "{err}"
    );

    let err = fails(&gust(h, &env, &["rule", "create", "r", "hook"]));
    assert!(err.contains("<ACTION>"), "{err}");
    let out = ok(&gust(h, &env, &["rule", "create", "r", "hook", echo]));
    assert!(out.contains("ok: created rule r (version 0.0.1)"), "{out}");
    let out = ok(&gust(
        h,
        &env,
        &["trigger", "fire", "hook", "-p", "order", "42"],
    ));
    assert!(out.contains("ok: triggered /_/hook with id "), "{out}");
    let out = ok(&gust(h, &env, &["rule", "list"]));
    assert!(out.contains("/guest/hook") && out.contains(echo), "{out}");
    let out = ok(&gust(h, &env, &["trigger", "get", "hook"]));
    assert!(out.contains(&format!("guest/r: {echo} (active)")), "{out}");
    ok(&gust(h, &env, &["rule", "disable", "r"]));
    let out = ok(&gust(h, &env, &["rule", "get", "r"]));
    assert!(out.contains("inactive"), "{out}");
    let out = ok(&gust(h, &env, &["trigger", "fire", "hook"]));
    assert!(out.contains("nothing ran"), "{out}");
    ok(&gust(h, &env, &["rule", "enable", "r"]));
    let out = ok(&gust(h, &env, &["list"]));
    assert!(
        out.contains("/guest/hook") && out.contains("/guest/r"),
        "{out}"
    );

    // A feed's trigger: the feed refuses, and the trigger is gone again.
    let alarm = "/whisk.system/alarms/alarm";
    let err = fails(&gust(
        h,
        &env,
        &[
            "trigger", "create", "tick", "--feed", alarm, "-p", "cron", "nonsense",
        ],
    ));
    assert!(
        err.contains("cron pattern 'nonsense' is not valid") && err.contains("not created"),
        "{err}"
    );
    fails(&gust(h, &env, &["trigger", "get", "tick"]));
    ok(&gust(
        h,
        &env,
        &[
            "trigger",
            "create",
            "tick",
            "--feed",
            alarm,
            "-p",
            "cron",
            "0 0 * * *",
            "-p",
            "trigger_payload",
            "{\"x\":1}",
        ],
    ));
    let t: Value =
        serde_json::from_str(&ok(&gust(h, &env, &["trigger", "get", "tick", "--json"]))).unwrap();
    assert_eq!(t["parameters"], serde_json::json!([]), "{t}");
    assert_eq!(t["feed"]["result"]["config"]["cron"], "0 0 * * *", "{t}");
    assert_eq!(t["feed"]["result"]["config"]["payload"]["x"], 1, "{t}");
    ok(&gust(
        h,
        &env,
        &["trigger", "update", "tick", "-p", "cron", "0 1 * * *"],
    ));
    let out = ok(&gust(h, &env, &["trigger", "list"]));
    assert!(out.contains(alarm), "{out}");
    ok(&gust(h, &env, &["trigger", "delete", "tick"]));
    fails(&gust(h, &env, &["trigger", "get", "tick"]));
    ok(&gust(h, &env, &["rule", "delete", "r"]));
    ok(&gust(h, &env, &["trigger", "delete", "hook"]));

    // The manifest's triggers and rules.
    let file = h.join("gust.toml");
    let manifest = |cron: &str| {
        format!(
            r#"
[[trigger]]
name = "daily"
feed = "{alarm}"
feed_parameters = {{ cron = "{cron}" }}

[[rule]]
name = "on-daily"
trigger = "daily"
action = "{echo}"
active = false
"#
        )
    };
    std::fs::write(&file, manifest("0 0 * * *")).unwrap();
    let f = file.to_str().unwrap();
    let out = ok(&gust(h, &env, &["deploy", "-f", f]));
    assert!(
        out.contains("created trigger daily") && out.contains("created rule on-daily"),
        "{out}"
    );
    let out = ok(&gust(h, &env, &["rule", "get", "on-daily"]));
    assert!(out.contains("inactive"), "{out}");
    let out = ok(&gust(h, &env, &["deploy", "-f", f]));
    assert!(out.contains("ok: no changes"), "{out}");
    std::fs::write(&file, manifest("0 2 * * *")).unwrap();
    let out = ok(&gust(h, &env, &["deploy", "-f", f]));
    assert!(out.contains("updated (feed) trigger daily"), "{out}");
    let out = ok(&gust(h, &env, &["undeploy", "-f", f]));
    assert!(
        out.contains("deleted rule on-daily") && out.contains("deleted trigger daily"),
        "{out}"
    );
}

#[tokio::test]
async fn source_feeds_from_the_client() {
    let (s, home) = setup();
    let h = home.path();
    let env = against(&s);
    // A webhook: the client says where the sender must post.
    let out = gust(
        h,
        &env,
        &[
            "trigger",
            "create",
            "gh",
            "--feed",
            "/whisk.system/webhooks/github",
            "-p",
            "secret",
            "s3cret",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("webhook URL of trigger gh: ") && err.contains("/hooks/guest/gh"),
        "{err}"
    );
    // `get` reads the feed: the URL, the secret hidden.
    let got = ok(&gust(h, &env, &["trigger", "get", "gh", "--json"]));
    assert!(got.contains("/hooks/guest/gh"), "{got}");
    assert!(!got.contains("s3cret"), "{got}");
    // A broker that does not answer: the feed says so and the trigger is not created.
    let err = fails(&gust(
        h,
        &env,
        &[
            "trigger",
            "create",
            "mq",
            "--feed",
            "/whisk.system/mqtt/subscribe",
            "-p",
            "url",
            "\"mqtt://127.0.0.1:1\"",
            "-p",
            "topic",
            "t",
        ],
    ));
    assert!(err.contains("not created"), "{err}");
    fails(&gust(h, &env, &["trigger", "get", "mq"]));
    // Unknown parameters are refused by name.
    let err = fails(&gust(
        h,
        &env,
        &[
            "trigger",
            "create",
            "typo",
            "--feed",
            "/whisk.system/webhooks/github",
            "-p",
            "secert",
            "x",
        ],
    ));
    assert!(
        err.contains("secert") && err.contains("not created"),
        "{err}"
    );
    let out = ok(&gust(h, &env, &["trigger", "delete", "gh"]));
    assert!(out.contains("gh"), "{out}");
    let r = s.web("POST", "/hooks/guest/gh", &[], b"{}".to_vec()).await;
    assert_eq!(r.status, 404);
}
