//! The feed's and the output's parameters: defaults filled in, unknown and malformed ones
//! refused.

use super::*;
use serde_json::json;

fn configure(params: Value) -> Result<Value, String> {
    gust_source::testing::configure(&Amqp, "consume", params)
}

#[test]
fn defaults_are_filled_in() {
    assert_eq!(
        configure(json!({"queue": "orders"})),
        Ok(json!({"url": DEFAULT_URL, "queue": "orders", "declare": false, "prefetch": 16}))
    );
    assert_eq!(
        configure(
            json!({"queue": "q", "url": "amqp://u:p@rabbit:5673/prod", "declare": true,
                         "exchange": "events", "routingKey": "order.*", "prefetch": 1,
                         "deadLetter": "q.dead"})
        ),
        Ok(
            json!({"url": "amqp://u:p@rabbit:5673/prod", "queue": "q", "declare": true,
                  "exchange": "events", "routingKey": "order.*", "prefetch": 1,
                  "deadLetter": "q.dead"})
        )
    );
}

#[test]
fn configuration_kept_reads_the_same() {
    let kept = configure(json!({"queue": "q", "exchange": "x"})).unwrap_or_default();
    assert_eq!(configure(kept.clone()), Ok(kept));
}

#[test]
fn the_url_is_shown_without_credentials() {
    let params = json!({"queue": "q", "url": "amqp://u:secret@rabbit:5673/%2f"});
    let c = config::Consume::read(params.as_object().unwrap_or(&Map::new()));
    assert_eq!(
        c.map(|c| c.broker.shown()),
        Ok("amqp://rabbit:5673/%2f".into())
    );
}

#[test]
fn bad_parameters_are_refused() {
    let refused = [
        (
            json!({"queue": "q", "qeueu": "x"}),
            "unknown parameter 'qeueu'",
        ),
        (json!({}), "missing required parameter 'queue'"),
        (json!({"queue": "q", "routingKey": "k"}), "give one"),
        (json!({"queue": "q", "prefetch": 0}), "from 1 to 1000"),
        (json!({"queue": "q", "declare": "yes"}), "true or false"),
        (json!({"queue": "q", "url": "http://h"}), "parameter 'url'"),
        (json!({"queue": "q", "deadLetter": "q"}), "another queue"),
        (json!({"queue": "x".repeat(256)}), "at most 255 bytes"),
    ];
    for (params, error) in refused {
        let got = configure(params.clone());
        assert!(
            got.as_ref().is_err_and(|e| e.contains(error)),
            "{params}: {got:?}, expected an error with '{error}'"
        );
    }
    assert!(
        Amqp.configure("get", &Map::new())
            .is_err_and(|e| e.contains("no feed 'get'"))
    );
}

#[test]
fn output_needs_a_routing_key() {
    let params = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(
        output_config(&params(json!({"routingKey": "results"}))).map(Value::Object),
        Ok(
            json!({"url": DEFAULT_URL, "exchange": "", "routingKey": "results", "persistent": true})
        )
    );
    let kept = output_config(&params(json!({"routingKey": "r", "exchange": ""})));
    assert_eq!(kept.clone().and_then(|k| output_config(&k)), kept);
    assert!(output_config(&params(json!({"exchange": "x"}))).is_err());
    assert!(output_config(&params(json!({"routingKey": "k", "exchange": 1}))).is_err());
    assert!(output_config(&params(json!({"routingKey": "k", "queue": "q"}))).is_err());
}

#[test]
fn the_feed_documents_its_parameters() {
    gust_source::testing::assert_documents(&FEEDS[0], &config::Consume::PARAMETERS);
    assert_eq!(Amqp.secrets(), &["url"]);
}
