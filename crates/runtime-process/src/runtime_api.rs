//! The Lambda Runtime API of one instance (decision 0025): `GET /2018-06-01/runtime/
//! invocation/next`, `POST .../invocation/{id}/response`, `.../invocation/{id}/error` and
//! `/2018-06-01/runtime/init/error`, served by the invoker on a socket only that instance
//! can reach.
//!
//! The pool speaks to it through [`RuntimeApi::offer`]: the instance's initialization (done
//! when the runtime first asks for an event, failed when it posts an init error) or an
//! event. An answer is handed to the activation it belongs to through the `deliver`
//! callback, as the result text of `gust_model::lambda` (`{"ok": true}` or
//! `{"error": "..."}` for the initialization).
//!
//! **Invariant:** a response is taken only for the request id of an event this instance
//! was given and has not answered; anything else is refused as Lambda's Runtime API refuses
//! it (`InvalidRequestID`), changing nothing.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gust_model::lambda;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::lock;

/// A response or error body the API takes at most (Lambda's limit, 6 MB, and room for its
/// framing; the activation keeps what its result limit allows).
const MAX_BODY: usize = 6 * 1024 * 1024 + 1024;
/// Connections one instance may hold open at once (a runtime needs one or two): a hostile
/// function cannot make the invoker hold more.
const MAX_CONNECTIONS: usize = 8;
const PREFIX: &str = "/2018-06-01/runtime";

/// One event for the runtime.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub request_id: String,
    pub body: Vec<u8>,
    /// Milliseconds since the epoch.
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
}

/// Hands an activation (by the instance's exchange id) its answer.
pub(crate) type Deliver = Box<dyn Fn(u64, Vec<u8>) + Send + Sync>;

#[derive(Default)]
struct State {
    /// The exchange waiting for the runtime's first `/next` (its initialization).
    init: Option<u64>,
    /// How the runtime's initialization ended, if it ended before the pool asked (a fast
    /// runtime asks for its first event before `offer(None)`): the initialization's answer.
    init_ended: Option<Vec<u8>>,
    /// Events not yet taken by `/next`.
    queue: VecDeque<(u64, Event)>,
    /// Events taken and not answered: request id -> exchange id.
    running: HashMap<String, u64>,
    /// The runtime's initialization has ended (it asked for an event, or failed).
    started: bool,
}

pub(crate) struct RuntimeApi {
    state: Mutex<State>,
    queued: Notify,
    deliver: Deliver,
}

impl RuntimeApi {
    pub(crate) fn new(deliver: Deliver) -> Arc<RuntimeApi> {
        Arc::new(RuntimeApi {
            state: Mutex::new(State::default()),
            queued: Notify::new(),
            deliver,
        })
    }

    /// Gives exchange `exchange` to the runtime: its initialization (`None`), or an event.
    pub(crate) fn offer(&self, exchange: u64, event: Option<Event>) {
        let mut st = lock(&self.state);
        match event {
            None => match st.init_ended.take() {
                Some(answer) => {
                    drop(st);
                    (self.deliver)(exchange, answer);
                }
                None => st.init = Some(exchange),
            },
            Some(e) => {
                st.queue.push_back((exchange, e));
                self.queued.notify_one();
            }
        }
    }

    /// Serves connections on `listener` until the task is aborted, which ends its
    /// connections too (a runtime blocked in `/next` when its instance is discarded leaves no
    /// task behind). With `peer_uid`, a connection is served only when the connecting socket
    /// belongs to that host uid (a listener on the host's loopback, which other processes
    /// could reach).
    pub(crate) async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        peer_uid: Option<u32>,
    ) {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                Some(_) = connections.join_next() => continue,
            };
            let Ok((stream, peer)) = accepted else {
                // Out of descriptors, most likely: not a busy loop.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            if connections.len() >= MAX_CONNECTIONS {
                tracing::debug!(%peer, "a Runtime API connection over the limit was closed");
                continue;
            }
            if let Some(uid) = peer_uid {
                let local = stream.local_addr().ok();
                if local.is_none_or(|l| socket_uid(peer, l) != Some(uid)) {
                    tracing::warn!(%peer, "a connection to a Runtime API from another process was refused");
                    continue;
                }
            }
            // Small requests and answers both ways: no waiting on Nagle and delayed ACKs.
            let _ = stream.set_nodelay(true);
            let api = self.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return invalid(StatusCode::NOT_FOUND, "InvalidRequest", "Unknown path");
        };
        let method = req.method().clone();
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            (Method::GET, ["invocation", "next"]) => self.next().await,
            (Method::POST, ["invocation", id, "response"]) => {
                let id = id.to_string();
                self.answer(&id, |b| response_result(&b), req).await
            }
            (Method::POST, ["invocation", id, "error"]) => {
                let id = id.to_string();
                self.answer(&id, |b| lambda::result_of_error(&b), req).await
            }
            (Method::POST, ["init", "error"]) => match read_body(req).await {
                Ok(body) => self.init_error(&body),
                Err(r) => r,
            },
            _ => invalid(
                StatusCode::NOT_FOUND,
                "InvalidRequest",
                "Unknown Runtime API path or method",
            ),
        }
    }

    /// The runtime is ready: its initialization is done; it waits for an event.
    async fn next(&self) -> Response<Full<Bytes>> {
        self.end_init(br#"{"ok":true}"#.to_vec());
        let (exchange, event) = loop {
            let queued = self.queued.notified();
            if let Some(e) = lock(&self.state).queue.pop_front() {
                break e;
            }
            queued.await;
        };
        lock(&self.state)
            .running
            .insert(event.request_id.clone(), exchange);
        let mut r = Response::new(Full::new(Bytes::from(event.body)));
        let h = r.headers_mut();
        for (name, value) in [
            ("content-type", "application/json".to_string()),
            ("lambda-runtime-aws-request-id", event.request_id),
            ("lambda-runtime-deadline-ms", event.deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", event.function_arn),
            ("lambda-runtime-trace-id", event.trace_id),
        ] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        r
    }

    /// The first time only: the initialization ends with `answer`, now if the pool is
    /// waiting for it, else when it asks.
    fn end_init(&self, answer: Vec<u8>) {
        let mut st = lock(&self.state);
        if std::mem::replace(&mut st.started, true) {
            return;
        }
        match st.init.take() {
            Some(init) => {
                drop(st);
                (self.deliver)(init, answer);
            }
            None => st.init_ended = Some(answer),
        }
    }

    /// A response or an error for request `id`, turned into its activation's result. An id
    /// this instance did not hand out is refused before its body is read.
    async fn answer(
        &self,
        id: &str,
        result: impl FnOnce(Bytes) -> Vec<u8>,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        if !lock(&self.state).running.contains_key(id) {
            return invalid(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "Invalid request ID",
            );
        }
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(exchange) = lock(&self.state).running.remove(id) else {
            return invalid(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "Invalid request ID",
            );
        };
        (self.deliver)(exchange, result(body));
        accepted()
    }

    /// The runtime could not initialize: its initialization fails with its error
    /// (`errorType: errorMessage`); an init error after that fails the event it runs, if any.
    fn init_error(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let mut st = lock(&self.state);
        if !st.started {
            drop(st);
            let why = json!({"error": describe_error(body)});
            self.end_init(serde_json::to_vec(&why).unwrap_or_default());
            return accepted();
        }
        let running: Vec<u64> = st.running.drain().map(|(_, e)| e).collect();
        drop(st);
        for exchange in running {
            (self.deliver)(exchange, lambda::result_of_error(body));
        }
        accepted()
    }
}

/// A runtime's response as an activation result; a body that is not JSON is kept as text.
fn response_result(body: &[u8]) -> Vec<u8> {
    lambda::result_of_response(body).unwrap_or_else(|| {
        let text = Value::String(String::from_utf8_lossy(body).into_owned());
        lambda::result_of_response(text.to_string().as_bytes()).unwrap_or_default()
    })
}

/// `errorType: errorMessage` of a runtime's error body, or the body itself.
fn describe_error(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    match (field("errorType"), field("errorMessage")) {
        ("", "") => String::from_utf8_lossy(body).chars().take(1000).collect(),
        (t, "") => t.to_string(),
        ("", m) => m.to_string(),
        (t, m) => format!("{t}: {m}"),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The body is larger than the Runtime API takes",
        )),
    }
}

fn accepted() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)));
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn invalid(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"errorType": kind, "errorMessage": message}).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The host uid owning the TCP socket at `peer` connected to `local` (IPv4 loopback),
/// from `/proc/net/tcp`.
fn socket_uid(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<u32> {
    let (std::net::SocketAddr::V4(p), std::net::SocketAddr::V4(l)) = (peer, local) else {
        return None;
    };
    let hex = |a: std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (want_local, want_remote) = (hex(p), hex(l));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&want_local.as_str()) && f.get(2) == Some(&want_remote.as_str()))
            .then(|| f.get(7)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_described_by_type_and_message() {
        assert_eq!(
            describe_error(br#"{"errorType":"Runtime.ImportModuleError","errorMessage":"No module named 'app'"}"#),
            "Runtime.ImportModuleError: No module named 'app'"
        );
        assert_eq!(describe_error(b"plain"), "plain");
    }

    #[test]
    fn a_response_that_is_not_json_is_kept_as_text() {
        let v: Value = serde_json::from_slice(&response_result(b"hello")).unwrap();
        assert_eq!(lambda::payload(&v), &json!("hello"));
    }

    #[tokio::test]
    async fn a_runtime_that_asks_before_the_pool_waits_still_starts_and_gets_its_event() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        type Delivered = Vec<(u64, Vec<u8>)>;
        let got: Arc<Mutex<Delivered>> = Arc::default();
        let g = got.clone();
        let api = RuntimeApi::new(Box::new(move |id, body| lock(&g).push((id, body))));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(api.clone().serve(l, None));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        for _ in 0..500 {
            if lock(&api.state).started {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        // The pool asks for the initialization after the runtime asked for its first event.
        api.offer(7, None);
        assert_eq!(*lock(&got), vec![(7, br#"{"ok":true}"#.to_vec())]);
        api.offer(
            8,
            Some(Event {
                request_id: "r1".into(),
                body: b"{}".to_vec(),
                deadline_ms: 1,
                function_arn: "arn".into(),
                trace_id: "t".into(),
            }),
        );
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
        assert!(text.contains("lambda-runtime-aws-request-id: r1"), "{text}");
        assert!(text.contains("content-type: application/json"), "{text}");
        // An id it did not hand out is refused; its own is taken once.
        for (id, status) in [("r2", "400"), ("r1", "202"), ("r1", "400")] {
            let req = format!(
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
            );
            c.write_all(req.as_bytes()).await.unwrap();
            let n = c.read(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}")),
                "{id}: {text}"
            );
        }
        assert_eq!(lock(&got).len(), 2);
        assert_eq!(lock(&got)[1], (8, b"{}".to_vec()));
    }

    #[tokio::test]
    async fn a_stopped_api_ends_its_connections_and_holds_no_more_than_its_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let api = RuntimeApi::new(Box::new(|_, _| {}));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(api.clone().serve(l, None));
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 4 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            held.push(c);
        }
        // Past the limit, connections are closed unanswered; the others wait for an event.
        let mut closed = 0;
        for c in &mut held {
            let mut buf = [0u8; 64];
            match tokio::time::timeout(std::time::Duration::from_millis(200), c.read(&mut buf))
                .await
            {
                Ok(Ok(0) | Err(_)) => closed += 1,
                Ok(Ok(_)) => panic!("a /next was answered without an event"),
                Err(_) => {}
            }
        }
        assert_eq!(closed, 4);
        // Stopping the API ends the waiting ones too.
        task.abort();
        for c in held.iter_mut().take(MAX_CONNECTIONS) {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf))
                .await
                .expect("the connection outlived its API");
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
    }

    #[test]
    fn a_socket_is_found_by_its_addresses() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert_eq!(socket_uid(peer, s.local_addr().unwrap()), Some(me));
        drop(c);
    }
}
