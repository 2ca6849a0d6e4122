//! Keeps a counter in a static: it must read 1 on every activation, since each runs in a
//! fresh instance.
use std::sync::atomic::{AtomicU64, Ordering};
static CALLS: AtomicU64 = AtomicU64::new(0);
fn main() {
    let _ = gust_test_functions::params();
    let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    gust_test_functions::reply(gust_test_functions::json!({ "calls": n }));
}
