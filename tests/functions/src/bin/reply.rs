//! Returns its `reply` parameter as its result (any JSON value), or its parameters when there
//! is none: a web action's response, chosen by the test.
fn main() {
    let mut p = gust_test_functions::params();
    let out = p
        .remove("reply")
        .unwrap_or(gust_test_functions::Value::Object(p));
    gust_test_functions::reply(out);
}
