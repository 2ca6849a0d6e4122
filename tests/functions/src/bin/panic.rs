fn main() {
    let p = gust_test_functions::params();
    if p.get("ok").is_none() {
        panic!("deliberate panic");
    }
    gust_test_functions::reply(gust_test_functions::json!({}));
}
