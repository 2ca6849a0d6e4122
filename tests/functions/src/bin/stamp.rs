//! Returns its parameters and the time it started (`startedUs`, µs since the epoch), for
//! benchmarks that measure the delay up to an action's start.
fn main() {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let p = gust_test_functions::params();
    gust_test_functions::reply(gust_test_functions::json!({ "params": p, "startedUs": started }));
}
