fn main() {
    let p = gust_test_functions::params();
    let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("World");
    eprintln!("hello called for {name}");
    gust_test_functions::reply(gust_test_functions::json!({ "greeting": format!("Hello, {name}!") }));
}
