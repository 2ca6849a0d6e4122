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
    assert!(Redis.secrets().contains(&"password"));
}
