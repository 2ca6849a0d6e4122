//! The NATS JetStream bus against a real server: run when `GUST_TEST_NATS_URL` is set, each
//! test on a cluster name (subjects and stream) of its own; skipped, and said so, otherwise.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use gust_bus::nats::NatsBus;
use gust_bus::{Bus, completion_subject, invoke_subject};
use gust_testkit::NatsCluster;

/// A bus on a fresh cluster name, with its stream deleted when the test ends.
struct Cluster {
    bus: NatsBus,
    _name: NatsCluster,
}

impl Cluster {
    async fn new(ack_wait: Duration) -> Option<Cluster> {
        let Some(url) = gust_testkit::nats_url() else {
            eprintln!("skipped: GUST_TEST_NATS_URL is not set");
            return None;
        };
        let name = NatsCluster::new(&url);
        let bus = NatsBus::connect(&url, &name.name)
            .await
            .unwrap()
            .ack_wait(ack_wait);
        Some(Cluster { bus, _name: name })
    }
}

async fn next(sub: &mut Box<dyn gust_bus::Subscription>) -> Option<gust_bus::Delivery> {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn invocations_are_kept_until_acknowledged_and_stored_once_per_id() {
    let Some(c) = Cluster::new(Duration::from_secs(1)).await else {
        return;
    };
    let subject = invoke_subject("inv1");
    // Published before anyone listens: the stream keeps it.
    c.bus
        .publish_with_id(&subject, "id-1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    c.bus
        .publish_with_id(&subject, "id-1", Bytes::from_static(b"one again"))
        .await
        .unwrap();
    c.bus
        .publish_with_id(&subject, "id-2", Bytes::from_static(b"two"))
        .await
        .unwrap();
    let mut sub = c.bus.subscribe(&subject).await.unwrap();
    let first = next(&mut sub).await.unwrap();
    assert_eq!((first.payload.as_ref(), first.attempt), (&b"one"[..], 1));
    let second = next(&mut sub).await.unwrap();
    assert_eq!(second.payload, "two", "the duplicate id was dropped");
    first.ack().await.unwrap();
    // Not acknowledged: delivered again once the ack wait (1 s here) runs out, marked so.
    let again = next(&mut sub).await.unwrap();
    assert_eq!((again.payload.as_ref(), again.attempt), (&b"two"[..], 2));
    again.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), sub.next())
            .await
            .is_err(),
        "acknowledged messages are not delivered again"
    );
}

#[tokio::test]
async fn a_restarted_consumer_gets_the_unacknowledged_work_back() {
    let Some(c) = Cluster::new(Duration::from_secs(1)).await else {
        return;
    };
    let subject = invoke_subject("inv2");
    let mut sub = c.bus.subscribe(&subject).await.unwrap();
    c.bus
        .publish_with_id(&subject, "id-3", Bytes::from_static(b"three"))
        .await
        .unwrap();
    let taken = next(&mut sub).await.unwrap();
    assert_eq!(taken.payload, "three");
    // The invoker dies holding it.
    drop(taken);
    drop(sub);
    let mut sub = c.bus.subscribe(&subject).await.unwrap();
    let back = next(&mut sub).await.unwrap();
    assert_eq!((back.payload.as_ref(), back.attempt), (&b"three"[..], 2));
    back.ack().await.unwrap();
}

#[tokio::test]
async fn completions_travel_on_plain_subjects_per_cluster() {
    let Some(c) = Cluster::new(Duration::from_secs(1)).await else {
        return;
    };
    let Some(other) = Cluster::new(Duration::from_secs(1)).await else {
        return;
    };
    let subject = completion_subject("ctl");
    let mut sub = c.bus.subscribe(&subject).await.unwrap();
    let mut elsewhere = other.bus.subscribe(&subject).await.unwrap();
    c.bus
        .publish(&subject, Bytes::from_static(b"done"))
        .await
        .unwrap();
    let d = next(&mut sub).await.unwrap();
    assert_eq!(d.payload, "done");
    assert!(!d.has_ack());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), elsewhere.next())
            .await
            .is_err(),
        "another cluster on the same server does not see it"
    );
}

#[tokio::test]
async fn bad_cluster_names_and_unreachable_servers_are_errors() {
    assert!(
        NatsBus::connect("nats://127.0.0.1:4222", "a.b")
            .await
            .is_err()
    );
    assert!(
        NatsBus::connect("nats://127.0.0.1:9", "gust")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_fifth_delivery_is_marked_as_the_last() {
    let Some(c) = Cluster::new(Duration::from_millis(500)).await else {
        return;
    };
    let subject = invoke_subject("inv3");
    let mut sub = c.bus.subscribe(&subject).await.unwrap();
    c.bus
        .publish_with_id(&subject, "id-4", Bytes::from_static(b"poison"))
        .await
        .unwrap();
    for attempt in 1..=5u64 {
        // Never acknowledged, as if its invoker died every time.
        let d = next(&mut sub).await.unwrap();
        assert_eq!((d.attempt, d.last_attempt), (attempt, attempt == 5));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), sub.next())
            .await
            .is_err(),
        "JetStream gives up after the fifth"
    );
}

/// A queue whose taker died holding messages unacknowledged is taken over at once (not
/// after the ack wait): the new taker gets every one, marked as possibly delivered before;
/// a message published after the take-over is a first delivery. The old taker's
/// subscription ends. A delivery handed back (nak) comes again at once.
#[tokio::test]
async fn a_queue_is_taken_over_at_once_and_naks_come_back() {
    let Some(c) = Cluster::new(Duration::from_secs(300)).await else {
        return;
    };
    let subject = invoke_subject("dead");
    for id in ["a", "b"] {
        c.bus
            .publish_with_id(&subject, id, Bytes::from(id))
            .await
            .unwrap();
    }
    let mut old = c.bus.subscribe(&subject).await.unwrap();
    let held = [next(&mut old).await.unwrap(), next(&mut old).await.unwrap()];
    assert!(held.iter().all(|d| d.attempt == 1));
    assert_eq!(
        c.bus.invoker_queues().await.unwrap(),
        ["dead"],
        "the queue is known whether its invoker lives or not"
    );

    let mut new = c.bus.take_over(&subject).await.unwrap();
    let mut again = Vec::new();
    for _ in 0..2 {
        let d = next(&mut new).await.expect("redelivered at once");
        assert!(d.attempt >= 2, "marked as possibly delivered before");
        again.push(d.payload.clone());
        d.ack().await.unwrap();
    }
    again.sort();
    assert_eq!(again, ["a", "b"]);
    assert!(next(&mut old).await.is_none(), "the old subscription ended");

    c.bus
        .publish_with_id(&subject, "c", Bytes::from_static(b"c"))
        .await
        .unwrap();
    let fresh = next(&mut new).await.unwrap();
    assert_eq!((fresh.payload.as_ref(), fresh.attempt), (&b"c"[..], 1));
    fresh.nak().await.unwrap();
    let back = next(&mut new)
        .await
        .expect("a nak is delivered again at once");
    assert_eq!((back.payload.as_ref(), back.attempt), (&b"c"[..], 2));
    back.ack().await.unwrap();
}

/// A NATS server of this test's own that requires TLS, with a certificate for 127.0.0.1
/// signed by a CA made for the test; killed when dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> Option<TlsServer> {
        let server = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .is_ok_and(|o| o.status.success())
        };
        std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let made = openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=gust test CA",
                ],
            ]
            .concat(),
        ) && openssl(
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "key.pem",
                    "-out",
                    "req.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        ) && openssl(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ]);
        if !made {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(server)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("js"))
            .args(["--tls", "--tlscert"])
            .arg(dir.path().join("cert.pem"))
            .arg("--tlskey")
            .arg(dir.path().join("key.pem"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(TlsServer { child, port, dir });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// TLS to NATS (`tls://`): the server's certificate must chain to a trusted root: refused
/// without the test's CA, accepted with it, and the bus then works as over plain NATS.
#[tokio::test]
async fn tls_connections_check_the_server_certificate() {
    let Some(server) = TlsServer::start() else {
        eprintln!("skipped: needs nats-server and openssl");
        return;
    };
    let url = format!("tls://127.0.0.1:{}", server.port);
    let refused =
        tokio::time::timeout(Duration::from_secs(10), NatsBus::connect(&url, "tls_test")).await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a certificate nobody vouches for is refused"
    );
    let ca = server.dir.path().join("ca.pem");
    let bus = NatsBus::connect_with_ca(&url, "tls_test", Some(&ca))
        .await
        .unwrap();
    let subject = invoke_subject("inv1");
    bus.publish_with_id(&subject, "t1", Bytes::from_static(b"over tls"))
        .await
        .unwrap();
    let mut sub = bus.subscribe(&subject).await.unwrap();
    let d = next(&mut sub).await.unwrap();
    assert_eq!(d.payload, "over tls");
    d.ack().await.unwrap();
}
