//! Compresses text with DEFLATE (the SeBS benchmark suite's "compression" kind of workload),
//! or restores it.
//!
//! `{"text": "...", "level": 6}` -> `{"deflate_base64": "...", "original_bytes": N,
//! "compressed_bytes": M, "ratio": M / N}`; `{"inflate_base64": "..."}` -> `{"text": "..."}`.
use std::io::Read;

use base64::Engine as _;
use serde_json::{Value, json};

fn run(params: &Value) -> Result<Value, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(packed) = params["inflate_base64"].as_str() {
        let bytes = b64.decode(packed).map_err(|e| format!("inflate_base64 is not base64: {e}"))?;
        let text = miniz_oxide::inflate::decompress_to_vec_with_limit(&bytes, 64 << 20)
            .map_err(|e| format!("not DEFLATE data: {e:?}"))?;
        let text = String::from_utf8(text).map_err(|_| "the data is not UTF-8 text".to_string())?;
        return Ok(json!({ "text": text }));
    }
    let text = params["text"]
        .as_str()
        .ok_or("give text to compress, or inflate_base64 to restore")?;
    let level = match &params["level"] {
        Value::Null => 6,
        v => v.as_u64().filter(|l| *l <= 10).ok_or("level must be 0 to 10")? as u8,
    };
    let packed = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), level);
    eprintln!("compressed {} bytes to {} at level {level}", text.len(), packed.len());
    Ok(json!({
        "deflate_base64": b64.encode(&packed),
        "original_bytes": text.len(),
        "compressed_bytes": packed.len(),
        "ratio": if text.is_empty() { 1.0 } else { packed.len() as f64 / text.len() as f64 },
    }))
}

fn main() {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let params: Value = serde_json::from_str(&input).unwrap_or_default();
    println!("{}", run(&params).unwrap_or_else(|e| json!({ "error": e })));
}
