//! Writes far more log lines than the log limit, then returns normally.
fn main() {
    let p = gust_test_functions::params();
    let lines = p.get("lines").and_then(|v| v.as_u64()).unwrap_or(200_000);
    for i in 0..lines {
        eprintln!("log line {i} {}", "y".repeat(64));
    }
    gust_test_functions::reply(gust_test_functions::json!({ "done": true }));
}
