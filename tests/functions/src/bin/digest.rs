//! Returns a digest (FNV-1a, 64 bits, hex) of each parameter's value (its JSON text) and of
//! each environment variable, never a value itself: a test proves that a secret arrived
//! without the secret being written into a record.
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn main() {
    use gust_test_functions::{Map, Value};
    let params: Map<String, Value> = gust_test_functions::params()
        .into_iter()
        .map(|(k, v)| (k, Value::String(fnv1a(v.to_string().as_bytes()))))
        .collect();
    let env: Map<String, Value> = std::env::vars()
        .map(|(k, v)| (k, Value::String(fnv1a(v.as_bytes()))))
        .collect();
    gust_test_functions::reply(gust_test_functions::json!({ "params": params, "env": env }));
}
