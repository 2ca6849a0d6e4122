//! Live activations (`GET .../activations/stream`, Server-Sent Events; decision 0026): each
//! record once, in the order the store wrote it, resumable, and only the caller's.

use std::time::Duration;

use gust_testkit::{Server, function};
use serde_json::{Value, json};

use crate::server;

/// An open stream of events, read as they come.
struct Stream {
    res: reqwest::Response,
    buf: String,
}

/// One event: its type, id and data.
#[derive(Debug)]
struct Event {
    event: String,
    id: String,
    data: String,
}

impl Stream {
    /// Opens `path` with `auth` (`uuid:key`) and the extra headers; the status and the
    /// stream (read it only on 200).
    async fn open(s: &Server, auth: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Stream) {
        let (u, k) = auth.split_once(':').unwrap();
        let mut req = s.client.get(s.url(path)).basic_auth(u, Some(k));
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (
            status,
            Stream {
                res,
                buf: String::new(),
            },
        )
    }

    /// The next event (comments skipped), or `None` when none comes within 20 s.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = Event {
                    event: String::new(),
                    id: String::new(),
                    data: String::new(),
                };
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("event", v)) => e.event = v.trim_start().into(),
                        Some(("id", v)) => e.id = v.trim_start().into(),
                        Some(("data", v)) => e.data.push_str(v.trim_start()),
                        _ => {}
                    }
                }
                if !e.event.is_empty() {
                    return Some(e);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.res.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `n` activation records.
    async fn records(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("only {out:?} came"));
            assert_eq!(e.event, "activation", "{e:?}");
            let record: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(record["activationId"], e.id.as_str());
            out.push(record);
        }
        out
    }
}

fn ids(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["activationId"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_record_comes_once_in_the_order_written_with_its_logs() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    s.create("slow", &function("slow"), json!({})).await;
    let (status, mut all) =
        Stream::open(&s, &s.auth, "/api/v1/namespaces/_/activations/stream", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        all.res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (_, mut hellos) = Stream::open(
        &s,
        &s.auth,
        "/api/v1/namespaces/_/activations/stream?name=hello",
        &[],
    )
    .await;

    // `slow` is invoked first and finishes last: it comes after `hello`, whose record was
    // written before it.
    let slow = s
        .call(
            "POST",
            "/api/v1/namespaces/_/actions/slow",
            Some(json!({"ms": 1500})),
        )
        .await;
    assert_eq!(slow.status, 202);
    let hello = s.invoke("hello", json!({"name": "live"})).await;
    assert_eq!(hello.status, 200);
    let got = all.records(2).await;
    assert_eq!(
        ids(&got),
        [
            hello.body["activationId"].as_str().unwrap(),
            slow.body["activationId"].as_str().unwrap()
        ]
    );
    let logs = got[0]["logs"].to_string();
    assert!(logs.contains("hello called for live"), "{logs}");
    assert_eq!(got[1]["response"]["result"], json!({"slept": 1500}));

    // The named stream got only `hello`'s.
    let named = hellos.records(1).await;
    assert_eq!(named[0]["name"], "hello");
    let again = s.invoke("hello", json!({})).await;
    assert_eq!(
        ids(&hellos.records(1).await),
        [again.body["activationId"].as_str().unwrap()]
    );
    // Nothing came twice on the first.
    assert_eq!(
        ids(&all.records(1).await),
        [again.body["activationId"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn a_stream_sends_the_past_since_and_resumes_after_the_last_event() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let since = gust_model::time::now_ms();
    let a = s.invoke("hello", json!({"name": "a"})).await;
    let b = s.invoke("hello", json!({"name": "b"})).await;
    let (a, b) = (
        a.body["activationId"].as_str().unwrap().to_string(),
        b.body["activationId"].as_str().unwrap().to_string(),
    );

    // The past first, oldest first.
    let path = format!("/api/v1/namespaces/_/activations/stream?since={since}");
    let (_, mut past) = Stream::open(&s, &s.auth, &path, &[]).await;
    assert_eq!(ids(&past.records(2).await), [a.as_str(), b.as_str()]);

    // Resumed after `a`: `b`, then what is new; `since` does not apply then.
    let (_, mut resumed) = Stream::open(&s, &s.auth, &path, &[("Last-Event-ID", &a)]).await;
    assert_eq!(ids(&resumed.records(1).await), [b.as_str()]);
    let c = s.invoke("hello", json!({"name": "c"})).await;
    let c = c.body["activationId"].as_str().unwrap();
    assert_eq!(ids(&resumed.records(1).await), [c]);
    assert_eq!(ids(&past.records(1).await), [c]);

    // An id that names no record of the namespace starts from now.
    let (_, mut fresh) = Stream::open(
        &s,
        &s.auth,
        "/api/v1/namespaces/_/activations/stream",
        &[("Last-Event-ID", "0123456789abcdef0123456789abcdef")],
    )
    .await;
    let d = s.invoke("hello", json!({"name": "d"})).await;
    assert_eq!(
        ids(&fresh.records(1).await),
        [d.body["activationId"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn a_stream_is_only_the_callers_and_bounded() {
    let s = server();
    s.create("hello", &function("hello"), json!({})).await;
    let other = s.admin(&["namespace", "create", "tenantb"]);
    let path = "/api/v1/namespaces/guest/activations/stream";

    // Another tenant's key, no key, a bad filter: refused, nothing streamed.
    let (status, _) = Stream::open(&s, &other, path, &[]).await;
    assert_eq!(status, 403);
    let r = s.call_as("", "GET", path, None).await;
    assert_eq!(r.status, 401);
    let r = s.call("GET", &format!("{path}?name=..%2Fx"), None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call("GET", &format!("{path}?since=soon"), None).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The other tenant's own stream does not see the guest's records.
    let (status, mut theirs) =
        Stream::open(&s, &other, "/api/v1/namespaces/_/activations/stream", &[]).await;
    assert_eq!(status, 200);

    // Ten streams per namespace; the eleventh is a 429 until one closes.
    let mut open = Vec::new();
    for _ in 0..9 {
        let (status, st) = Stream::open(&s, &s.auth, path, &[]).await;
        assert_eq!(status, 200);
        open.push(st);
    }
    let (_, mut mine) = Stream::open(&s, &s.auth, path, &[]).await;
    let r = s.call("GET", path, None).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.error().contains("allowed: 10"), "{}", r.body);
    drop(open.pop());
    let mut reopened = None;
    // A closed connection is noticed at once, or at the latest at the next keep-alive (15 s).
    for _ in 0..300 {
        let (status, st) = Stream::open(&s, &s.auth, path, &[]).await;
        if status == 200 {
            reopened = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream frees its place");

    let h = s.invoke("hello", json!({})).await;
    assert_eq!(
        ids(&mine.records(1).await),
        [h.body["activationId"].as_str().unwrap()]
    );
    // The other tenant's stream stays quiet: its next event would be a record of its own.
    let quiet = tokio::time::timeout(Duration::from_secs(2), theirs.next()).await;
    assert!(quiet.is_err(), "{quiet:?}");
}

#[tokio::test]
async fn a_stream_ends_when_its_key_is_rotated_and_when_the_server_stops() {
    let mut s = server();
    let other = s.admin(&["namespace", "create", "tenantb"]);
    let path = "/api/v1/namespaces/_/activations/stream";
    let (status, mut theirs) = Stream::open(&s, &other, path, &[]).await;
    assert_eq!(status, 200);
    let (status, mut mine) = Stream::open(&s, &s.auth, path, &[]).await;
    assert_eq!(status, 200);

    // The key is checked again while the stream runs: a rotated one ends it with an error.
    s.admin(&["key", "rotate", "tenantb"]);
    let mut ended = None;
    for _ in 0..3 {
        if let Some(e) = theirs.next().await {
            ended = Some(e);
            break;
        }
    }
    let e = ended.expect("an event ends the stream");
    assert_eq!(e.event, "error", "{e:?}");
    assert!(e.data.contains("authentication"), "{e:?}");
    assert!(
        theirs.res.chunk().await.unwrap().is_none(),
        "and the body ends"
    );

    // A server asked to stop ends its open streams instead of waiting for them.
    let stopped = tokio::task::spawn_blocking(move || s.terminate());
    let exited = tokio::time::timeout(Duration::from_secs(60), stopped).await;
    assert!(matches!(exited, Ok(Ok(true))), "{exited:?}");
    assert!(mine.res.chunk().await.map_or(true, |c| c.is_none()));
}
