//! Activation records as Gust writes them: the fields and annotations every record has, built
//! here once for the invoker's records and for compositions' records alike.

use serde_json::{Value, json};

use crate::annotations;
use crate::{Activation, ActivationResponse, InvocationMessage, KeyValue};

/// An annotation (or parameter) `key: value`.
pub fn annotation(key: &str, value: Value) -> KeyValue {
    KeyValue::new(key, value)
}

/// The record of `msg`'s invocation, run from `start` to `end` with `response`: named as
/// OpenWhisk names it (the action without its package; the `path` annotation has the rest),
/// with `msg`'s cause and the annotations every record carries ([`common_annotations`]), and
/// no logs yet.
pub fn record(
    msg: &InvocationMessage,
    start: u64,
    end: u64,
    response: ActivationResponse,
) -> Activation {
    Activation {
        namespace: msg.subject.clone(),
        name: msg
            .action
            .rsplit_once('/')
            .map_or(msg.action.as_str(), |(_, n)| n)
            .to_string(),
        version: msg.version.clone(),
        subject: msg.subject.clone(),
        activation_id: msg.activation_id.clone(),
        start,
        end,
        duration: end.saturating_sub(start),
        status_code: response.status_code,
        response,
        logs: Vec::new(),
        annotations: common_annotations(msg, start),
        publish: false,
        cause: msg.cause.clone(),
    }
}

/// What every record of `msg` started at `start` is annotated with: `path`, `waitTime`,
/// `kind`, `limits`, `causedBy` when its cause has such a label, and `traceId` when the
/// message carries a trace context.
pub fn common_annotations(msg: &InvocationMessage, start: u64) -> Vec<KeyValue> {
    let mut out = vec![
        annotation(
            annotations::PATH,
            json!(format!("{}/{}", msg.namespace, msg.action)),
        ),
        annotation(
            annotations::WAIT_TIME,
            json!(start.saturating_sub(msg.accepted_at)),
        ),
        annotation(annotations::KIND, json!(msg.kind)),
        annotation(annotations::LIMITS, json!(msg.limits)),
    ];
    if let Some(label) = msg.cause().and_then(|c| c.kind.caused_by()) {
        out.push(annotation(annotations::CAUSED_BY, json!(label)));
    }
    if let Some(trace) = &msg.traceparent {
        out.push(annotation(
            annotations::TRACE_ID,
            json!(trace.trace_id_hex()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Cause, CauseKind};
    use crate::{ActionLimits, ActivationStatus};

    fn message() -> InvocationMessage {
        InvocationMessage {
            activation_id: "id".into(),
            namespace: "owner".into(),
            action: "pkg/act".into(),
            version: "0.0.2".into(),
            kind: "wasm".into(),
            code_hash: String::new(),
            main: None,
            subject: "caller".into(),
            params: serde_json::value::RawValue::NULL.to_owned(),
            env: Vec::new(),
            secrets: Vec::new(),
            limits: ActionLimits::default(),
            blocking: false,
            reply_to: String::new(),
            accepted_at: 100,
            cause: None,
            cause_kind: None,
            resent: false,
            traceparent: None,
        }
    }

    fn keys(r: &Activation) -> Vec<&str> {
        r.annotations.iter().map(|a| a.key.as_str()).collect()
    }

    #[test]
    fn a_record_names_the_action_without_its_package_and_its_path_in_full() {
        let response = ActivationResponse::new(ActivationStatus::Success, json!({}));
        let r = record(&message(), 150, 170, response);
        assert_eq!((r.name.as_str(), r.namespace.as_str()), ("act", "caller"));
        assert_eq!(r.duration, 20);
        assert_eq!(keys(&r), ["path", "waitTime", "kind", "limits"]);
        assert_eq!(r.annotations[0].value, "owner/pkg/act");
        assert_eq!(r.annotations[1].value, 50);
    }

    #[test]
    fn a_traced_message_records_its_trace_id() {
        let response = ActivationResponse::new(ActivationStatus::Success, json!({}));
        let mut msg = message();
        let trace: crate::TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        msg.traceparent = Some(trace);
        let r = record(&msg, 100, 100, response);
        let id = crate::entity::annotation(&r.annotations, annotations::TRACE_ID);
        assert_eq!(
            id.and_then(Value::as_str),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn only_compositions_and_workflows_label_what_they_cause() {
        let response = ActivationResponse::new(ActivationStatus::Success, json!({}));
        for (kind, label) in [
            (CauseKind::Sequence, Some("sequence")),
            (CauseKind::Conductor, Some("sequence")),
            (CauseKind::Trigger, None),
            (CauseKind::Workflow, Some("workflow")),
        ] {
            let mut msg = message();
            msg.set_cause(Some(Cause {
                kind,
                activation_id: "c".into(),
            }));
            let r = record(&msg, 100, 100, response.clone());
            assert_eq!(r.cause.as_deref(), Some("c"));
            let caused_by = crate::entity::annotation(&r.annotations, annotations::CAUSED_BY);
            assert_eq!(caused_by.and_then(Value::as_str), label, "{kind:?}");
        }
    }
}
