//! The feed's and the output's parameters: defaults filled in, unknown and malformed ones
//! refused.

use super::*;
use serde_json::json;

fn configure(params: Value) -> Result<Value, String> {
    gust_source::testing::configure(&Mqtt, "subscribe", params)
}

#[test]
fn defaults_are_filled_in() {
    assert_eq!(
        configure(json!({"topic": "sensors/+/temp"})),
        Ok(
            json!({"url": DEFAULT_URL, "topic": "sensors/+/temp", "qos": 1, "tls": false, "version": 3})
        )
    );
    assert_eq!(
        configure(
            json!({"topic": "$share/g/a/#", "url": "mqtts://u:p%40ss@broker.example",
                         "clientId": "gust-1", "qos": 0, "version": 5, "deadLetter": "dead"})
        ),
        Ok(
            json!({"url": "mqtts://u:p%40ss@broker.example", "topic": "$share/g/a/#", "qos": 0,
                  "tls": true, "version": 5, "clientId": "gust-1", "deadLetter": "dead"})
        )
    );
}

#[test]
fn configuration_kept_reads_the_same() {
    let kept =
        configure(json!({"topic": "a", "username": "u", "password": "p"})).unwrap_or_default();
    assert_eq!(configure(kept.clone()), Ok(kept));
}

#[test]
fn the_url_gives_host_port_tls_and_credentials() {
    let read = |url: &str| {
        let params = json!({"topic": "t", "url": url});
        config::Subscribe::read(params.as_object().unwrap_or(&Map::new())).map(|c| c.broker)
    };
    let b = read("mqtt://127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 1883, false));
    let b = read("mqtts://me:p%40ss@h:9000/").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.host.as_str(), b.port, b.tls), ("h", 9000, true));
    assert_eq!(b.credentials(), Some(("me".into(), "p@ss".into())));
    let params = json!({"topic": "t", "url": "mqtt://me:x@h", "username": "you", "password": "y"});
    let given = config::Subscribe::read(params.as_object().unwrap_or(&Map::new()));
    assert_eq!(
        given.map(|c| c.broker.credentials()),
        Ok(Some(("you".into(), "y".into())))
    );
    assert_eq!(b.shown(), "mqtts://h:9000");
    let b = read("tcp://[::1]:1884").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.host.as_str(), b.port), ("::1", 1884));
    assert_eq!(b.shown(), "mqtt://[::1]:1884");
}

#[test]
fn bad_parameters_are_refused() {
    let refused = [
        (
            json!({"topic": "a", "tpoic": "b"}),
            "unknown parameter 'tpoic'",
        ),
        (json!({}), "missing required parameter 'topic'"),
        (json!({"topic": "a/b+/c"}), "whole level"),
        (json!({"topic": "a/#/c"}), "whole level"),
        (json!({"topic": "$share/g"}), "$share/<group>"),
        (json!({"topic": "a", "qos": 2}), "from 0 to 1"),
        (json!({"topic": "a", "version": 4}), "3 (MQTT 3.1.1) or 5"),
        (json!({"topic": "a", "url": "http://h"}), "unknown scheme"),
        (json!({"topic": "a", "url": "mqtt://h:0"}), "bad port"),
        (json!({"topic": "a", "url": "mqtt://h/x"}), "no path"),
        (json!({"topic": "a", "password": "p"}), "needs 'username'"),
        (json!({"topic": "a", "clientId": "a b"}), "without spaces"),
        (json!({"topic": "a", "deadLetter": "d/#"}), "has a wildcard"),
    ];
    for (params, error) in refused {
        let got = configure(params.clone());
        assert!(
            got.as_ref().is_err_and(|e| e.contains(error)),
            "{params}: {got:?}, expected an error with '{error}'"
        );
    }
    let other = Mqtt.configure("poll", &Map::new());
    assert!(other.is_err_and(|e| e.contains("no feed 'poll'")));
}

#[test]
fn output_takes_one_topic() {
    let params = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(
        output_config(&params(json!({"topic": "out/x", "retain": true}))).map(Value::Object),
        Ok(
            json!({"url": DEFAULT_URL, "topic": "out/x", "qos": 1, "retain": true, "tls": false, "version": 3})
        )
    );
    assert!(output_config(&params(json!({"topic": "out/+"}))).is_err());
    assert!(output_config(&params(json!({"topic": "o", "clientId": "c"}))).is_err());
}

#[test]
fn the_feed_documents_its_parameters() {
    gust_source::testing::assert_documents(&FEEDS[0], &config::Subscribe::PARAMETERS);
    assert!(Mqtt.secrets().contains(&"password"));
}
