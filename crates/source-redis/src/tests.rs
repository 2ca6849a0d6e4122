//! The feed's and the output's parameters: defaults filled in, unknown and malformed ones
//! refused.

use super::*;
use serde_json::json;

fn configure(params: Value) -> Result<Value, String> {
    gust_source::testing::configure(&Redis, "stream", params)
}

#[test]
fn defaults_are_filled_in() {
    assert_eq!(
        configure(json!({"stream": "orders", "group": "g"})),
        Ok(
            json!({"url": DEFAULT_URL, "stream": "orders", "group": "g", "consumer": "gust",
                  "start": "$", "deadLetter": "orders:dead"})
        )
    );
    assert_eq!(
        configure(
            json!({"stream": "s", "group": "g", "consumer": "c", "start": "0",
                         "deadLetter": "dl", "url": "rediss://cache:6380/2",
                         "username": "u", "password": "p"})
        ),
        Ok(
            json!({"url": "rediss://cache:6380/2", "stream": "s", "group": "g", "consumer": "c",
                  "start": "0", "deadLetter": "dl", "username": "u", "password": "p"})
        )
    );
}

#[test]
fn configuration_kept_reads_the_same() {
    let kept = configure(json!({"stream": "s", "group": "g", "password": "p"})).unwrap_or_default();
    assert_eq!(configure(kept.clone()), Ok(kept));
}

#[test]
fn the_server_is_shown_without_credentials() {
    let params = json!({"stream": "s", "group": "g", "url": "redis://:secret@cache:6390/1"});
    let c = config::Stream::read(params.as_object().unwrap_or(&Map::new()));
    assert_eq!(c.map(|c| c.server.shown()), Ok("redis://cache:6390".into()));
}

#[test]
fn bad_parameters_are_refused() {
    let refused = [
        (
            json!({"stream": "s", "group": "g", "gruop": "x"}),
            "unknown parameter 'gruop'",
        ),
        (json!({"group": "g"}), "missing required parameter 'stream'"),
        (json!({"stream": "s"}), "missing required parameter 'group'"),
        (
            json!({"stream": "s", "group": "g", "start": "1-0"}),
            "'$' (new entries) or '0'",
        ),
        (
            json!({"stream": "s", "group": "g", "url": "http://h"}),
            "parameter 'url'",
        ),
        (
            json!({"stream": "s", "group": "g", "username": "u"}),
            "needs 'password'",
        ),
        (
            json!({"stream": "s", "group": "g", "deadLetter": "s"}),
            "another stream",
        ),
        (
            json!({"stream": "s", "group": "g", "consumer": 3}),
            "non-empty string",
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
        Redis
            .configure("list", &Map::new())
            .is_err_and(|e| e.contains("no feed 'list'"))
    );
}

#[test]
fn output_takes_a_stream() {
    let params = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(
        output_config(&params(json!({"stream": "results", "maxLen": 1000}))).map(Value::Object),
        Ok(json!({"url": DEFAULT_URL, "stream": "results", "maxLen": 1000}))
    );
    assert!(output_config(&params(json!({}))).is_err());
    assert!(output_config(&params(json!({"stream": "s", "maxLen": 0}))).is_err());
    assert!(output_config(&params(json!({"stream": "s", "group": "g"}))).is_err());
}

#[test]
fn the_feed_documents_its_parameters() {
    gust_source::testing::assert_documents(&FEEDS[0], &config::Stream::PARAMETERS);
    gust_source::testing::assert_documents(&FEEDS[1], &config::Batches::PARAMETERS);
    assert!(Redis.secrets().contains(&"password"));
}

fn batches(params: Value) -> Result<Value, String> {
    gust_source::testing::configure(&Redis, "batches", params)
}

#[test]
fn batches_defaults_are_filled_in_and_bad_ones_refused() {
    assert_eq!(
        batches(json!({"stream": "orders"})),
        Ok(json!({"url": DEFAULT_URL, "stream": "orders", "partitionKey": "stream"}))
    );
    let kept = batches(json!({"stream": "s", "partitionKey": "field:tenant", "password": "p"}));
    assert_eq!(
        kept,
        Ok(
            json!({"url": DEFAULT_URL, "stream": "s", "partitionKey": "field:tenant", "password": "p"})
        )
    );
    assert_eq!(batches(kept.clone().unwrap_or_default()), kept);
    for (params, error) in [
        (json!({}), "missing required parameter 'stream'"),
        (
            json!({"stream": "s", "group": "g"}),
            "unknown parameter 'group'",
        ),
        (
            json!({"stream": "s", "batchSize": 10}),
            "unknown parameter 'batchSize'",
        ),
        (
            json!({"stream": "s", "partitionKey": "field:"}),
            "'stream' or 'field:NAME'",
        ),
        (
            json!({"stream": "s", "partitionKey": "subject"}),
            "'stream' or 'field:NAME'",
        ),
    ] {
        let got = batches(params.clone());
        assert!(
            got.as_ref().is_err_and(|e| e.contains(error)),
            "{params}: {got:?}, expected an error with '{error}'"
        );
    }
    assert!(Redis.streams("batches") && Redis.listens("batches"));
    assert!(!Redis.streams("stream"));
}

#[test]
fn entry_ids_and_sequences_order_alike() {
    assert_eq!(sequence("0-1"), Ok(1));
    assert_eq!(sequence("1-0"), Ok(65_536));
    assert_eq!(
        sequence("1700000000000-5"),
        Ok(1_700_000_000_000 * 65_536 + 5)
    );
    assert_eq!(sequence("1-65535"), Ok(2 * 65_536 - 1));
    for s in [0, 1, 65_535, 65_536, 1_700_000_000_000 * 65_536 + 5] {
        assert_eq!(sequence(&entry_id(s)), Ok(s));
    }
    assert!(sequence("1-65536").is_err_and(|e| e.contains("'1-65536' has no sequence")));
    assert!(sequence(&format!("{}-0", 1u64 << 48)).is_err());
    assert!(sequence("12").is_err_and(|e| e.contains("not a stream entry id")));
}
