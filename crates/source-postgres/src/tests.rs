//! The feed's parameters (defaults filled in, unknown and malformed ones refused) and the
//! conversion of column values.

use super::*;
use crate::pgoutput::Datum;
use serde_json::json;

fn configure(params: Value) -> Result<Value, String> {
    gust_source::testing::configure(&Postgres, "changes", params)
}

const URL: &str = "postgres://gust:secret@db:5433/shop";

#[test]
fn defaults_are_filled_in_and_names_chosen_once() {
    let kept = configure(json!({"url": URL, "tables": "orders, sales.items"})).unwrap_or_default();
    let slot = kept["slot"].as_str().unwrap_or_default().to_string();
    assert!(slot.starts_with("gust_") && slot.len() == 25, "{slot}");
    assert_eq!(
        kept,
        json!({"url": URL, "tables": ["public.orders", "sales.items"],
               "operations": ["insert", "update", "delete"], "slot": slot, "publication": slot})
    );
    // What is kept reads the same: the names stay.
    assert_eq!(configure(kept.clone()), Ok(kept));
    let other = configure(json!({"url": URL, "tables": ["orders"]})).unwrap_or_default();
    assert_ne!(
        other["slot"],
        json!(slot),
        "two subscriptions share no slot"
    );
}

#[test]
fn given_names_and_operations_are_kept() {
    assert_eq!(
        configure(
            json!({"url": URL, "tables": ["orders", "orders"], "operations": "delete,insert",
                         "slot": "my_slot"})
        ),
        Ok(
            json!({"url": URL, "tables": ["public.orders"], "operations": ["insert", "delete"],
                  "slot": "my_slot", "publication": "my_slot"})
        )
    );
    assert_eq!(
        configure(json!({"url": URL, "tables": "t", "slot": "s1", "publication": "p1"}))
            .map(|c| (c["slot"].clone(), c["publication"].clone())),
        Ok((json!("s1"), json!("p1")))
    );
}

#[test]
fn bad_parameters_are_refused() {
    let refused = [
        (
            json!({"url": URL, "tables": "t", "tabels": "x"}),
            "unknown parameter 'tabels'",
        ),
        (json!({"tables": "t"}), "missing required parameter 'url'"),
        (json!({"url": URL}), "missing required parameter 'tables'"),
        (json!({"url": "http://x", "tables": "t"}), "parameter 'url'"),
        (json!({"url": URL, "tables": ""}), "empty item"),
        (json!({"url": URL, "tables": []}), "at least one table"),
        (json!({"url": URL, "tables": "a.b.c"}), "'a.b.c'"),
        (
            json!({"url": URL, "tables": "drop table;"}),
            "'drop table;'",
        ),
        (
            json!({"url": URL, "tables": "\"Quoted\""}),
            "a name is a letter",
        ),
        (json!({"url": URL, "tables": 3}), "array of strings"),
        (
            json!({"url": URL, "tables": "t", "operations": "upsert"}),
            "'upsert' is not",
        ),
        (
            json!({"url": URL, "tables": "t", "operations": []}),
            "at least one operation",
        ),
        (
            json!({"url": URL, "tables": "t", "slot": "Has-Caps"}),
            "parameter 'slot'",
        ),
        (
            json!({"url": URL, "tables": "t", "publication": "a b"}),
            "parameter 'publication'",
        ),
    ];
    for (params, error) in refused {
        let got = configure(params.clone());
        assert!(
            got.as_ref().is_err_and(|e| e.contains(error)),
            "{params}: {got:?}, expected an error with '{error}'"
        );
    }
    assert!(
        Postgres
            .configure("rows", &Map::new())
            .is_err_and(|e| e.contains("no feed 'rows'"))
    );
}

#[test]
fn the_database_is_shown_without_credentials() {
    let params = json!({"url": URL, "tables": "t"});
    let c = config::Changes::read(params.as_object().unwrap_or(&Map::new()));
    assert_eq!(c.map(|c| c.shown()), Ok("db:5433/shop".into()));
}

#[test]
fn column_values_keep_their_types() {
    let check = |oid: u32, text: &str, expected: Value| {
        assert_eq!(
            column_value(oid, &Datum::Text(text.into())),
            Some(expected),
            "{oid} {text}"
        );
    };
    check(16, "t", json!(true));
    check(16, "f", json!(false));
    check(23, "-42", json!(-42));
    check(20, "9007199254740993", json!(9_007_199_254_740_993_i64));
    check(701, "2.5", json!(2.5));
    check(701, "NaN", json!("NaN"));
    check(700, "Infinity", json!("Infinity"));
    check(1700, "1.50", json!("1.50"));
    check(3802, r#"{"a": [1]}"#, json!({"a": [1]}));
    check(114, "not json", json!("not json"));
    check(25, "text", json!("text"));
    check(
        1184,
        "2026-12-06 10:00:00+00",
        json!("2026-12-06 10:00:00+00"),
    );
    check(1007, "{1,2}", json!("{1,2}"));
    assert_eq!(column_value(23, &Datum::Null), Some(Value::Null));
    assert_eq!(column_value(25, &Datum::Unchanged), None);
}

#[test]
fn sizes_read_as_people_read_them() {
    assert_eq!(bytes_text(512), "512 B");
    assert_eq!(bytes_text(1536), "1.5 KiB");
    assert_eq!(bytes_text(3 << 30), "3.0 GiB");
}

#[test]
fn the_feed_documents_its_parameters() {
    gust_source::testing::assert_documents(&FEEDS[0], &config::Changes::PARAMETERS);
    assert_eq!(Postgres.secrets(), &["url"]);
    assert!(Postgres.listens("changes"));
}
