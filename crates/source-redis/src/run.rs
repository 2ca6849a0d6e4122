//! Connecting, checking, reading a consumer group and publishing. An entry read is in the
//! group's pending list until XACK: a run dropped before acknowledging leaves it there, and
//! the next run reads this consumer's pending entries first.

use std::time::Duration;

use gust_source::{Delivery, Event, Sink, SourceError, base64_text, put_body};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value};

use crate::config::{Output, Server, Start, Stream};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one XREADGROUP waits for new entries before it is sent again.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries one read takes (the bounded read-ahead).
pub const BATCH: usize = 16;
/// The field that says why an entry was moved aside.
pub const MOVED_ASIDE_FIELD: &str = "gust-moved-aside";
/// Fields whose value is also the payload's `data`, the first present in this order.
pub const DATA_FIELDS: [&str; 3] = ["data", "payload", "message"];

async fn connect(server: &Server) -> Result<MultiplexedConnection, SourceError> {
    // A blocking read answers after at most BLOCK.
    connect_with(server, Some(BLOCK + CONNECT_TIMEOUT)).await
}

/// Connects with [`CONNECT_TIMEOUT`]; a command's answer is awaited at most
/// `response_timeout` (`None`: as long as the caller waits).
pub(crate) async fn connect_with(
    server: &Server,
    response_timeout: Option<Duration>,
) -> Result<MultiplexedConnection, SourceError> {
    let at = server.shown();
    let client = redis::Client::open(server.info.clone())
        .map_err(|e| SourceError::Config(format!("Redis at {at}: {e}")))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(response_timeout);
    tokio::time::timeout(
        CONNECT_TIMEOUT * 2,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| SourceError::Connection(format!("cannot connect to Redis at {at}: no answer")))?
    .map_err(|e| SourceError::Connection(format!("cannot connect to Redis at {at}: {e}")))
}

pub(crate) fn lost(server: &Server, what: &str, e: redis::RedisError) -> SourceError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        SourceError::Connection(format!("Redis at {}: {what}: {e}", server.shown()))
    } else {
        SourceError::Config(format!("Redis at {}: {what}: {e}", server.shown()))
    }
}

/// The type of `key`: `stream`, or `none` when missing.
async fn key_type(
    conn: &mut MultiplexedConnection,
    server: &Server,
    key: &str,
) -> Result<String, SourceError> {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| lost(server, "TYPE", e))
}

pub(crate) async fn must_be_a_stream(
    conn: &mut MultiplexedConnection,
    server: &Server,
    key: &str,
) -> Result<(), SourceError> {
    match key_type(conn, server, key).await?.as_str() {
        "stream" | "none" => Ok(()),
        other => Err(SourceError::Config(format!(
            "the key '{key}' at {} holds a {other}, not a stream",
            server.shown()
        ))),
    }
}

pub async fn check(c: &Stream) -> Result<(), SourceError> {
    let mut conn = connect(&c.server).await?;
    must_be_a_stream(&mut conn, &c.server, &c.stream).await?;
    must_be_a_stream(&mut conn, &c.server, &c.dead_letter).await
}

/// XGROUP CREATE … MKSTREAM; a group that exists is kept as it is.
async fn create_group(conn: &mut MultiplexedConnection, c: &Stream) -> Result<(), SourceError> {
    let start = match c.start {
        Start::New => "$",
        Start::All => "0",
    };
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&c.stream)
        .arg(&c.group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other.map_err(|e| lost(&c.server, "XGROUP CREATE", e)),
    }
}

/// One stream entry; `fields` is `None` for a pending entry deleted from the stream.
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// XREADGROUP from `from` (`0`-based ids: this consumer's pending entries; `>`: new ones,
/// waiting up to [`BLOCK`]).
async fn read(
    conn: &mut MultiplexedConnection,
    c: &Stream,
    from: &str,
) -> Result<Vec<Entry>, SourceError> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&c.group)
        .arg(&c.consumer)
        .arg("COUNT")
        .arg(BATCH);
    if from == ">" {
        cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(&c.stream).arg(from);
    let reply: redis::Value = cmd.query_async(conn).await.map_err(|e| {
        if e.code() == Some("NOGROUP") {
            SourceError::Connection(format!(
                "the group '{}' of stream '{}' at {} is gone (it is created again)",
                c.group,
                c.stream,
                c.server.shown()
            ))
        } else {
            lost(&c.server, "XREADGROUP", e)
        }
    })?;
    entries(reply).map_err(|why| {
        SourceError::Connection(format!("an XREADGROUP answer not understood: {why}"))
    })
}

/// `[[stream, [[id, [field, value, …]], …]]]` (RESP2) or a map of stream to entries (RESP3);
/// nil when nothing came.
pub(crate) fn entries(reply: redis::Value) -> Result<Vec<Entry>, String> {
    use redis::Value as V;
    let streams: Vec<V> = match reply {
        V::Nil => return Ok(Vec::new()),
        V::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                V::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        V::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(format!("{other:?}")),
    };
    let mut out = Vec::new();
    for stream in streams {
        let V::Array(list) = stream else {
            return Err("entries are not a list".into());
        };
        for entry in list {
            let V::Array(mut parts) = entry else {
                return Err("an entry is not a list".into());
            };
            if parts.len() != 2 {
                return Err("an entry is not [id, fields]".into());
            }
            let fields = parts.pop();
            let id = match parts.pop() {
                Some(V::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
                Some(V::SimpleString(s)) => s,
                _ => return Err("an entry without an id".into()),
            };
            let fields = match fields {
                Some(V::Nil) | None => None,
                Some(V::Array(flat)) => {
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((bytes(k)?, bytes(v)?));
                    }
                    Some(pairs)
                }
                Some(V::Map(map)) => Some(
                    map.into_iter()
                        .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
                        .collect::<Result<_, String>>()?,
                ),
                Some(other) => return Err(format!("fields {other:?}")),
            };
            out.push(Entry { id, fields });
        }
    }
    Ok(out)
}

fn bytes(v: redis::Value) -> Result<Vec<u8>, String> {
    match v {
        redis::Value::BulkString(b) => Ok(b),
        redis::Value::SimpleString(s) => Ok(s.into_bytes()),
        redis::Value::Int(n) => Ok(n.to_string().into_bytes()),
        other => Err(format!("a field {other:?}")),
    }
}

pub async fn stream(c: &Stream, sink: &dyn Sink) -> Result<(), SourceError> {
    let mut conn = connect(&c.server).await?;
    must_be_a_stream(&mut conn, &c.server, &c.stream).await?;
    create_group(&mut conn, c).await?;
    sink.connected(&format!(
        "reading stream {} as {} of group {} at {}",
        c.stream,
        c.consumer,
        c.group,
        c.server.shown()
    ));
    // This consumer's pending entries first: read before a stop, never acknowledged.
    let mut pending_from = "0".to_string();
    loop {
        let batch = read(&mut conn, c, &pending_from).await?;
        let Some(last) = batch.last() else { break };
        pending_from = last.id.clone();
        for entry in batch {
            handle(&mut conn, c, entry, sink).await?;
        }
    }
    loop {
        for entry in read(&mut conn, c, ">").await? {
            handle(&mut conn, c, entry, sink).await?;
        }
    }
}

async fn handle(
    conn: &mut MultiplexedConnection,
    c: &Stream,
    entry: Entry,
    sink: &dyn Sink,
) -> Result<(), SourceError> {
    let Some(fields) = entry.fields else {
        // Deleted (or trimmed away) after it was read: nothing left to fire.
        tracing::warn!(
            "Redis stream {}: pending entry {} no longer exists; acknowledged",
            c.stream,
            entry.id
        );
        return ack(conn, c, &entry.id).await;
    };
    let event = Event {
        key: Some(format!("{}:{}", c.stream, entry.id)),
        payload: payload(&c.stream, &entry.id, &fields),
    };
    match sink.deliver(event).await {
        Delivery::Accepted => ack(conn, c, &entry.id).await,
        Delivery::MoveAside(why) => {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&c.dead_letter).arg("*");
            for (k, v) in &fields {
                cmd.arg(k.as_slice()).arg(v.as_slice());
            }
            cmd.arg(MOVED_ASIDE_FIELD).arg(&why);
            cmd.arg("gust-stream")
                .arg(&c.stream)
                .arg("gust-id")
                .arg(&entry.id);
            let _: String = cmd
                .query_async(conn)
                .await
                .map_err(|e| lost(&c.server, "XADD to the dead-letter stream", e))?;
            ack(conn, c, &entry.id).await?;
            sink.moved_aside(&why);
            Ok(())
        }
    }
}

async fn ack(conn: &mut MultiplexedConnection, c: &Stream, id: &str) -> Result<(), SourceError> {
    let _: i64 = redis::cmd("XACK")
        .arg(&c.stream)
        .arg(&c.group)
        .arg(id)
        .query_async(conn)
        .await
        .map_err(|e| lost(&c.server, "XACK", e))?;
    Ok(())
}

/// XADD `stream` * data <JSON>.
pub async fn publish(o: &Output, json: &str) -> Result<(), SourceError> {
    let mut conn = connect(&o.server).await?;
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&o.stream);
    if let Some(n) = o.max_len {
        cmd.arg("MAXLEN").arg("~").arg(n);
    }
    cmd.arg("*").arg("data").arg(json);
    let _: String = cmd
        .query_async(&mut conn)
        .await
        .map_err(|e| lost(&o.server, &format!("XADD to '{}'", o.stream), e))?;
    Ok(())
}

/// `{stream, id, fields: {name: text}, fields_base64?: {name: base64}, data | data_base64?}`.
pub(crate) fn payload(stream: &str, id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("stream".into(), stream.into());
    payload.insert("id".into(), id.into());
    let mut text = Map::new();
    let mut binary = Map::new();
    for (k, v) in fields {
        let name = String::from_utf8_lossy(k).into_owned();
        match std::str::from_utf8(v) {
            Ok(s) => text.insert(name, s.into()),
            Err(_) => binary.insert(name, base64_text(v).into()),
        };
    }
    payload.insert("fields".into(), Value::Object(text));
    if !binary.is_empty() {
        payload.insert("fields_base64".into(), Value::Object(binary));
    }
    let data = DATA_FIELDS
        .iter()
        .find_map(|name| fields.iter().find(|(k, _)| k.as_slice() == name.as_bytes()));
    if let Some((_, v)) = data {
        put_body(&mut payload, v);
    }
    payload
}
