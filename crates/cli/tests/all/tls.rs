//! TLS on the listener, with real clients: curl and the `gust` CLI. Certificates are made by
//! the test (a CA of its own, leaves signed by it, one expired), written where the server
//! reads them, and replaced while it runs.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gust_testkit::Server;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA of the test's own.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A leaf for 127.0.0.1 and localhost, valid for a day from now unless `expired`:
    /// (certificate PEM, key PEM).
    fn leaf(&self, expired: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let now = rcgen::date_time_ymd(2026, 1, 1);
        if expired {
            params.not_before = now;
            params.not_after = rcgen::date_time_ymd(2026, 1, 2);
        } else {
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `curl -s ARGS URL`, its output.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "-S", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap()
}

/// `gust ARGS` with the API host and key of `s`, no saved configuration.
fn gust(s: &Server, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(args)
        .env("HOME", home)
        .env("GUST_CONFIG_DIR", home.join("config"))
        .env("GUST_APIHOST", &s.apihost)
        .env("GUST_AUTH", &s.auth)
        .env_remove("GUST_CACERT")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Retries `check` until it holds, for at most 15 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn the_listener_serves_tls_to_curl_and_the_cli_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca1, ca2) = (Ca::new("Test CA one"), Ca::new("Test CA two"));
    let ca1_file = write(d, "ca1.pem", &ca1.pem);
    let ca2_file = write(d, "ca2.pem", &ca2.pem);
    let (cert, key) = ca1.leaf(false);
    let cert_file = write(d, "cert.pem", &cert);
    let key_file = write(d, "key.pem", &key);
    let s = Server::start_with(
        env!("CARGO_BIN_EXE_gust"),
        &["--tls-cert", &cert_file, "--tls-key", &key_file],
    );
    assert!(s.apihost.starts_with("https://127.0.0.1:"), "{}", s.apihost);
    let url = format!("{}/api/v1/namespaces", s.apihost);

    // curl: trusted through the CA; refused without it; HTTP/2 by ALPN; TLS 1.1 refused.
    let out = curl(&[
        "--cacert",
        &ca1_file,
        "-u",
        &s.auth,
        "-w",
        "\n%{http_version} %{http_code}",
        &url,
    ]);
    let answer = text(&out);
    assert!(answer.contains("[\"guest\"]"), "{answer}");
    assert!(answer.ends_with("2 200"), "HTTP/2 over ALPN: {answer}");
    let out = curl(&["-u", &s.auth, &url]);
    assert_eq!(out.status.code(), Some(60), "unknown CA: {}", text(&out));
    let out = curl(&[
        "--cacert",
        &ca1_file,
        "--http1.1",
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "-u",
        &s.auth,
        "-w",
        "\n%{http_version}",
        &url,
    ]);
    assert!(text(&out).ends_with("1.1"), "TLS 1.2: {}", text(&out));
    let out = curl(&[
        "--cacert",
        &ca1_file,
        "--tlsv1",
        "--tls-max",
        "1.1",
        "-u",
        &s.auth,
        &url,
    ]);
    assert!(!out.status.success(), "TLS 1.1 must be refused");
    // The security headers, and HSTS (a certificate of a real CA).
    let out = curl(&["--cacert", &ca1_file, "-u", &s.auth, "-D", "-", &url]);
    let head = text(&out).to_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");

    // The CLI: refused without the CA (saying why), with it accepted, and with --insecure.
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = gust(&s, h, &["namespace", "list"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("certificate"), "{}", text(&out));
    let out = gust(&s, h, &["namespace", "list", "--cacert", &ca1_file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("guest"), "{}", text(&out));
    let out = gust(&s, h, &["namespace", "list", "--insecure"]);
    assert!(out.status.success(), "{}", text(&out));

    // A client holding a connection open across the reload keeps it.
    let ca1_cert = reqwest::Certificate::from_pem(ca1.pem.as_bytes()).unwrap();
    let kept = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca1_cert)
        .pool_idle_timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let get = |c: &reqwest::Client| {
        let (user, pass) = s.auth.split_once(':').unwrap();
        c.get(&url).basic_auth(user, Some(pass)).send()
    };
    assert_eq!(get(&kept).await.unwrap().status(), 200);

    // Replaced on disk: the new certificate is served without a restart.
    let (cert2, key2) = ca2.leaf(false);
    std::fs::write(&key_file, &key2).unwrap();
    std::fs::write(&cert_file, &cert2).unwrap();
    eventually("the certificate of CA two is served", || {
        curl(&["--cacert", &ca2_file, "-u", &s.auth, &url])
            .status
            .success()
    });
    assert_eq!(
        curl(&["--cacert", &ca1_file, "-u", &s.auth, &url])
            .status
            .code(),
        Some(60),
        "new connections get the new certificate"
    );
    let again = get(&kept).await.unwrap();
    assert_eq!(again.status(), 200, "the open connection was not dropped");

    // A bad key file: the reload fails, SIGHUP too, and the certificate in use stays.
    std::fs::write(&key_file, "not a key").unwrap();
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_secs(3));
    let out = curl(&["--cacert", &ca2_file, "-u", &s.auth, &url]);
    assert!(out.status.success(), "still served: {}", text(&out));

    // An expired certificate (of a trusted CA), reloaded on SIGHUP: clients refuse it.
    let (expired, expired_key) = ca1.leaf(true);
    std::fs::write(&key_file, &expired_key).unwrap();
    std::fs::write(&cert_file, &expired).unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    eventually("the expired certificate is refused by curl", || {
        let out = curl(&["--cacert", &ca1_file, "-u", &s.auth, &url]);
        out.status.code() == Some(60) && text(&out).contains("expired")
    });
    let out = gust(&s, h, &["namespace", "list", "--cacert", &ca1_file]);
    assert!(!out.status.success());
    assert!(text(&out).contains("xpired"), "{}", text(&out));
}

#[test]
fn a_development_certificate_is_trusted_through_its_ca_file() {
    let s = Server::start_with(env!("CARGO_BIN_EXE_gust"), &["--tls-self-signed"]);
    assert!(s.apihost.starts_with("https://"), "{}", s.apihost);
    let ca = s.data_dir.join("tls").join("ca.pem");
    assert!(ca.exists());
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = gust(&s, h, &["namespace", "list"]);
    assert!(!out.status.success(), "unknown CA refused: {}", text(&out));
    let out = gust(
        &s,
        h,
        &["namespace", "list", "--cacert", ca.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        &s.auth,
        "-D",
        "-",
        &format!("{}/api/v1/namespaces", s.apihost),
    ]);
    let head = text(&out).to_lowercase();
    assert!(head.contains(" 200"), "{head}");
    // A development certificate does not pin browsers to HTTPS.
    assert!(!head.contains("strict-transport-security"), "{head}");
    // Plain HTTP on a TLS port is not served.
    let plain = curl(&[
        "-u",
        &s.auth,
        &format!(
            "{}/api/v1/namespaces",
            s.apihost.replace("https://", "http://")
        ),
    ]);
    assert!(!text(&plain).contains("guest"), "{}", text(&plain));
}
