//! Messages on the bus. They are serialized to JSON the same way for the in-process bus and
//! for NATS, so the embedded mode is the distributed mode without the network.
//!
//! **API boundary:** these shapes are a wire format between processes of different versions;
//! add optional fields only.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::limits::ActionLimits;
use crate::trace::TraceParent;

/// Run this action once: sent by a controller to an invoker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvocationMessage {
    pub activation_id: String,
    /// Namespace that owns the action.
    pub namespace: String,
    pub action: String,
    pub version: String,
    pub kind: String,
    /// SHA-256 of the code; the invoker's key for its compiled artifact.
    pub code_hash: String,
    /// The entry point of a Node.js or Python action (`exec.main`), if not `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// Namespace of the caller (the record's `subject`).
    pub subject: String,
    /// The function's input, one JSON object: action parameters merged with the request's.
    /// Kept as raw JSON: the invoker hands these bytes to the function unparsed.
    pub params: Box<RawValue>,
    /// `init` parameters, given to the function as environment variables.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Secret parameters, still sealed (decision 0022): the invoker opens them just before
    /// the run and adds them to `params` (or, `init`, to `env`). Never in `params` here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SealedParam>,
    pub limits: ActionLimits,
    /// Whether a client waits for the result; the completion then carries the record.
    pub blocking: bool,
    /// Subject on which the controller that took the request waits for the completion.
    pub reply_to: String,
    /// When the controller accepted the invocation (ms since the epoch).
    pub accepted_at: u64,
    /// The activation id of what caused this invocation (its record's `cause`): see
    /// [`InvocationMessage::cause`] for the typed view.
    #[serde(default)]
    pub cause: Option<String>,
    /// What `cause` is; absent from messages of versions that knew only sequences, which
    /// read as [`CauseKind::Sequence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_kind: Option<CauseKind>,
    /// Sent again from the journal (recovery, or a stale entry swept): an earlier copy may
    /// have run, so the invoker checks for a stored record first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resent: bool,
    /// The trace context of the controller's side of this invocation (decision 0026): its
    /// trace id, and its span as the parent of the run's. Absent from messages of versions
    /// before tracing; a message without one is recorded without a `traceId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
}

/// A secret parameter on its way to a sandbox: its sealed value and the place it was sealed
/// for (the associated data that opens it; see [`secret_place`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedParam {
    pub key: String,
    /// The sealed text (`gust:v1:...`) of the value's JSON.
    pub sealed: String,
    pub place: String,
    /// Given to the function's environment instead of its input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

impl std::fmt::Debug for SealedParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedParam")
            .field("key", &self.key)
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

/// The place a secret parameter is sealed for (its associated data): `kind` is `actions`,
/// `packages` or `triggers`, `entity` the stored name (`pkg/a` for an action in a package).
/// NUL separates the parts, which no name or key contains.
pub fn secret_place(kind: &str, namespace: &str, entity: &str, key: &str) -> String {
    format!("gust-secret\0{kind}\0{namespace}\0{entity}\0{key}")
}

/// The identifying part of an [`InvocationMessage`], read leniently, so an invocation whose
/// message cannot be read whole (corrupt, or from an incompatible version) still ends with a
/// record that says so instead of vanishing.
#[derive(Debug, Clone, Deserialize)]
pub struct InvocationHeader {
    pub activation_id: String,
    pub namespace: String,
    pub action: String,
    pub subject: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub blocking: bool,
    #[serde(default)]
    pub reply_to: String,
    #[serde(default)]
    pub accepted_at: u64,
    /// Read as text, so a malformed value does not make the header unreadable too.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// What caused an invocation that no client made directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CauseKind {
    /// A step of a sequence.
    Sequence,
    /// A step (or the code) of a conductor action's composition.
    Conductor,
    /// An action a rule ran when its trigger fired.
    Trigger,
    /// A step of a durable workflow.
    Workflow,
}

impl CauseKind {
    /// The record's `causedBy` annotation, if this cause has one: OpenWhisk labels the
    /// components of sequences and conductors `sequence` and gives rule-fired activations
    /// none.
    pub fn caused_by(self) -> Option<&'static str> {
        match self {
            CauseKind::Sequence | CauseKind::Conductor => Some("sequence"),
            CauseKind::Trigger => None,
            CauseKind::Workflow => Some("workflow"),
        }
    }
}

/// What caused an invocation, and the activation id of that cause (a sequence's, a trigger's,
/// a workflow run's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub kind: CauseKind,
    pub activation_id: String,
}

impl InvocationMessage {
    /// What caused this invocation, if anything did.
    pub fn cause(&self) -> Option<Cause> {
        Some(Cause {
            kind: self.cause_kind.unwrap_or(CauseKind::Sequence),
            activation_id: self.cause.clone()?,
        })
    }

    /// Records `cause` in both of its wire fields.
    pub fn set_cause(&mut self, cause: Option<Cause>) {
        self.cause_kind = cause.as_ref().map(|c| c.kind);
        self.cause = cause.map(|c| c.activation_id);
    }

    /// The environment a run of this invocation gets: `__OW_*` (the deadline counted from
    /// `start`, ms since the epoch) and then the action's `init` parameters.
    pub fn environment(&self, start: u64) -> Vec<(String, String)> {
        let mut env = vec![
            ("__OW_ACTIVATION_ID".to_string(), self.activation_id.clone()),
            ("__OW_NAMESPACE".to_string(), self.subject.clone()),
            (
                "__OW_ACTION_NAME".to_string(),
                format!("/{}/{}", self.namespace, self.action),
            ),
            ("__OW_ACTION_VERSION".to_string(), self.version.clone()),
            (
                "__OW_DEADLINE".to_string(),
                (start + self.limits.timeout).to_string(),
            ),
        ];
        env.extend(self.env.iter().cloned());
        env
    }
}

impl InvocationHeader {
    /// A message with this header, default limits and `null` parameters: for a record of why
    /// it could not run, never to run (with the trace context, if it parses, so the record
    /// still has its `traceId`).
    pub fn to_message(&self) -> InvocationMessage {
        InvocationMessage {
            activation_id: self.activation_id.clone(),
            namespace: self.namespace.clone(),
            action: self.action.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            code_hash: String::new(),
            main: None,
            subject: self.subject.clone(),
            params: RawValue::NULL.to_owned(),
            env: Vec::new(),
            secrets: Vec::new(),
            limits: ActionLimits::default(),
            blocking: self.blocking,
            reply_to: self.reply_to.clone(),
            accepted_at: self.accepted_at,
            cause: None,
            cause_kind: None,
            resent: false,
            traceparent: self.traceparent.as_deref().and_then(|t| t.parse().ok()),
        }
    }
}

/// The invoker has stored the record: sent back to the controller on `reply_to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionMessage {
    pub activation_id: String,
    pub namespace: String,
    /// The record (an `Activation`), for blocking invocations only and only up to
    /// [`MAX_INLINE_RECORD`] bytes (a bus message has a size limit: NATS's default is 1 MB);
    /// raw JSON, exactly as stored, so it is encoded once and written to the client as it is.
    /// Without it the controller reads the stored record.
    #[serde(default)]
    pub record: Option<Box<RawValue>>,
}

/// Largest record a completion carries inline.
pub const MAX_INLINE_RECORD: usize = 256 * 1024;

/// An invoker's heartbeat, broadcast on the health subject every [`HEARTBEAT_INTERVAL_MS`]:
/// controllers route to the invokers they hear from, by free capacity; invokers adopt the
/// queue of one they stop hearing from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokerHealth {
    pub invoker: String,
    /// Activations it runs at once.
    pub capacity: u64,
    /// Activations it holds now (running or waiting for a sandbox slot).
    pub busy: u64,
    /// It is shutting down: route nothing more to it.
    #[serde(default)]
    pub leaving: bool,
}

/// How often an invoker announces itself.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1000;
/// An invoker not heard from for this long is taken out (three missed heartbeats).
pub const INVOKER_TIMEOUT_MS: u64 = 3 * HEARTBEAT_INTERVAL_MS + HEARTBEAT_INTERVAL_MS / 2;

#[cfg(test)]
mod tests {
    use super::*;

    fn message(extra: &str) -> InvocationMessage {
        serde_json::from_str(&format!(
            r#"{{"activation_id":"a","namespace":"n","action":"x","version":"0.0.1","kind":"wasm",
            "code_hash":"","subject":"n","params":{{}},"limits":{{"timeout":100,"memory":128,
            "logs":0,"concurrency":1}},"blocking":false,"reply_to":"r","accepted_at":0{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn an_unreadable_message_keeps_its_trace_in_its_header() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let wire = format!(
            r#"{{"activation_id":"a","namespace":"n","action":"x","subject":"n","limits":"bad","traceparent":"{tp}"}}"#
        );
        assert!(serde_json::from_str::<InvocationMessage>(&wire).is_err());
        let header: InvocationHeader = serde_json::from_str(&wire).unwrap();
        let msg = header.to_message();
        assert_eq!(msg.traceparent.map(|t| t.to_string()).as_deref(), Some(tp));
        let bad = r#"{"activation_id":"a","namespace":"n","action":"x","subject":"n","traceparent":"00-zz"}"#;
        let header: InvocationHeader = serde_json::from_str(bad).unwrap();
        assert_eq!(header.to_message().traceparent, None);
    }

    #[test]
    fn a_traceparent_travels_as_an_optional_field() {
        let m = message("");
        assert!(
            serde_json::to_value(&m)
                .unwrap()
                .get("traceparent")
                .is_none()
        );
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let m = message(&format!(r#","traceparent":"{tp}""#));
        assert_eq!(m.traceparent.map(|t| t.to_string()).as_deref(), Some(tp));
        assert_eq!(serde_json::to_value(&m).unwrap()["traceparent"], tp);
    }

    #[test]
    fn a_cause_without_its_kind_is_a_sequence() {
        assert_eq!(message("").cause(), None);
        let old = message(r#","cause":"s1""#);
        assert_eq!(
            old.cause(),
            Some(Cause {
                kind: CauseKind::Sequence,
                activation_id: "s1".into()
            })
        );
    }

    #[test]
    fn a_typed_cause_travels_in_two_optional_fields() {
        let mut m = message("");
        m.set_cause(Some(Cause {
            kind: CauseKind::Trigger,
            activation_id: "t1".into(),
        }));
        let wire = serde_json::to_value(&m).unwrap();
        assert_eq!(wire["cause"], "t1");
        assert_eq!(wire["cause_kind"], "trigger");
        let back: InvocationMessage = serde_json::from_value(wire).unwrap();
        assert_eq!(back.cause().unwrap().kind, CauseKind::Trigger);
        m.set_cause(None);
        let wire = serde_json::to_value(&m).unwrap();
        assert!(wire.get("cause_kind").is_none());
    }
}
