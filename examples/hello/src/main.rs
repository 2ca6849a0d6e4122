//! Greets `name`: `{"name": "Ada"}` -> `{"greeting": "Hello, Ada!"}`.
//!
//! The Gust ABI: the parameters arrive as one JSON object on stdin, the result is one JSON
//! object on stdout, and every line on stderr is a log line.
use std::io::Read;

fn main() {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let params: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    let name = params["name"].as_str().unwrap_or("World");
    eprintln!("greeting {name}");
    println!("{}", serde_json::json!({ "greeting": format!("Hello, {name}!") }));
}
