//! `gust_test_http_handler.wasm` (built for wasm32-wasip2): a wasi:http handler, a
//! component that exports `wasi:http/incoming-handler` as `wasmtime serve` runs it. What it
//! does depends on the request path:
//! - `/spin`: loops forever (stopped at its time limit);
//! - `/stream?n=N`: writes N lines, flushing each (a streamed body);
//! - `/net`: tries an outgoing request and answers what happened;
//! - `/none`: returns without a response;
//! - `/big`: grows its memory until refused;
//! - anything else: answers `{method, path, body, header, activation}` as JSON (201 for a POST).

use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Handler;

wasi::http::proxy::export!(Handler);

fn respond(out: ResponseOutparam, status: u16, content_type: &str, chunks: &[Vec<u8>]) {
    let headers = Fields::from_list(&[(
        "content-type".to_string(),
        content_type.as_bytes().to_vec(),
    )])
    .unwrap();
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).unwrap();
    let body = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    let stream = body.write().unwrap();
    for chunk in chunks {
        for piece in chunk.chunks(4096) {
            stream.blocking_write_and_flush(piece).unwrap();
        }
    }
    drop(stream);
    OutgoingBody::finish(body, None).unwrap();
}

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            other => format!("{other:?}"),
        };
        eprintln!("handling {method} {path}");
        let header = request
            .headers()
            .get(&"x-test".to_string())
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let auth = !request
            .headers()
            .get(&"authorization".to_string())
            .is_empty();
        let mut body = Vec::new();
        if let Ok(incoming) = request.consume() {
            if let Ok(stream) = incoming.stream() {
                while let Ok(chunk) = stream.blocking_read(65536) {
                    body.extend(chunk);
                }
            }
        }
        if path == "/spin" {
            #[allow(clippy::empty_loop)]
            loop {}
        }
        if path == "/none" {
            return;
        }
        if path == "/big" {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                hog.push(vec![1u8; 16 * 1024 * 1024]);
            }
        }
        if let Some(n) = path.strip_prefix("/stream?n=") {
            let n: usize = n.parse().unwrap_or(3);
            let lines: Vec<Vec<u8>> = (0..n).map(|i| format!("line {i}\n").into_bytes()).collect();
            respond(out, 200, "text/plain", &lines);
            return;
        }
        if path == "/net" {
            let req = OutgoingRequest::new(Fields::new());
            let _ = req.set_scheme(Some(&Scheme::Http));
            let _ = req.set_authority(Some("127.0.0.1:5432"));
            let _ = req.set_path_with_query(Some("/"));
            let outcome = match wasi::http::outgoing_handler::handle(req, None) {
                Ok(future) => {
                    future.subscribe().block();
                    match future.get() {
                        Some(Ok(Ok(_))) => "connected".to_string(),
                        Some(Ok(Err(e))) => format!("refused: {e:?}"),
                        other => format!("refused: {other:?}"),
                    }
                }
                Err(e) => format!("refused: {e:?}"),
            };
            let v = serde_json::json!({ "outcome": outcome });
            respond(out, 200, "application/json", &[v.to_string().into_bytes()]);
            return;
        }
        let v = serde_json::json!({
            "method": method,
            "path": path,
            "body": String::from_utf8_lossy(&body),
            "header": header,
            "auth": auth,
            "activation": std::env::var("__OW_ACTIVATION_ID").ok(),
        });
        let status = if method == "POST" { 201 } else { 200 };
        respond(out, status, "application/json", &[v.to_string().into_bytes()]);
    }
}
