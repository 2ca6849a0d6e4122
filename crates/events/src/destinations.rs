//! Destinations (decisions 0027 and 0028): where a given-up stream batch and a finished
//! async invocation send Lambda's destination record — `action:NAME` (invoked
//! non-blocking with the record as its parameters), `trigger:NAME` (fired with it) or
//! `subject:SUBJECT` (published on a NATS connection) — and the parts of that record both
//! share.
//!
//! **May not:** retry: a destination that refuses says whether for now or as it is
//! ([`Undelivered`]); its caller decides how long to wait.

use std::time::Duration;

use gust_controller::{Invocation, Wait};
use gust_model::EntityPath;
use gust_source::{Source, SourceError};
use serde_json::{Map, Value, json};

use crate::fire::EventFire;
use crate::{EventError, Events};

/// Where a record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// An action (`action:NAME`), invoked non-blocking.
    Action(String),
    /// A trigger of the namespace (`trigger:NAME`), fired.
    Trigger(String),
    /// A NATS subject (`subject:SUBJECT`), published to.
    Subject(String),
}

impl Destination {
    /// Reads `text`, the value of parameter `field` (named by the error).
    pub(crate) fn parse(text: &str, field: &str) -> Result<Destination, String> {
        let bad = || {
            format!(
                "parameter '{field}' must be action:NAME, trigger:NAME or subject:SUBJECT, not '{text}'"
            )
        };
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        match kind {
            "action" => EntityPath::parse(name, "_")
                .map(|_| Destination::Action(name.to_string()))
                .ok_or_else(|| format!("parameter '{field}': '{name}' is not an action name")),
            "trigger" if !name.contains('/') => Ok(Destination::Trigger(name.to_string())),
            "trigger" => Err(format!(
                "parameter '{field}': '{name}' must be a trigger of the namespace, without a path"
            )),
            "subject" => check_subject(name)
                .map(|()| Destination::Subject(name.to_string()))
                .map_err(|e| format!("parameter '{field}': {e}")),
            _ => Err(bad()),
        }
    }

    pub(crate) fn text(&self) -> String {
        match self {
            Destination::Action(n) => format!("action:{n}"),
            Destination::Trigger(n) => format!("trigger:{n}"),
            Destination::Subject(n) => format!("subject:{n}"),
        }
    }
}

/// Checks the subject of a `subject:` destination: dot-separated non-empty tokens, no
/// wildcards (`*`, `>`), no whitespace, and not NATS's own (`$...`, such as `$JS.API`) or
/// reply subjects (`_INBOX...`).
pub(crate) fn check_subject(subject: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("subject '{subject}' {why}"));
    if subject.starts_with('$') || subject.starts_with("_INBOX") {
        return bad("is reserved by NATS ($... and _INBOX...)");
    }
    if subject
        .chars()
        .any(|c| c.is_whitespace() || c == '*' || c == '>')
    {
        return bad("must have no wildcards (* or >) and no whitespace");
    }
    if subject.split('.').any(str::is_empty) {
        return bad("must be dot-separated non-empty tokens");
    }
    Ok(())
}

/// The subject an async delivery's `subject:S` of namespace `ns` is published to:
/// `<root>.<ns>.<S>`, where `root` is `<cluster>.destinations` (a subtree no Gust component
/// consumes). The namespace is one token: its `.` and ` ` are written `%2E` and `%20` (a
/// namespace has no `%`), so no two namespaces share a subtree.
pub(crate) fn confined_subject(root: &str, ns: &str, subject: &str) -> String {
    let ns = ns.replace('.', "%2E").replace(' ', "%20");
    format!("{root}.{ns}.{subject}")
}

/// The connection parameters a `subject:` destination publishes with, of a source's
/// configuration (a stream's, less what names the stream).
const CONNECTION: [&str; 6] = ["url", "user", "username", "password", "token", "tls"];

/// A connection `subject:` destinations publish on: a source that can publish (NATS), the
/// parameters of its connection and, on a connection the tenant did not choose (the
/// cluster's bus), the subtree its records are confined to ([`confined_subject`]).
#[derive(Clone, Copy)]
pub(crate) struct Publisher<'a> {
    pub source: &'a dyn Source,
    pub config: &'a Map<String, Value>,
    pub root: Option<&'a str>,
}

/// The output configuration of a `subject:` destination (parameter `field`) on the
/// connection of `config`.
pub(crate) fn subject_output(
    source: &dyn Source,
    config: &Map<String, Value>,
    subject: &str,
    field: &str,
) -> Result<Map<String, Value>, String> {
    let mut params: Map<String, Value> = config
        .iter()
        .filter(|(k, _)| CONNECTION.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.insert("subject".into(), json!(subject));
    source
        .configure_output(&params)
        .map_err(|e| {
            format!(
                "parameter '{field}': the {} source cannot publish to subject '{subject}' ({e}); subject: is for NATS",
                source.package()
            )
        })
}

/// Why a destination did not take a record.
pub(crate) enum Undelivered {
    /// For now (throttled, the platform or the broker cannot take it): to wait for.
    Later(String),
    /// As it is (a missing action or trigger): to try a few times, then give up.
    Never(String),
}

impl Undelivered {
    pub(crate) fn of(e: EventError) -> Undelivered {
        if e.is_throttled() || e.is_host_failure() {
            Undelivered::Later(e.to_string())
        } else {
            Undelivered::Never(e.to_string())
        }
    }
}

/// Lambda's destination record with what every kind has: `version`, `timestamp` (now) and
/// `requestContext`; the caller adds `responseContext` and its own parts.
pub(crate) fn record(
    request_id: Option<&str>,
    function_arn: &str,
    condition: &str,
    invoked: u32,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("version".into(), json!("1.0"));
    out.insert(
        "timestamp".into(),
        json!(rfc3339(gust_model::time::now_ms())),
    );
    out.insert(
        "requestContext".into(),
        json!({
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoked,
        }),
    );
    out
}

/// `ms` (since the epoch) as an RFC 3339 UTC timestamp.
pub(crate) fn rfc3339(ms: u64) -> String {
    gust_model::time::iso8601(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

impl Events {
    /// Hands `record` to `destination` of namespace `ns`. `key` identifies this record
    /// (a trigger fired twice with it fires once); `activation_id`, if given, is the id of
    /// the destination action's activation, which is invoked only if no activation of that
    /// id was accepted before, and the `Nats-Msg-Id` a subject is published with. `publisher` is the connection `subject:` publishes on (none:
    /// refused).
    pub(crate) async fn send_to(
        &self,
        ns: &str,
        destination: &Destination,
        record: &Value,
        key: &str,
        activation_id: Option<String>,
        publisher: Option<Publisher<'_>>,
    ) -> Result<(), Undelivered> {
        let payload = record.as_object().cloned().unwrap_or_default();
        match destination {
            Destination::Action(name) => {
                let core = &self.core;
                let who = core
                    .owner(ns)
                    .await
                    .map_err(|e| Undelivered::of(e.into()))?
                    .ok_or_else(|| Undelivered::Never("the namespace is gone".into()))?;
                if let Some(id) = &activation_id
                    && self
                        .store
                        .is_accepted(ns, id)
                        .await
                        .map_err(|e| Undelivered::of(e.into()))?
                {
                    return Ok(());
                }
                let path = EntityPath::parse(name, ns)
                    .ok_or_else(|| Undelivered::Never(format!("'{name}' is not an action name")))?;
                let resolved = core
                    .resolve(&who, path.namespace(), &path.inner())
                    .await
                    .map_err(|e| Undelivered::of(e.into()))?;
                core.invoke(Invocation {
                    caller: &who,
                    action: &resolved,
                    params: payload,
                    wait: Wait::No,
                    cause: None,
                    secrets: Vec::new(),
                    activation_id,
                    trace: None,
                })
                .await
                .map(|_| ())
                .map_err(|e| Undelivered::of(e.into()))
            }
            Destination::Trigger(name) => self
                .fire_event(
                    ns,
                    name,
                    EventFire {
                        payload,
                        key,
                        count: true,
                        trace: None,
                    },
                )
                .await
                .map(|_| ())
                .map_err(Undelivered::of),
            Destination::Subject(subject) => {
                let Some(Publisher {
                    source,
                    config,
                    root,
                }) = publisher
                else {
                    return Err(Undelivered::Never(format!(
                        "no NATS connection to publish to subject '{subject}' on"
                    )));
                };
                let wire = match root {
                    Some(root) => confined_subject(root, ns, subject),
                    None => subject.clone(),
                };
                let mut output = subject_output(source, config, &wire, "destination")
                    .map_err(Undelivered::Never)?;
                // A record published twice (a crash between the publish and the row's end)
                // is stored once by a JetStream stream within its duplicate window.
                if let Some(id) = &activation_id {
                    output.insert("msgId".into(), json!(id));
                }
                source.publish(&output, record).await.map_err(|e| match e {
                    SourceError::Connection(e) => Undelivered::Later(e),
                    SourceError::Config(e) => Undelivered::Never(e),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_read_and_written_back() {
        for text in ["action:a", "action:pkg/a", "trigger:t", "subject:s.x"] {
            let d = Destination::parse(text, "onFailure").unwrap();
            assert_eq!(d.text(), text);
        }
        for bad in ["queue:x", "action:", "trigger:/a/b", "nothing"] {
            let e = Destination::parse(bad, "onSuccess").unwrap_err();
            assert!(e.contains("'onSuccess'"), "{bad}: {e}");
        }
    }

    #[test]
    fn subjects_of_nats_itself_and_wildcards_are_refused() {
        for bad in [
            "subject:$JS.API.STREAM.DELETE.GUST_INVOKE",
            "subject:$SYS.REQ.SERVER.PING",
            "subject:_INBOX.abc",
            "subject:orders.*",
            "subject:orders.>",
            "subject:>",
            "subject:a b",
            "subject:a..b",
            "subject:.a",
            "subject:a.",
        ] {
            let e = Destination::parse(bad, "onFailure").unwrap_err();
            assert!(e.contains("'onFailure'"), "{bad}: {e}");
        }
        assert!(Destination::parse("subject:orders.failed-1", "onFailure").is_ok());
    }

    #[test]
    fn a_subject_is_confined_to_its_namespace() {
        assert_eq!(
            confined_subject("c1.destinations", "guest", "orders.failed"),
            "c1.destinations.guest.orders.failed"
        );
        // A namespace's dots do not reach into another namespace's subtree.
        assert_eq!(
            confined_subject("c1.destinations", "a.b", "c"),
            "c1.destinations.a%2Eb.c"
        );
        assert_ne!(
            confined_subject("c1.destinations", "a.b", "c"),
            confined_subject("c1.destinations", "a", "b.c")
        );
        assert_eq!(
            confined_subject("c1.destinations", "my ns", "x"),
            "c1.destinations.my%20ns.x"
        );
    }

    #[test]
    fn a_record_says_what_and_how_often() {
        let r = record(Some("abc"), "/ns/a", "RetriesExhausted", 3);
        assert_eq!(r["version"], "1.0");
        assert_eq!(
            r["requestContext"],
            json!({"requestId": "abc", "functionArn": "/ns/a", "condition": "RetriesExhausted", "approximateInvokeCount": 3})
        );
        assert!(r["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
