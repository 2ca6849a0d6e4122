//! One face for rumqttc's MQTT 3.1.1 and MQTT 5 clients: connect, subscribe, publish,
//! acknowledge, and the event loop's packets that the source cares about.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gust_source::SourceError;
use rumqttc::v5::mqttbytes::v5 as m5;
use rumqttc::{TlsConfiguration, Transport};

use crate::config::{Broker, Version};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long a session kept for a fixed client id outlives its connection (MQTT 5).
const SESSION_EXPIRY_S: u32 = 7 * 24 * 3600;
/// Requests (acknowledgements, publishes) queued for the event loop.
const REQUESTS: usize = 16;
/// QoS 1 messages the broker may send before this client acknowledged them (MQTT 5's
/// receive maximum; an MQTT 3.1.1 broker applies its own in-flight limit).
pub const RECEIVE_MAXIMUM: u16 = 16;

pub enum Client {
    V3(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub enum EventLoop {
    V3(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// A message received, with what is needed to acknowledge it.
pub struct Message {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub payload: Bytes,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<(String, String)>,
    pub content_type: Option<String>,
    handle: Handle,
}

enum Handle {
    V3(rumqttc::Publish),
    V5(Box<m5::Publish>),
}

/// The event loop's packets that matter here.
pub enum Packet {
    Message(Message),
    /// The subscription's answer: granted, or refused with why.
    SubAck(Result<(), String>),
    /// The broker has a QoS 1 message this client published.
    PubAck,
    /// A QoS 0 publish was written out.
    Sent,
    /// The DISCONNECT was written out.
    Disconnected,
    Other,
}

/// A client and its event loop; nothing is sent before the event loop is polled.
pub fn new(
    broker: &Broker,
    client_id: String,
    keep_session: bool,
) -> Result<(Client, EventLoop), SourceError> {
    let transport = if broker.tls {
        Transport::tls_with_config(TlsConfiguration::Rustls(tls_config()?))
    } else {
        Transport::tcp()
    };
    Ok(match broker.version {
        Version::V3 => {
            let mut o = rumqttc::MqttOptions::new(client_id, broker.host.clone(), broker.port);
            o.set_keep_alive(KEEP_ALIVE)
                .set_clean_session(!keep_session)
                .set_manual_acks(true)
                .set_transport(transport);
            if let Some((user, password)) = broker.credentials() {
                o.set_credentials(user, password);
            }
            let (client, mut events) = rumqttc::AsyncClient::new(o, REQUESTS);
            events
                .network_options
                .set_connection_timeout(CONNECT_TIMEOUT.as_secs());
            (Client::V3(client), EventLoop::V3(Box::new(events)))
        }
        Version::V5 => {
            let mut o = rumqttc::v5::MqttOptions::new(client_id, broker.host.clone(), broker.port);
            o.set_keep_alive(KEEP_ALIVE)
                .set_clean_start(!keep_session)
                .set_manual_acks(true)
                .set_receive_maximum(Some(RECEIVE_MAXIMUM))
                .set_connection_timeout(CONNECT_TIMEOUT.as_secs())
                .set_transport(transport);
            if keep_session {
                o.set_session_expiry_interval(Some(SESSION_EXPIRY_S));
            }
            if let Some((user, password)) = broker.credentials() {
                o.set_credentials(user, password);
            }
            let (client, events) = rumqttc::v5::AsyncClient::new(o, REQUESTS);
            (Client::V5(client), EventLoop::V5(Box::new(events)))
        }
    })
}

/// TLS with the system's root certificates, through rustls and ring.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, SourceError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate the store cannot take is left out, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no root certificates found on this host for TLS".to_string());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(SourceError::Connection)
}

fn qos(q: u8) -> (rumqttc::QoS, rumqttc::v5::mqttbytes::QoS) {
    match q {
        0 => (
            rumqttc::QoS::AtMostOnce,
            rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        ),
        _ => (
            rumqttc::QoS::AtLeastOnce,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        ),
    }
}

fn closed(e: impl std::fmt::Display) -> SourceError {
    SourceError::Connection(format!("the MQTT client stopped: {e}"))
}

impl Client {
    pub async fn subscribe(&self, topic: &str, q: u8) -> Result<(), SourceError> {
        match self {
            Client::V3(c) => c.subscribe(topic, qos(q).0).await.map_err(closed),
            Client::V5(c) => c.subscribe(topic, qos(q).1).await.map_err(closed),
        }
    }

    /// Queues a publish; the event loop sends it. `note` is an MQTT 5 user property.
    pub async fn publish(
        &self,
        topic: &str,
        q: u8,
        retain: bool,
        payload: Bytes,
        note: Option<(&str, &str)>,
    ) -> Result<(), SourceError> {
        match self {
            Client::V3(c) => c
                .publish_bytes(topic, qos(q).0, retain, payload)
                .await
                .map_err(closed),
            Client::V5(c) => {
                let properties = m5::PublishProperties {
                    user_properties: note
                        .map(|(k, v)| vec![(k.to_string(), v.to_string())])
                        .unwrap_or_default(),
                    ..Default::default()
                };
                c.publish_bytes_with_properties(topic, qos(q).1, retain, payload, properties)
                    .await
                    .map_err(closed)
            }
        }
    }

    /// Acknowledges a QoS 1 message (nothing for QoS 0).
    pub async fn ack(&self, message: &Message) -> Result<(), SourceError> {
        match (self, &message.handle) {
            (Client::V3(c), Handle::V3(p)) => c.ack(p).await.map_err(closed),
            (Client::V5(c), Handle::V5(p)) => c.ack(p).await.map_err(closed),
            _ => Err(SourceError::Connection(
                "a message acknowledged on another protocol version".into(),
            )),
        }
    }

    pub async fn disconnect(&self) {
        // A client whose event loop stopped has nothing to disconnect.
        match self {
            Client::V3(c) => drop(c.disconnect().await),
            Client::V5(c) => drop(c.disconnect().await),
        }
    }
}

impl EventLoop {
    /// The next packet; an error when the connection failed or was lost (this event loop is
    /// then done: a new run connects anew).
    pub async fn poll(&mut self, broker: &Broker) -> Result<Packet, SourceError> {
        use rumqttc::{Event, Outgoing};
        match self {
            EventLoop::V3(events) => match events.poll().await {
                Ok(Event::Incoming(rumqttc::Packet::Publish(p))) => Ok(Packet::Message(Message {
                    topic: p.topic.clone(),
                    qos: p.qos as u8,
                    retain: p.retain,
                    payload: p.payload.clone(),
                    user_properties: Vec::new(),
                    content_type: None,
                    handle: Handle::V3(p),
                })),
                Ok(Event::Incoming(rumqttc::Packet::SubAck(ack))) => {
                    Ok(Packet::SubAck(match ack.return_codes.as_slice() {
                        [rumqttc::SubscribeReasonCode::Success(_)] => Ok(()),
                        other => Err(format!("the broker refused the subscription ({other:?})")),
                    }))
                }
                Ok(Event::Incoming(rumqttc::Packet::PubAck(_))) => Ok(Packet::PubAck),
                Ok(Event::Outgoing(Outgoing::Publish(0))) => Ok(Packet::Sent),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => Ok(Packet::Disconnected),
                Ok(_) => Ok(Packet::Other),
                Err(e) => Err(lost_v3(broker, e)),
            },
            EventLoop::V5(events) => match events.poll().await {
                Ok(rumqttc::v5::Event::Incoming(m5::Packet::Publish(p))) => {
                    let (user_properties, content_type) = match &p.properties {
                        Some(props) => (props.user_properties.clone(), props.content_type.clone()),
                        None => (Vec::new(), None),
                    };
                    Ok(Packet::Message(Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        qos: p.qos as u8,
                        retain: p.retain,
                        payload: p.payload.clone(),
                        user_properties,
                        content_type,
                        handle: Handle::V5(Box::new(p)),
                    }))
                }
                Ok(rumqttc::v5::Event::Incoming(m5::Packet::SubAck(ack))) => {
                    Ok(Packet::SubAck(match ack.return_codes.as_slice() {
                        [m5::SubscribeReasonCode::Success(_)] => Ok(()),
                        other => Err(format!("the broker refused the subscription ({other:?})")),
                    }))
                }
                Ok(rumqttc::v5::Event::Incoming(m5::Packet::PubAck(_))) => Ok(Packet::PubAck),
                Ok(rumqttc::v5::Event::Outgoing(Outgoing::Publish(0))) => Ok(Packet::Sent),
                Ok(rumqttc::v5::Event::Outgoing(Outgoing::Disconnect)) => Ok(Packet::Disconnected),
                Ok(_) => Ok(Packet::Other),
                Err(e) => Err(lost_v5(broker, e)),
            },
        }
    }
}

fn lost_v3(broker: &Broker, e: rumqttc::ConnectionError) -> SourceError {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    let at = broker.shown();
    SourceError::Connection(match e {
        E::ConnectionRefused(C::BadUserNamePassword) => {
            format!("the MQTT broker at {at} refused the user name or password")
        }
        E::ConnectionRefused(C::NotAuthorized) => {
            format!("the MQTT broker at {at} refused: not authorized")
        }
        E::ConnectionRefused(code) => format!("the MQTT broker at {at} refused: {code:?}"),
        E::NetworkTimeout => format!(
            "cannot connect to the MQTT broker at {at}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ),
        E::Io(e) => format!("the connection to the MQTT broker at {at} failed: {e}"),
        E::Tls(e) => format!("TLS with the MQTT broker at {at} failed: {e}"),
        other => format!("the connection to the MQTT broker at {at} was lost: {other}"),
    })
}

fn lost_v5(broker: &Broker, e: rumqttc::v5::ConnectionError) -> SourceError {
    use m5::ConnectReturnCode as C;
    use rumqttc::v5::ConnectionError as E;
    let at = broker.shown();
    SourceError::Connection(match e {
        E::ConnectionRefused(C::BadUserNamePassword) => {
            format!("the MQTT broker at {at} refused the user name or password")
        }
        E::ConnectionRefused(C::NotAuthorized) => {
            format!("the MQTT broker at {at} refused: not authorized")
        }
        E::ConnectionRefused(code) => format!("the MQTT broker at {at} refused: {code:?}"),
        E::Timeout(_) => format!(
            "cannot connect to the MQTT broker at {at}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ),
        E::Io(e) => format!("the connection to the MQTT broker at {at} failed: {e}"),
        E::Tls(e) => format!("TLS with the MQTT broker at {at} failed: {e}"),
        other => format!("the connection to the MQTT broker at {at} was lost: {other}"),
    })
}
