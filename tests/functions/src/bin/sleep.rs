//! Blocks in a host call (a WASI sleep) far past its timeout.
fn main() {
    std::thread::sleep(std::time::Duration::from_secs(3600));
    gust_test_functions::reply(gust_test_functions::json!({ "slept": true }));
}
