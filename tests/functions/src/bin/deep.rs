//! Returns an object nested `{"depth": N}` levels deep (default 120): deeper than Gust
//! accepts, shallower than serde_json's own limit when N is small enough.
use std::io::Read;

fn main() {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let params: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    let depth = params["depth"].as_u64().unwrap_or(120) as usize;
    let mut out = String::new();
    for _ in 0..depth {
        out.push_str("{\"a\":");
    }
    out.push('1');
    for _ in 0..depth {
        out.push('}');
    }
    print!("{out}");
}
