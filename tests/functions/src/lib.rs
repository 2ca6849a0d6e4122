//! Shared by the test functions: read the parameters, write the result.

use std::io::{Read, Write};

pub use serde_json::{Map, Value, json};

/// The parameters the platform wrote to stdin.
pub fn params() -> Map<String, Value> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    match serde_json::from_str(&input) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Writes the result object to stdout.
pub fn reply(v: Value) {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &v).expect("stdout");
    out.flush().expect("flush");
}
