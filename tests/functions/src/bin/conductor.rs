//! A conductor action: runs the actions of its `plan` parameter one after another (the
//! step it is at travels in `state` as `$step`), or, with `forever`, asks for `plan[0]` again
//! and again.
use gust_test_functions::{Value, json};

fn main() {
    let mut p = gust_test_functions::params();
    let step = p.remove("$step").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
    let plan = p
        .remove("plan")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let forever = p.remove("forever").is_some();
    if forever {
        gust_test_functions::reply(json!({
            "action": plan[0],
            "params": Value::Object(p),
            "state": { "forever": true },
        }));
    } else if step < plan.len() {
        gust_test_functions::reply(json!({
            "action": plan[step],
            "params": Value::Object(p),
            "state": { "$step": step + 1 },
        }));
    } else {
        gust_test_functions::reply(json!({ "params": Value::Object(p) }));
    }
}
