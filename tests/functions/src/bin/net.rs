//! Tries to open a TCP connection to `addr` and to resolve a host name; reports what happened.
fn main() {
    let p = gust_test_functions::params();
    let addr = p.get("addr").and_then(|v| v.as_str()).unwrap_or("127.0.0.1:80").to_string();
    let connect = match std::net::TcpStream::connect(&addr) {
        Ok(_) => "connected".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let resolve = match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)) {
        Ok(mut a) => format!("resolved: {:?}", a.next()),
        Err(e) => format!("refused: {e}"),
    };
    gust_test_functions::reply(gust_test_functions::json!({ "connect": connect, "resolve": resolve }));
}
