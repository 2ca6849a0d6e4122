//! Adds one to `n` and appends its own name to `trail`: a sequence step whose order shows.
fn main() {
    let p = gust_test_functions::params();
    let n = p.get("n").and_then(|v| v.as_i64()).unwrap_or(0);
    let mut trail = p
        .get("trail")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    trail.push(gust_test_functions::Value::String(
        std::env::var("__OW_ACTION_NAME").unwrap_or_default(),
    ));
    let mut out = p.clone();
    out.insert("n".into(), gust_test_functions::json!(n + 1));
    out.insert("trail".into(), gust_test_functions::Value::Array(trail));
    gust_test_functions::reply(gust_test_functions::Value::Object(out));
}
