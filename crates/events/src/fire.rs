//! Firing a trigger: counted against the namespace's fires per minute, the trigger's
//! parameters merged with the fire's (the payload wins), every active rule's action invoked
//! (non-blocking, caused by the trigger's activation), then the trigger's record stored with
//! one log line per rule.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use gust_controller::{ControllerError, Invocation, InvokeOutcome, Wait};
use gust_model::annotations;
use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use gust_model::record::annotation;
use gust_model::time::now_ms;
use gust_model::{
    Activation, ActivationResponse, ActivationStatus, Cause, CauseKind, EncodedActivation,
    Identity, Rule, RuleStatus, SealedParam, TraceParent, names, secret_place,
};
use gust_store::Admission;
use gust_telemetry::metrics;
use gust_telemetry::spans;
use serde_json::{Map, Value, json};

use crate::timers::{derived_id, hashed_ms};
use crate::triggers::check_name;
use crate::{EventError, Events, Target, lock};

/// One fire of a trigger.
#[derive(Debug)]
pub(crate) struct Firing {
    /// What the actions get on top of the trigger's parameters (a later key wins).
    pub args: Map<String, Value>,
    /// The trigger record's result.
    pub payload: Map<String, Value>,
    /// The trigger's activation id.
    pub id: String,
    /// `id` may have a record already (a tick fired again): that one is kept.
    pub again: bool,
    /// Rules not to run this time, by name: an earlier fire's activation of their action (its
    /// id) is still running, and how many fires they have skipped so.
    pub busy: HashMap<String, (String, u64)>,
    /// What this fire is one of (a timer's tick, a source's message), if it has an identity.
    pub fixed: Option<Fixed>,
    /// The trace context it comes with (a request's `traceparent`); `None` starts a trace.
    pub trace: Option<TraceParent>,
}

/// The identity of a fire that may happen more than once (a timer's tick, a message
/// delivered again): its rules' actions get ids derived from it.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    /// The time part of the derived ids.
    pub ms: u64,
    /// What the ids are derived from (with each rule's name).
    pub seed: String,
    /// It may have been fired before (a crash mid-fire, a retry): rules whose invocation was
    /// already accepted are not run again.
    pub refire: bool,
    /// A rule's invocation refused for now (the namespace throttled) fails the fire, to be
    /// fired again later, instead of being logged as failed: a source's back-pressure.
    pub patient: bool,
    /// A rule's invocation the platform could not take fails the fire, to be fired again
    /// (the invocations it did make are not made twice); otherwise it is logged as failed.
    pub retry_host: bool,
}

impl Fixed {
    /// The activation id of the action `rule` starts for this fire.
    fn rule_id(&self, rule: &str) -> String {
        derived_id(self.ms, &format!("{}\0{rule}", self.seed))
    }
}

/// What [`Events::fire_with`] did: the fire, and the activation each rule started.
#[derive(Debug)]
pub(crate) struct Report {
    pub fired: Fired,
    /// (rule name, its action's activation id) of every rule that ran.
    pub started: Vec<(String, String)>,
}

/// One rule's invocation of its action in a fire.
struct RuleRun {
    params: Map<String, Value>,
    /// The trigger's secret parameters, sealed.
    secrets: Vec<SealedParam>,
    cause: Cause,
    /// The id to give it (a timer's tick), or a new one.
    activation_id: Option<String>,
    /// The fire's span, the parent of the invocation's.
    trace: TraceParent,
}

/// Why a rule did not start its action: OpenWhisk's status code 1 (the caller's error) or 3
/// (the platform's), and its message.
#[derive(Debug)]
enum Refusal {
    Caller(String),
    /// The namespace is throttled: the caller's to retry later.
    Throttled(String),
    Host(String),
}

impl Refusal {
    fn code(&self) -> u8 {
        match self {
            Refusal::Caller(_) | Refusal::Throttled(_) => 1,
            Refusal::Host(_) => 3,
        }
    }

    fn message(self) -> String {
        match self {
            Refusal::Caller(m) | Refusal::Throttled(m) | Refusal::Host(m) => m,
        }
    }
}

/// The trigger's record holds a fire's payload two levels down: it must stay readable.
fn check_depth(payload: &Map<String, Value>) -> Result<(), EventError> {
    if payload.values().any(|v| json_depth(v) >= MAX_JSON_DEPTH) {
        return Err(ControllerError::malformed(format_args!(
            "the payload nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        ))
        .into());
    }
    Ok(())
}

/// A source's event to fire ([`Events::fire_event`]).
pub(crate) struct EventFire<'a> {
    pub payload: Map<String, Value>,
    /// Its identity: the source's key, or one made up for this message.
    pub key: &'a str,
    /// Count it against the namespace's fires per minute (false: an earlier attempt did).
    pub count: bool,
    /// The trace context it comes with (a webhook request's `traceparent`), if any.
    pub trace: Option<TraceParent>,
}

/// A fire id being fired in this process, while it lives.
struct InFlight<'a> {
    events: &'a Events,
    id: String,
}

impl<'a> InFlight<'a> {
    /// Marks `id` as being fired; `None` if it is already.
    fn enter(events: &'a Events, id: &str) -> Option<Self> {
        lock(&events.firing)
            .insert(id.to_string())
            .then(|| InFlight {
                events,
                id: id.to_string(),
            })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.events.firing).remove(&self.id);
    }
}

/// What a fire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// At least one rule was active: the trigger's activation id.
    Activation(String),
    /// No rule was active: nothing ran and no record was written.
    NoActiveRule,
}

/// The W3C trace context's header, as [`forwarded_headers`] names it.
const TRACEPARENT: &str = "traceparent";

/// Request headers never forwarded in `__ow_headers`: credentials and what carries them.
fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "x-require-whisk-auth"
            | "timeout-access"
    ) || [
        "auth",
        "token",
        "secret",
        "key",
        "signature",
        "password",
        "cert",
        "session",
        "csrf",
        "xsrf",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The headers a fire forwards to its actions in `__ow_headers`: lower-cased, credentials
/// left out.
pub fn forwarded_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Map<String, Value> {
    headers
        .filter(|(k, _)| !is_credential(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.to_string())))
        .collect()
}

/// One fire's log line for `rule`: OpenWhisk's `{rule, action, statusCode, success,
/// activationId | error}`.
fn log_line(rule: &Rule, outcome: Result<String, Refusal>) -> String {
    let mut line = json!({
        "rule": format!("{}/{}", rule.namespace, rule.name),
        "action": format!("{}/{}", rule.action.path, rule.action.name),
    });
    match outcome {
        Ok(id) => {
            line["statusCode"] = json!(0);
            line["success"] = json!(true);
            line["activationId"] = json!(id);
        }
        Err(refusal) => {
            line["statusCode"] = json!(refusal.code());
            line["success"] = json!(false);
            line["error"] = json!(refusal.message());
        }
    }
    line.to_string()
}

/// The `reason` of `gust_throttles_total` for the fires-per-minute limit.
const FIRES_PER_MINUTE: &str = "fires_per_minute";

impl Events {
    /// Fires trigger `name` of namespace `ns` (the caller's own) with `payload` and the
    /// request's `headers` (see [`forwarded_headers`]), whose `traceparent`, if valid, is the
    /// fire's trace context (a malformed one is ignored: a new trace).
    pub async fn fire(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
        payload: Map<String, Value>,
        headers: Map<String, Value>,
    ) -> Result<Fired, EventError> {
        let ns = self.core.authorize(who, ns)?.to_string();
        check_name(name)?;
        check_depth(&payload)?;
        self.count_fire(who).await?;
        let trace = TraceParent::from_header(headers.get(TRACEPARENT).and_then(Value::as_str));
        let mut args = Map::new();
        if !headers.is_empty() {
            args.insert("__ow_headers".into(), Value::Object(headers));
        }
        args.extend(payload.clone());
        let firing = Firing {
            args,
            payload,
            id: names::new_activation_id(),
            again: false,
            busy: HashMap::new(),
            fixed: None,
            trace,
        };
        Ok(self.fire_with(who, &ns, name, firing).await?.fired)
    }

    /// Fires trigger `ns/name` with a source's event, as the namespace. `key` (the event's own, or
    /// one its deliverer keeps across retries) gives the fire an identity: a key fired before
    /// answers with that fire's activation id and runs nothing, and a fire retried after a
    /// partial failure makes only the invocations it had not made. A rule's invocation
    /// refused because the namespace is throttled fails the fire ([`EventError::Throttled`],
    /// for the deliverer to retry) instead of being logged as failed.
    pub(crate) async fn fire_event(
        &self,
        ns: &str,
        name: &str,
        event: EventFire<'_>,
    ) -> Result<Fired, EventError> {
        let EventFire {
            payload,
            key,
            count,
            trace,
        } = event;
        check_depth(&payload)?;
        // A source fires as the namespace that owns the trigger.
        let who = self
            .core
            .owner(ns)
            .await?
            .ok_or(EventError::Core(ControllerError::NotFound))?;
        let seed = format!("{ns}\0{name}\0event\0{key}");
        let ms = hashed_ms(&seed);
        let id = derived_id(ms, &seed);
        // One fire of a key at a time in this process (a delivery sent again while its first
        // copy is being fired waits, as a throttled one does).
        let Some(_flight) = InFlight::enter(self, &id) else {
            return Err(EventError::Throttled(
                "this delivery is being fired already; try again".into(),
            ));
        };
        if self.store.activation(ns, &id).await?.is_some() {
            return Ok(Fired::Activation(id));
        }
        if count {
            self.count_fire(&who).await?;
        }
        let firing = Firing {
            args: payload.clone(),
            payload,
            id,
            again: true,
            busy: HashMap::new(),
            fixed: Some(Fixed {
                ms,
                seed,
                refire: true,
                patient: true,
                retry_host: true,
            }),
            trace,
        };
        Ok(self.fire_with(&who, ns, name, firing).await?.fired)
    }

    /// Fires trigger `ns/name` as `firing` says.
    pub(crate) async fn fire_with(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
        firing: Firing,
    ) -> Result<Report, EventError> {
        let Firing {
            args,
            payload,
            id,
            again,
            busy,
            fixed,
            trace,
        } = firing;
        let target = self.target(ns, name).await?;
        let Some(target) = target else {
            return Err(self
                .missing(ns, name, crate::triggers::Collection::Triggers)
                .await);
        };
        metrics::get().trigger_fired(ns);
        if !target.rules.iter().any(|r| r.status == RuleStatus::Active) {
            return Ok(Report {
                fired: Fired::NoActiveRule,
                started: Vec::new(),
            });
        }
        let start = now_ms();
        // The fire's own span: the parent of every rule's invocation.
        let span = TraceParent::continuing(trace.as_ref());
        // The trigger's parameters, then the fire's: a later key wins. Its secrets stay
        // sealed beside them, for the invoker to open.
        let (secret, plain): (Vec<_>, Vec<_>) =
            target.trigger.parameters.iter().partition(|kv| kv.secret);
        let mut params: Map<String, Value> = plain
            .into_iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let secrets: Vec<SealedParam> = secret
            .into_iter()
            .filter(|kv| !args.contains_key(&kv.key))
            .filter_map(|kv| {
                Some(SealedParam {
                    key: kv.key.clone(),
                    sealed: kv.value.as_str()?.to_string(),
                    place: secret_place(
                        "triggers",
                        &target.trigger.namespace,
                        &target.trigger.name,
                        &kv.key,
                    ),
                    init: kv.init,
                })
            })
            .collect();
        params.extend(args);
        let cause = Cause {
            kind: CauseKind::Trigger,
            activation_id: id.clone(),
        };
        let runs = target.rules.iter().map(|rule| async {
            let derived = fixed.as_ref().map(|f| f.rule_id(&rule.name));
            // Fired again: the invocations its first fire had accepted (journaled, or done)
            // are not made again.
            if let (Some(Fixed { refire: true, .. }), Some(id)) = (&fixed, &derived) {
                match self.store.is_accepted(ns, id).await {
                    Ok(true) => return Ok(id.clone()),
                    Ok(false) => {}
                    // Unknown: invoking again could run it twice; the fire is retried.
                    Err(e) => return Err(Refusal::Host(e.to_string())),
                }
            }
            match busy.get(&rule.name) {
                Some((running, skipped)) => Err(Refusal::Caller(format!(
                    "Rule '{}/{}' did not activate action '{}/{}': its activation {running} of an earlier fire is still running ({skipped} overlapping fires skipped).",
                    rule.namespace, rule.name, rule.action.path, rule.action.name
                ))),
                None => {
                    let started = RuleRun {
                        params: params.clone(),
                        secrets: secrets.clone(),
                        cause: cause.clone(),
                        activation_id: derived,
                        trace: span,
                    };
                    self.run_rule(who, rule, started).await
                }
            }
        });
        let outcomes = join_all(runs).await;
        // A fire with an identity (a timer's tick, a source's message) one of whose
        // invocations the platform could not take is not a fire: it is tried again (the
        // invocations it did make keep their ids and are not made twice) instead of being
        // recorded as done; so is one whose namespace is throttled, when the fire waits.
        if let Some(f) = &fixed {
            let retry = |o: &Result<String, Refusal>| match o {
                Err(Refusal::Host(_)) => f.retry_host,
                Err(Refusal::Throttled(_)) => f.patient,
                _ => false,
            };
            if let Some((_, Err(refusal))) = target
                .rules
                .iter()
                .zip(&outcomes)
                .find(|(r, o)| r.status == RuleStatus::Active && retry(o))
            {
                return Err(match refusal {
                    Refusal::Throttled(m) => EventError::Throttled(m.clone()),
                    Refusal::Host(m) | Refusal::Caller(m) => {
                        ControllerError::Unreachable(m.clone()).into()
                    }
                });
            }
        }
        let started: Vec<(String, String)> = target
            .rules
            .iter()
            .zip(&outcomes)
            .filter_map(|(rule, o)| o.as_ref().ok().map(|id| (rule.name.clone(), id.clone())))
            .collect();
        let outputs: Vec<_> = target
            .rules
            .iter()
            .zip(&outcomes)
            .filter_map(|(rule, o)| Some((o.as_ref().ok()?.clone(), self.output_of(rule)?)))
            .collect();
        let logs = target
            .rules
            .iter()
            .zip(outcomes)
            .map(|(rule, outcome)| log_line(rule, outcome))
            .collect();
        let record = Activation {
            namespace: who.namespace.clone(),
            name: name.to_string(),
            version: target.trigger.version.clone(),
            subject: who.namespace.clone(),
            activation_id: id.clone(),
            start,
            end: start,
            duration: 0,
            status_code: 0,
            response: ActivationResponse::new(ActivationStatus::Success, Value::Object(payload)),
            logs,
            annotations: vec![annotation(
                annotations::TRACE_ID,
                json!(span.trace_id_hex()),
            )],
            publish: false,
            cause: None,
        };
        if spans::enabled() {
            spans::export(spans::Span {
                name: format!("fire {ns}/{name}"),
                kind: spans::Kind::Server,
                context: span,
                parent: trace.map(|t| t.span_id()),
                start: spans::at_ms(start),
                end: std::time::SystemTime::now(),
                attributes: vec![
                    spans::KeyValue::new("faas.invocation_id", id.clone()),
                    spans::KeyValue::new("gust.namespace", ns.to_string()),
                    spans::KeyValue::new("gust.trigger", name.to_string()),
                    spans::KeyValue::new("gust.rules_started", started.len() as i64),
                ],
                error: None,
            });
        }
        let encoded = EncodedActivation::new(&record)
            .map_err(|e| ControllerError::Internal(e.to_string()))?;
        if again || self.core.is_clustered() {
            self.store.put_activation(&encoded).await?;
        } else {
            self.store.put_new_activation(&encoded).await?;
        }
        // Once the fire is done (a failed one is fired again, and publishes then).
        for (id, output) in outputs {
            self.publish_result(ns, &id, output);
        }
        Ok(Report {
            fired: Fired::Activation(id),
            started,
        })
    }

    /// Invokes `rule`'s action (non-blocking) if the rule is active: its activation id, or why
    /// not.
    async fn run_rule(&self, who: &Identity, rule: &Rule, run: RuleRun) -> Result<String, Refusal> {
        let RuleRun {
            params,
            secrets,
            cause,
            activation_id,
            trace,
        } = run;
        if rule.status != RuleStatus::Active {
            return Err(Refusal::Caller(format!(
                "Rule '{}/{}' is inactive, action '{}/{}' was not activated.",
                rule.namespace, rule.name, rule.action.path, rule.action.name
            )));
        }
        let failed = |e: ControllerError| {
            if e.is_host_failure() {
                Refusal::Host(e.to_string())
            } else if e.is_throttled() {
                Refusal::Throttled(e.to_string())
            } else {
                Refusal::Caller(e.to_string())
            }
        };
        let resolved = self
            .core
            .resolve(who, rule.action.namespace(), &rule.action.inner())
            .await
            .map_err(failed)?;
        let inv = Invocation {
            caller: who,
            action: &resolved,
            params,
            wait: Wait::No,
            cause: Some(cause),
            secrets,
            activation_id,
            trace: Some(trace),
        };
        let outcome = self.core.invoke(inv).await.map_err(failed)?;
        metrics::get().rule_invoked(&who.namespace);
        match outcome {
            InvokeOutcome::Accepted(id) | InvokeOutcome::Waiting(id) => Ok(id),
            InvokeOutcome::Completed(record) => {
                let id = serde_json::from_str::<Value>(record.get())
                    .ok()
                    .and_then(|r| r["activationId"].as_str().map(str::to_string))
                    .unwrap_or_default();
                Ok(id)
            }
        }
    }

    /// The trigger `ns/name` and its rules, through a short-lived cache.
    pub(crate) async fn target(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Target>>, EventError> {
        let key = (ns.to_string(), name.to_string());
        self.targets
            .get_or_fetch(&key, async {
                let Some(trigger) = self.store.trigger(ns, name).await? else {
                    return Ok::<_, EventError>(None);
                };
                let rules = self
                    .store
                    .rules_of_trigger(ns, &format!("/{ns}/{name}"))
                    .await?;
                Ok(Some(Target { trigger, rules }))
            })
            .await
    }

    /// Counts a fire of `who`'s namespace against its fires per minute (across the cluster
    /// on a shared store); OpenWhisk's 429 past it.
    pub(crate) async fn count_fire(&self, who: &Identity) -> Result<(), EventError> {
        let allowed = who.limits.fires_per_minute;
        let now = now_ms();
        if self.core.is_clustered() {
            return match self.store.admit_fire(&who.namespace, allowed, now).await? {
                Admission::Admitted => Ok(()),
                Admission::PerMinute { count } | Admission::Concurrent { count } => {
                    metrics::get().throttled(&who.namespace, FIRES_PER_MINUTE);
                    Err(ControllerError::PerMinute { count, allowed }.into())
                }
            };
        }
        let minute = now / 60_000;
        let mut fires = lock(&self.fires);
        let (m, count) = fires.entry(who.namespace.clone()).or_insert((minute, 0));
        if *m != minute {
            *m = minute;
            *count = 0;
        }
        if *count >= allowed {
            metrics::get().throttled(&who.namespace, FIRES_PER_MINUTE);
            return Err(ControllerError::PerMinute {
                count: *count,
                allowed,
            }
            .into());
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_forwarded() {
        let h = forwarded_headers(
            [
                ("Authorization", "Basic x"),
                ("Content-Type", "application/json"),
                ("X-Api-Key", "k"),
                ("X-Functions-Key", "k"),
                ("Ocp-Apim-Subscription-Key", "k"),
                ("X-Client-Cert", "c"),
                ("Cookie", "c"),
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", "sha256=x"),
                ("User-Agent", "curl"),
            ]
            .into_iter(),
        );
        let mut keys: Vec<&str> = h.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["content-type", "user-agent", "x-github-event"]);
    }
}
