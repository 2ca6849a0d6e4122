//! The feeds' parameters: defaults filled in, unknown and malformed ones refused.

use super::*;
use serde_json::json;

fn configure(feed: &str, params: Value) -> Result<Value, String> {
    gust_source::testing::configure(&Nats::default(), feed, params)
}

fn check(feed: &str, params: Value, expected: Result<Value, &str>) {
    assert_eq!(
        configure(feed, params.clone()),
        expected.map_err(str::to_string),
        "{feed} {params}"
    );
}

#[test]
fn subscribe_defaults_are_filled_in() {
    check(
        "subscribe",
        json!({"subject": "orders.>"}),
        Ok(json!({"url": DEFAULT_URL, "subject": "orders.>", "tls": false})),
    );
    check(
        "subscribe",
        json!({"subject": "a.*", "queue": "q", "url": "tls://u:p@nats.example:4222", "deadLetter": "dead.a"}),
        Ok(
            json!({"url": "tls://u:p@nats.example:4222", "subject": "a.*", "queue": "q", "tls": true, "deadLetter": "dead.a"}),
        ),
    );
}

#[test]
fn jetstream_defaults_are_filled_in() {
    check(
        "jetstream",
        json!({"stream": "ORDERS", "consumer": "gust"}),
        Ok(
            json!({"url": DEFAULT_URL, "stream": "ORDERS", "consumer": "gust", "tls": false,
                  "deliverPolicy": "all", "maxDeliver": 5}),
        ),
    );
    check(
        "jetstream",
        json!({"stream": "ORDERS", "consumer": "gust", "deliverPolicy": "new", "maxDeliver": 2, "user": "a", "password": "b"}),
        Ok(
            json!({"url": DEFAULT_URL, "stream": "ORDERS", "consumer": "gust", "tls": false,
                  "deliverPolicy": "new", "maxDeliver": 2, "user": "a", "password": "b"}),
        ),
    );
}

#[test]
fn stream_defaults_are_filled_in() {
    check(
        "stream",
        json!({"stream": "ORDERS"}),
        Ok(
            json!({"url": DEFAULT_URL, "stream": "ORDERS", "tls": false, "partitionKey": "subject"}),
        ),
    );
    check(
        "stream",
        json!({"stream": "ORDERS", "subject": "orders.*.eu", "partitionKey": "header:Tenant", "token": "t"}),
        Ok(
            json!({"url": DEFAULT_URL, "stream": "ORDERS", "subject": "orders.*.eu", "tls": false,
                  "partitionKey": "header:Tenant", "token": "t"}),
        ),
    );
}

#[test]
fn stream_is_read_by_mappings_not_run() {
    let nats = Nats::default();
    assert!(nats.streams("stream") && nats.listens("stream"));
    assert!(!nats.streams("jetstream") && !nats.streams("subscribe"));
}

#[test]
fn configuration_kept_reads_the_same() {
    for (feed, params) in [
        (
            "subscribe",
            json!({"subject": "x", "token": "t", "deadLetter": "d"}),
        ),
        (
            "jetstream",
            json!({"stream": "S", "consumer": "c", "subject": "s.>"}),
        ),
        (
            "stream",
            json!({"stream": "S", "subject": "s.>", "partitionKey": "header:K"}),
        ),
    ] {
        let kept = configure(feed, params).unwrap_or_default();
        assert_eq!(configure(feed, kept.clone()), Ok(kept));
    }
}

#[test]
fn bad_parameters_are_refused() {
    let refused = [
        (
            "subscribe",
            json!({"subject": "x", "sujbect": "y"}),
            "unknown parameter 'sujbect'",
        ),
        (
            "subscribe",
            json!({}),
            "missing required parameter 'subject'",
        ),
        (
            "subscribe",
            json!({"subject": "a..b"}),
            "is not a NATS subject",
        ),
        (
            "subscribe",
            json!({"subject": "a b"}),
            "is not a NATS subject",
        ),
        ("subscribe", json!({"subject": "a.>.b"}), "inside a name"),
        (
            "subscribe",
            json!({"subject": "x", "deadLetter": "d.*"}),
            "has a wildcard",
        ),
        (
            "subscribe",
            json!({"subject": "x", "url": "http://h"}),
            "use nats://host",
        ),
        (
            "subscribe",
            json!({"subject": "x", "user": "u"}),
            "go together",
        ),
        (
            "subscribe",
            json!({"subject": "x", "tls": "yes"}),
            "must be true or false",
        ),
        (
            "jetstream",
            json!({"consumer": "c"}),
            "missing required parameter 'stream'",
        ),
        (
            "jetstream",
            json!({"stream": "S"}),
            "missing required parameter 'consumer'",
        ),
        (
            "jetstream",
            json!({"stream": "S.x", "consumer": "c"}),
            "may not contain",
        ),
        (
            "jetstream",
            json!({"stream": "S", "consumer": "c", "deliverPolicy": "first"}),
            "all, new or last",
        ),
        (
            "jetstream",
            json!({"stream": "S", "consumer": "c", "maxDeliver": 0}),
            "from 1 to 10000",
        ),
        (
            "jetstream",
            json!({"stream": "S", "consumer": "c", "queue": "q"}),
            "unknown parameter 'queue'",
        ),
        (
            "stream",
            json!({"subject": "s"}),
            "missing required parameter 'stream'",
        ),
        (
            "stream",
            json!({"stream": "S", "consumer": "c"}),
            "unknown parameter 'consumer'",
        ),
        (
            "stream",
            json!({"stream": "S", "batchSize": 10}),
            "unknown parameter 'batchSize'",
        ),
        ("stream", json!({"stream": "S.x"}), "may not contain"),
        (
            "stream",
            json!({"stream": "S", "subject": "a..b"}),
            "is not a NATS subject",
        ),
        (
            "stream",
            json!({"stream": "S", "partitionKey": "key"}),
            "'subject' or 'header:NAME'",
        ),
        (
            "stream",
            json!({"stream": "S", "partitionKey": "header:"}),
            "'subject' or 'header:NAME'",
        ),
        (
            "stream",
            json!({"stream": "S", "partitionKey": "header:a b"}),
            "'subject' or 'header:NAME'",
        ),
        ("pull", json!({}), "has no feed 'pull'"),
    ];
    for (feed, params, error) in refused {
        let got = configure(feed, params.clone());
        assert!(
            got.as_ref().is_err_and(|e| e.contains(error)),
            "{feed} {params}: {got:?}, expected an error with '{error}'"
        );
    }
}

#[test]
fn output_takes_one_subject() {
    let params = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(
        output_config(&params(json!({"subject": "out.x"}))).map(Value::Object),
        Ok(json!({"url": DEFAULT_URL, "subject": "out.x", "tls": false}))
    );
    assert!(output_config(&params(json!({"subject": "out.>"}))).is_err());
    assert!(output_config(&params(json!({"subject": "o", "queue": "q"}))).is_err());
    // A message id (the Nats-Msg-Id header) is kept; it is visible ASCII.
    assert_eq!(
        output_config(&params(json!({"subject": "o", "msgId": "abc-1"}))).map(Value::Object),
        Ok(json!({"url": DEFAULT_URL, "subject": "o", "tls": false, "msgId": "abc-1"}))
    );
    for bad in [json!(""), json!("a b"), json!(1)] {
        assert!(output_config(&params(json!({"subject": "o", "msgId": bad}))).is_err());
    }
}

#[test]
fn secrets_are_named_and_urls_shown_without_credentials() {
    let nats = Nats::default();
    assert!(nats.secrets().contains(&"password"));
    assert!(nats.secrets().contains(&"url"));
    assert_eq!(redact("nats://u:p@h:4222"), "nats://h:4222");
    assert_eq!(redact("tls://h:4222/x@y"), "tls://h:4222/x@y");
    assert_eq!(redact("h:4222"), "h:4222");
}

#[test]
fn every_feed_documents_its_parameters() {
    for feed in FEEDS {
        let known: &[&str] = match feed.name {
            "subscribe" => &config::Subscribe::PARAMETERS,
            "stream" => &config::Stream::PARAMETERS,
            _ => &config::JetStream::PARAMETERS,
        };
        gust_source::testing::assert_documents(feed, known);
    }
}
