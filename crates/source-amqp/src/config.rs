//! The feed's and the output's parameters, checked and typed: what
//! [`crate::Amqp::configure`] keeps is the map these types write back, and reading that map
//! again gives the same values.

use gust_source::{boolean, integer, put_optional, refuse_unknown, required, string};
use lapin::uri::{AMQPScheme, AMQPUri};
use serde_json::{Map, Value};

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Messages RabbitMQ hands over before the first is acknowledged, unless `prefetch` says.
pub const DEFAULT_PREFETCH: u64 = 16;

/// Where to connect: `url` as given (it carries the credentials) and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub url: String,
    pub uri: AMQPUri,
}

impl Broker {
    fn read(params: &Map<String, Value>) -> Result<Self, String> {
        let url = string(params, "url")?.unwrap_or_else(|| DEFAULT_URL.to_string());
        let uri: AMQPUri = url.parse().map_err(|e| {
            format!("parameter 'url': {e} (use amqp://user:password@host:5672/vhost)")
        })?;
        Ok(Broker { url, uri })
    }

    /// The broker and virtual host without credentials, for messages and logs.
    pub fn shown(&self) -> String {
        let a = &self.uri.authority;
        let scheme = match self.uri.scheme {
            AMQPScheme::AMQP => "amqp",
            AMQPScheme::AMQPS => "amqps",
        };
        format!(
            "{scheme}://{}:{}/{}",
            a.host,
            a.port,
            self.uri.vhost.replace('/', "%2f")
        )
    }
}

/// Feed `consume`.
#[derive(Debug, Clone, PartialEq)]
pub struct Consume {
    pub broker: Broker,
    pub queue: String,
    /// Declare the queue (durable) instead of requiring it.
    pub declare: bool,
    /// Bind the queue to this exchange with `routing_key`.
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub prefetch: u16,
    pub dead_letter: Option<String>,
}

impl Consume {
    pub const PARAMETERS: [&str; 7] = [
        "url",
        "queue",
        "declare",
        "exchange",
        "routingKey",
        "prefetch",
        "deadLetter",
    ];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        let queue = required(params, "queue")?;
        check_name("queue", &queue)?;
        let exchange = string(params, "exchange")?;
        if let Some(e) = &exchange {
            check_name("exchange", e)?;
        }
        let routing_key = string(params, "routingKey")?;
        if routing_key.is_some() && exchange.is_none() {
            return Err("parameter 'routingKey' binds to an 'exchange': give one".into());
        }
        if let Some(k) = &routing_key {
            check_name("routingKey", k)?;
        }
        let dead_letter = string(params, "deadLetter")?;
        if let Some(d) = &dead_letter {
            check_name("deadLetter", d)?;
            if *d == queue {
                return Err("parameter 'deadLetter' must name another queue".into());
            }
        }
        Ok(Consume {
            broker: Broker::read(params)?,
            queue,
            declare: boolean(params, "declare", false)?,
            exchange,
            routing_key,
            prefetch: integer(params, "prefetch", 1..=1000, DEFAULT_PREFETCH)? as u16,
            dead_letter,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("url".into(), self.broker.url.clone().into());
        out.insert("queue".into(), self.queue.clone().into());
        out.insert("declare".into(), self.declare.into());
        put_optional(&mut out, "exchange", &self.exchange);
        put_optional(&mut out, "routingKey", &self.routing_key);
        out.insert("prefetch".into(), self.prefetch.into());
        put_optional(&mut out, "deadLetter", &self.dead_letter);
        out
    }
}

/// A rule's output: publish to `exchange` (the default exchange when empty) with
/// `routing_key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub broker: Broker,
    pub exchange: String,
    pub routing_key: String,
    /// Delivery mode 2: the broker writes the message to disk (in a durable queue).
    pub persistent: bool,
}

impl Output {
    pub const PARAMETERS: [&str; 4] = ["url", "exchange", "routingKey", "persistent"];

    pub fn read(params: &Map<String, Value>) -> Result<Self, String> {
        refuse_unknown(params, &Self::PARAMETERS)?;
        // "" names the default exchange (a queue's name is its routing key there).
        let exchange = match params.get("exchange") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("parameter 'exchange' must be a string".into()),
        };
        check_name("exchange", &exchange)?;
        let routing_key = required(params, "routingKey")?;
        check_name("routingKey", &routing_key)?;
        Ok(Output {
            broker: Broker::read(params)?,
            exchange,
            routing_key,
            persistent: boolean(params, "persistent", true)?,
        })
    }

    pub fn write(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("url".into(), self.broker.url.clone().into());
        out.insert("exchange".into(), self.exchange.clone().into());
        out.insert("routingKey".into(), self.routing_key.clone().into());
        out.insert("persistent".into(), self.persistent.into());
        out
    }
}

/// A queue, exchange or routing key: an AMQP short string (at most 255 bytes).
fn check_name(name: &str, value: &str) -> Result<(), String> {
    if value.len() > 255 || value.chars().any(char::is_control) {
        return Err(format!(
            "parameter '{name}' must be at most 255 bytes without control characters"
        ));
    }
    Ok(())
}
