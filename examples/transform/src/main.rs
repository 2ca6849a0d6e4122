//! Reshapes JSON records: keeps those matching `where`, renames fields, keeps only `select`.
//!
//! `{"records": [{"id": 1, "n": "a", "ok": true}, ...], "where": {"ok": true},
//!   "rename": {"n": "name"}, "select": ["id", "name"]}`
//! -> `{"records": [{"id": 1, "name": "a"}], "count": 1}`
//!
//! A parameter of the wrong type is an application error (`{"error": ...}`).
use std::io::Read;

use serde_json::{Map, Value, json};

fn transform(params: &Value) -> Result<Value, String> {
    let records = match &params["records"] {
        Value::Array(r) => r,
        Value::Null => return Err("give records: an array of objects".into()),
        _ => return Err("records must be an array of objects".into()),
    };
    let empty = Map::new();
    let wanted = match &params["where"] {
        Value::Object(w) => w,
        Value::Null => &empty,
        _ => return Err("where must be an object of field: value".into()),
    };
    let rename = match &params["rename"] {
        Value::Object(r) => r,
        Value::Null => &empty,
        _ => return Err("rename must be an object of old: new".into()),
    };
    let select: Option<Vec<&str>> = match &params["select"] {
        Value::Array(s) => Some(
            s.iter()
                .map(|v| v.as_str().ok_or("select must be an array of field names"))
                .collect::<Result<_, _>>()?,
        ),
        Value::Null => None,
        _ => return Err("select must be an array of field names".into()),
    };
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let Value::Object(fields) = record else {
            return Err(format!("record {i} is not an object"));
        };
        if wanted.iter().any(|(k, v)| fields.get(k) != Some(v)) {
            continue;
        }
        let mut renamed = Map::new();
        for (k, v) in fields {
            let key = rename.get(k).and_then(Value::as_str).unwrap_or(k);
            renamed.insert(key.to_string(), v.clone());
        }
        if let Some(select) = &select {
            renamed.retain(|k, _| select.contains(&k.as_str()));
        }
        out.push(Value::Object(renamed));
    }
    eprintln!("kept {} of {} records", out.len(), records.len());
    Ok(json!({ "count": out.len(), "records": out }))
}

fn main() {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let params: Value = serde_json::from_str(&input).unwrap_or_default();
    let result = transform(&params).unwrap_or_else(|e| json!({ "error": e }));
    println!("{result}");
}
