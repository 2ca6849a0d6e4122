//! Sleeps for `ms` milliseconds (default 1500), then answers.
fn main() {
    let p = gust_test_functions::params();
    let ms = p.get("ms").and_then(|v| v.as_u64()).unwrap_or(1500);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    gust_test_functions::reply(gust_test_functions::json!({ "slept": ms }));
}
