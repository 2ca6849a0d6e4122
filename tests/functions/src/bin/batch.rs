//! A stream mapping's function: reads `Records` and answers with the `sequenceNumber`s and
//! `partitionKey`s it saw (`seen`, `keys`). A record whose `data.bad` is true fails the batch
//! as its `mode` parameter says: `error` (the default) an application error, `partial` a
//! `batchItemFailures` entry for each bad record. `sleepMs` makes every batch take that long.
use gust_test_functions::{Value, json};

fn main() {
    let p = gust_test_functions::params();
    if let Some(ms) = p.get("sleepMs").and_then(Value::as_u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let records = p
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let seen: Vec<Value> = records.iter().map(|r| r["sequenceNumber"].clone()).collect();
    let keys: Vec<Value> = records.iter().map(|r| r["partitionKey"].clone()).collect();
    let bad: Vec<Value> = records
        .iter()
        .filter(|r| r["data"]["bad"] == true)
        .map(|r| json!({ "itemIdentifier": r["sequenceNumber"] }))
        .collect();
    let mode = p.get("mode").and_then(Value::as_str).unwrap_or("error");
    let answer = if bad.is_empty() {
        json!({ "seen": seen, "keys": keys })
    } else if mode == "partial" {
        json!({ "seen": seen, "keys": keys, "batchItemFailures": bad })
    } else {
        json!({ "error": format!("{} bad record(s)", bad.len()), "seen": seen })
    };
    gust_test_functions::reply(answer);
}
