//! The MQTT source against a real broker: run when `GUST_TEST_MQTT_URL` is set
//! (`mqtt://127.0.0.1:1883`), each test on topics of its own; skipped, and said so,
//! otherwise.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gust_source::testing::{TestSink, config, server_url, start, wait_until};
use gust_source::{Source, SourceError};
use gust_source_mqtt::{Mqtt, output_config};
use serde_json::{Value, json};

fn url() -> Option<String> {
    server_url("GUST_TEST_MQTT_URL")
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn publish(url: &str, topic: &str, body: Value) {
    let output = output_config(&config(json!({"url": url, "topic": topic}))).unwrap();
    Mqtt.publish(&output, &body).await.unwrap();
}

#[tokio::test]
async fn a_message_fires_with_its_topic_and_body() {
    let Some(url) = url() else { return };
    let base = format!("gust-test/{}", unique());
    let sink = TestSink::new();
    let task = start(
        Mqtt,
        "subscribe",
        config(json!({"url": url, "topic": format!("{base}/#")})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);
    publish(&url, &format!("{base}/a"), json!({"t": 21.5})).await;
    publish(&url, &format!("{base}/b"), json!("text")).await;
    assert!(wait_until(|| sink.events().len() == 2).await);
    let events = sink.events();
    assert_eq!(events[0].key, None);
    assert_eq!(
        Value::Object(events[0].payload.clone()),
        json!({"topic": format!("{base}/a"), "qos": 1, "retain": false, "data": {"t": 21.5}})
    );
    assert_eq!(events[1].payload["data"], json!("text"));
    task.abort();
}

#[tokio::test]
async fn a_message_not_yet_fired_when_the_run_stops_is_delivered_again_to_the_same_client_id() {
    let Some(url) = url() else { return };
    let id = unique();
    let topic = format!("gust-test/{id}");
    let config = config(json!({"url": url, "topic": topic, "clientId": format!("gust-test-{id}")}));
    let held = TestSink::holding();
    let task = start(Mqtt, "subscribe", config.clone(), held.clone());
    assert!(wait_until(|| held.connected() > 0).await);
    publish(&url, &topic, json!({"n": 1})).await;
    assert!(wait_until(|| held.events().len() == 1).await);
    task.abort();
    let _ = task.await;

    let sink = TestSink::new();
    let task = start(Mqtt, "subscribe", config, sink.clone());
    assert!(wait_until(|| !sink.events().is_empty()).await);
    assert_eq!(sink.events()[0].payload["data"], json!({"n": 1}));
    task.abort();
    let _ = task.await;
    forget_session(&url, &format!("gust-test-{id}")).await;
}

/// Connects as `client_id` with a clean session, which ends the session the broker kept.
async fn forget_session(url: &str, client_id: &str) {
    let host = url.trim_start_matches("mqtt://");
    let (h, p) = host.split_once(':').unwrap_or((host, "1883"));
    let mut options = rumqttc::MqttOptions::new(client_id, h, p.parse().unwrap());
    options.set_clean_session(true);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 10);
    while let Ok(event) = events.poll().await {
        match event {
            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) => {
                client.disconnect().await.unwrap();
            }
            rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect) => break,
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_message_moved_aside_goes_to_the_dead_letter_topic() {
    let Some(url) = url() else { return };
    let topic = format!("gust-test/{}", unique());
    let dead = format!("{topic}/dead");
    let dead_sink = TestSink::new();
    let dead_task = start(
        Mqtt,
        "subscribe",
        config(json!({"url": url, "topic": dead})),
        dead_sink.clone(),
    );
    let sink = TestSink::moving_aside("poison");
    let task = start(
        Mqtt,
        "subscribe",
        config(json!({"url": url, "topic": topic, "deadLetter": dead})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0 && dead_sink.connected() > 0).await);
    publish(&url, &topic, json!("poison")).await;
    assert!(wait_until(|| dead_sink.events().len() == 1).await);
    assert_eq!(dead_sink.events()[0].payload["data"], json!("poison"));
    assert_eq!(sink.moved(), vec!["test says poison".to_string()]);
    task.abort();
    dead_task.abort();
}

#[tokio::test]
async fn mqtt_5_takes_the_message_id_user_property_as_key() {
    let Some(url) = url() else { return };
    let topic = format!("gust-test/{}", unique());
    let sink = TestSink::new();
    let task = start(
        Mqtt,
        "subscribe",
        config(json!({"url": url, "topic": topic, "version": 5})),
        sink.clone(),
    );
    assert!(wait_until(|| sink.connected() > 0).await);

    // A raw MQTT 5 publisher, to set user properties.
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    let host = url.trim_start_matches("mqtt://");
    let (h, p) = host.split_once(':').unwrap_or((host, "1883"));
    let options =
        rumqttc::v5::MqttOptions::new(format!("gust-test-{}", unique()), h, p.parse().unwrap());
    let (client, mut events) = rumqttc::v5::AsyncClient::new(options, 10);
    let properties = PublishProperties {
        user_properties: vec![("message-id".into(), "m-42".into())],
        ..Default::default()
    };
    client
        .publish_with_properties(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            "{\"v\":5}",
            properties,
        )
        .await
        .unwrap();
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    assert!(wait_until(|| sink.events().len() == 1).await);
    let event = sink.events().remove(0);
    assert_eq!(event.key.as_deref(), Some("m-42"));
    assert_eq!(
        Value::Object(event.payload),
        json!({"topic": topic, "qos": 1, "retain": false, "data": {"v": 5},
               "userProperties": {"message-id": "m-42"}})
    );
    poller.abort();
    task.abort();
}

#[tokio::test]
async fn check_connects_and_subscribes_or_says_why_not() {
    let Some(url) = url() else { return };
    let unreachable = config(json!({"url": "mqtt://127.0.0.1:1", "topic": "t"}));
    match Mqtt.check("subscribe", &unreachable).await {
        Err(SourceError::Connection(e)) => assert!(e.contains("mqtt://127.0.0.1:1"), "{e}"),
        other => panic!("{other:?}"),
    }
    // TLS to a plain-text broker: the TLS handshake fails, and says so.
    let plain = url.replacen("mqtt://", "mqtts://", 1);
    match Mqtt
        .check("subscribe", &config(json!({"url": plain, "topic": "t"})))
        .await
    {
        Err(SourceError::Connection(e)) => assert!(e.contains("mqtts://"), "{e}"),
        other => panic!("{other:?}"),
    }
    let fine = config(json!({"url": url, "topic": "gust-test/check/#", "password": null}));
    tokio::time::timeout(Duration::from_secs(20), Mqtt.check("subscribe", &fine))
        .await
        .unwrap()
        .unwrap();
    eprintln!("not checked: a wrong password (the test broker takes anonymous clients)");
}
