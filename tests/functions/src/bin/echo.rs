//! Returns its parameters and what it can see of its environment.
fn main() {
    let p = gust_test_functions::params();
    let env: gust_test_functions::Map<String, gust_test_functions::Value> = std::env::vars()
        .map(|(k, v)| (k, gust_test_functions::Value::String(v)))
        .collect();
    let root = std::fs::read_dir("/").is_ok();
    let cwd_listing = std::fs::read_dir(".").is_ok();
    gust_test_functions::reply(gust_test_functions::json!({
        "params": p,
        "env": env,
        "can_read_root": root,
        "can_read_cwd": cwd_listing,
        "args": std::env::args().collect::<Vec<_>>(),
    }));
}
