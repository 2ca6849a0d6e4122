fn main() {
    let _ = gust_test_functions::params();
    gust_test_functions::reply(gust_test_functions::json!({ "error": "something went wrong" }));
}
