//! The system namespace `whisk.system`, readable and invokable by every namespace: the
//! `utils` package (OpenWhisk's echo, cat, sort, head, split, date, namespace, hosturl and
//! smash) and the `alarms` package with its feeds (`alarm`, `once`, `interval`). Created at
//! first start and upgraded with the binary ([`install`]); its actions are built in (kind
//! `builtin`) and run in the controller's process through [`SystemActions`], the
//! controller's composer for them.

use std::sync::Arc;

use async_trait::async_trait;
use gust_controller::{
    Composer, Controller, ControllerError, ExecPut, Invocation, InvokeOutcome, Wait, prepare_input,
};
use gust_model::annotations::FEED;
use gust_model::entity::bump_version;
use gust_model::record::{annotation, record};
use gust_model::time::{iso8601, now_ms};
use gust_model::{
    Action, ActionLimits, ActivationResponse, ActivationStatus, EncodedActivation, Exec, Identity,
    KeyValue, Namespace, NamespaceLimits, Package, TraceParent,
};
use gust_store::{PutMode, Store, StoreError};
use gust_telemetry::{metrics, spans};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::alarms::{FeedKind, feed};
use crate::sources::{self, FeedContext, Sources};

/// The system namespace.
pub const SYSTEM: &str = "whisk.system";
/// The kind of the system namespace's built-in actions.
pub const BUILTIN: &str = "builtin";

/// An action's description and parameters as OpenWhisk's catalog annotates them.
#[derive(Clone)]
struct Entry {
    package: &'static str,
    name: &'static str,
    description: &'static str,
    parameters: &'static str,
    feed: bool,
}

const CATALOG: &[Entry] = &[
    Entry {
        package: "utils",
        name: "echo",
        description: "Returns the input",
        parameters: r#"[{"name":"payload","required":false,"description":"Any JSON entity"}]"#,
        feed: false,
    },
    Entry {
        package: "utils",
        name: "cat",
        description: "Concatenates input into a string",
        parameters: r#"[{"name":"lines","required":true,"type":"array","description":"An array of strings or numbers"}]"#,
        feed: false,
    },
    Entry {
        package: "utils",
        name: "sort",
        description: "Sorts an array",
        parameters: r#"[{"name":"lines","required":true,"type":"array","description":"An array of strings"}]"#,
        feed: false,
    },
    Entry {
        package: "utils",
        name: "head",
        description: "Extract prefix of an array",
        parameters: r#"[{"name":"lines","required":true,"type":"array","description":"An array of strings"},{"name":"num","required":false,"type":"integer","description":"The length of the prefix"}]"#,
        feed: false,
    },
    Entry {
        package: "utils",
        name: "split",
        description: "Split a string into an array",
        parameters: r#"[{"name":"payload","required":true,"description":"A string"},{"name":"separator","required":false,"description":"The character, or the regular expression, to use for splitting the string"}]"#,
        feed: false,
    },
    Entry {
        package: "utils",
        name: "date",
        description: "Current date and time",
        parameters: "[]",
        feed: false,
    },
    Entry {
        package: "utils",
        name: "namespace",
        description: "Returns namespace for the authorization key used to invoke this action",
        parameters: "[]",
        feed: false,
    },
    Entry {
        package: "utils",
        name: "hosturl",
        description: "Returns the URL to activate an action or trigger",
        parameters: r#"[{"name":"web","type":"boolean","description":"True for web actions"},{"name":"ext","type":"string","description":"Extension for web action, one of .html, .http, .json, .text"},{"name":"trigger","type":"boolean","description":"True to construct path for trigger instead of action."},{"name":"path","type":"string","description":"The action name as just <action name> or <package name>/<action name>."}]"#,
        feed: false,
    },
    Entry {
        package: "utils",
        name: "smash",
        description: "Nests all properties under given property",
        parameters: r#"[{"name":"$fieldName","required":true,"type":"string","description":"Name of property to nest object under"}]"#,
        feed: false,
    },
    Entry {
        package: "alarms",
        name: "alarm",
        description: "Fire trigger when alarm occurs",
        parameters: r#"[{"name":"cron","required":true},{"name":"timezone","required":false},{"name":"startDate","required":false},{"name":"stopDate","required":false}]"#,
        feed: true,
    },
    Entry {
        package: "alarms",
        name: "once",
        description: "Fire trigger once when alarm occurs",
        parameters: r#"[{"name":"date","required":true},{"name":"deleteAfterFire","required":false}]"#,
        feed: true,
    },
    Entry {
        package: "alarms",
        name: "interval",
        description: "Fire trigger at specified interval",
        parameters: r#"[{"name":"minutes","required":true},{"name":"startDate","required":false},{"name":"stopDate","required":false}]"#,
        feed: true,
    },
];

const PACKAGES: &[(&str, &str, &str)] = &[
    (
        "utils",
        "Building blocks that format and assemble data",
        "[]",
    ),
    (
        "alarms",
        "Alarms and periodic utility",
        r#"[{"name":"trigger_payload","required":false}]"#,
    ),
];

fn kv(key: &str, value: Value) -> KeyValue {
    annotation(key, value)
}

fn parsed(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// Creates the system namespace and its packages and actions, or brings them up to this
/// binary's definitions. Safe to run from several processes at once: a write that loses a
/// race to another process's identical write is ignored.
pub async fn install(store: &dyn Store, sources: &Sources) -> Result<(), StoreError> {
    if store.namespace(SYSTEM).await?.is_none() {
        let ns = Namespace {
            name: SYSTEM.into(),
            uuid: uuid::Uuid::new_v4().to_string(),
            // Nobody holds the system namespace's key: it is never written through the API.
            key: uuid::Uuid::new_v4().simple().to_string(),
            limits: NamespaceLimits::default(),
        };
        match store.create_namespace(&ns).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    let packages = PACKAGES
        .iter()
        .map(|(n, d, p)| (*n, *d, *p))
        .chain(sources.iter().map(|s| (s.package(), s.description(), "[]")));
    for (name, description, parameters) in packages {
        let wanted = Package {
            namespace: SYSTEM.into(),
            name: (*name).into(),
            version: "0.0.1".into(),
            publish: true,
            binding: None,
            annotations: vec![
                kv("description", json!(description)),
                kv("parameters", parsed(parameters)),
            ],
            parameters: Vec::new(),
            updated: now_ms(),
        };
        let existing = store.package(SYSTEM, name).await?;
        let mode = match &existing {
            None => PutMode::Create,
            Some(e) if e.annotations == wanted.annotations && e.publish => continue,
            Some(e) => PutMode::Replace {
                expected_version: e.version.clone(),
            },
        };
        let version = existing.map_or(wanted.version.clone(), |e| bump_version(&e.version));
        ignore_race(
            store
                .put_package(&Package { version, ..wanted }, mode)
                .await,
        )?;
    }
    let feeds = sources.iter().flat_map(|s| {
        s.feeds().iter().map(|f| Entry {
            package: s.package(),
            name: f.name,
            description: f.description,
            parameters: f.parameters,
            feed: true,
        })
    });
    let entries: Vec<Entry> = CATALOG.iter().map(Entry::clone).chain(feeds).collect();
    for entry in &entries {
        let mut annotations = vec![
            kv("description", json!(entry.description)),
            kv("parameters", parsed(entry.parameters)),
        ];
        if entry.feed {
            annotations.push(kv(FEED, json!(true)));
        }
        annotations.push(kv("exec", json!(BUILTIN)));
        let name = format!("{}/{}", entry.package, entry.name);
        let wanted = Action {
            namespace: SYSTEM.into(),
            name: name.clone(),
            version: "0.0.1".into(),
            publish: true,
            exec: Exec {
                kind: BUILTIN.into(),
                code: None,
                binary: false,
                main: None,
                components: None,
                http: false,
            },
            annotations,
            parameters: Vec::new(),
            limits: ActionLimits::default(),
            updated: now_ms(),
            code_hash: String::new(),
        };
        let existing = store.action(SYSTEM, &name, false).await?;
        let mode = match &existing {
            None => PutMode::Create,
            Some(e) if e.annotations == wanted.annotations && e.exec == wanted.exec => continue,
            Some(e) => PutMode::Replace {
                expected_version: e.version.clone(),
            },
        };
        let version = existing.map_or(wanted.version.clone(), |e| bump_version(&e.version));
        let action = Action { version, ..wanted };
        ignore_race(store.put_action(&action, Some(&[]), mode).await)?;
    }
    Ok(())
}

/// Another process installing at the same time wrote first: its write is the same.
fn ignore_race(r: Result<(), StoreError>) -> Result<(), StoreError> {
    match r {
        Err(StoreError::Conflict) => Ok(()),
        other => other,
    }
}

/// Runs the system namespace's built-in actions, as a controller's composer.
#[derive(Debug)]
pub struct SystemActions {
    /// What `hosturl` names (`http://host:port`).
    api_host: String,
    /// Woken when a feed changes a schedule.
    timers: Arc<Notify>,
    /// The event sources whose feeds are in the catalog.
    sources: Arc<Sources>,
    /// Woken when a feed changes a subscription.
    listeners: Arc<Notify>,
}

impl SystemActions {
    pub fn new(
        api_host: impl Into<String>,
        timers: Arc<Notify>,
        sources: Arc<Sources>,
        listeners: Arc<Notify>,
    ) -> Self {
        SystemActions {
            api_host: api_host.into(),
            timers,
            sources,
            listeners,
        }
    }
}

/// What a built-in action answers: its response and its log lines.
pub(crate) struct Answer {
    pub(crate) response: ActivationResponse,
    pub(crate) logs: Vec<String>,
}

impl Answer {
    pub(crate) fn ok(result: Value) -> Self {
        Answer {
            response: ActivationResponse::new(ActivationStatus::Success, result),
            logs: Vec::new(),
        }
    }

    /// OpenWhisk's application error: the result is `{"error": error}`.
    pub(crate) fn error(error: Value) -> Self {
        Answer {
            response: ActivationResponse::new(
                ActivationStatus::ApplicationError,
                json!({ "error": error }),
            ),
            logs: Vec::new(),
        }
    }

    /// What a Node.js action that throws answers.
    fn thrown(error: &str) -> Self {
        Answer {
            response: ActivationResponse::error(
                ActivationStatus::DeveloperError,
                format!("An error has occurred: {error}"),
            ),
            logs: Vec::new(),
        }
    }

    fn log(mut self, line: impl std::fmt::Display) -> Self {
        self.logs.push(format!(
            "{} stdout: {line}",
            iso8601(std::time::SystemTime::now())
        ));
        self
    }
}

#[async_trait]
impl Composer for SystemActions {
    fn kinds(&self) -> &'static [&'static str] {
        &[]
    }

    fn composes(&self, action: &Action) -> bool {
        action.namespace == SYSTEM && action.exec.kind == BUILTIN
    }

    fn replaces_code(&self, action: &Action) -> bool {
        self.composes(action)
    }

    async fn check(
        &self,
        _core: &Controller,
        _who: &Identity,
        _name: &str,
        exec: ExecPut,
    ) -> Result<Exec, ControllerError> {
        Err(ControllerError::BadRequest(format!(
            "kind '{}' is reserved for the system namespace.",
            exec.kind
        )))
    }

    async fn compose(
        &self,
        core: &Arc<Controller>,
        inv: Invocation<'_>,
    ) -> Result<InvokeOutcome, ControllerError> {
        core.admit_here(inv.caller)?;
        let input = prepare_input(inv.action, inv.params, inv.cause.is_none())?.input;
        let action = inv.action.action.clone();
        let blocking = matches!(inv.wait, Wait::UpTo(_));
        let mut msg =
            core.new_message(inv.caller, &action, &input, Vec::new(), blocking, inv.cause)?;
        if let Some(id) = inv.activation_id {
            msg.activation_id = id;
        }
        // Its trace as the controller makes it for any invocation: the record's `traceId`,
        // and an `invoke` span (the action runs here, so there is no `run` span).
        msg.traceparent = Some(TraceParent::continuing(inv.trace.as_ref()));
        let _span = spans::begin_invoke(&msg, inv.trace);
        let start = now_ms();
        let package = action.name.split_once('/').map_or("", |(p, _)| p);
        let answer = match (package, action.simple_name()) {
            ("alarms", "alarm") => {
                feed(core, inv.caller, FeedKind::Cron, input, &self.timers).await
            }
            ("alarms", "once") => feed(core, inv.caller, FeedKind::Once, input, &self.timers).await,
            ("alarms", "interval") => {
                feed(core, inv.caller, FeedKind::Interval, input, &self.timers).await
            }
            ("utils", util) => run_util(util, input, &inv.caller.namespace, &self.api_host),
            (package, name) => match self.sources.get(package) {
                Some(source) => {
                    let cx = FeedContext {
                        core,
                        caller: inv.caller,
                        api_host: &self.api_host,
                        wake: &self.listeners,
                    };
                    sources::feed(cx, source, name, input).await
                }
                None => Answer::thrown(&format!("no built-in action {package}/{name}")),
            },
        };
        let mut rec = record(&msg, start, now_ms(), answer.response);
        rec.logs = answer.logs;
        let encoded =
            EncodedActivation::new(&rec).map_err(|e| ControllerError::Internal(e.to_string()))?;
        let encoded = EncodedActivation {
            name: msg.action.clone(),
            ..encoded
        };
        let written = if core.is_clustered() {
            core.store().put_activation(&encoded).await?
        } else {
            core.store().put_new_activation(&encoded).await?;
            true
        };
        if written {
            // Counted once per record written, as the invoker counts the records it writes.
            metrics::get().activation(&rec, &msg.action, msg.accepted_at);
        }
        Ok(if blocking {
            InvokeOutcome::Completed(encoded.json)
        } else {
            InvokeOutcome::Accepted(msg.activation_id)
        })
    }
}

/// JavaScript's `String(v)` of a JSON value.
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(js_join_part).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// An element of `Array.prototype.join`: `null` and `undefined` are empty.
fn js_join_part(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => js_string(other),
    }
}

/// JavaScript's truthiness of a parameter.
fn js_truthy(v: Option<&Value>) -> bool {
    gust_model::entity::truthy(v)
}

/// The `lines` parameter: an array, or `[]` when absent or falsy; `Err` when it is something
/// else (a Node.js action would throw a TypeError).
fn lines_of(input: &Map<String, Value>) -> Result<Vec<Value>, ()> {
    match input.get("lines") {
        Some(Value::Array(a)) => Ok(a.clone()),
        v if !js_truthy(v) => Ok(Vec::new()),
        _ => Err(()),
    }
}

/// Runs one of the `utils` actions with its parameters as OpenWhisk's Node.js code does.
fn run_util(name: &str, input: Map<String, Value>, namespace: &str, api_host: &str) -> Answer {
    match name {
        "echo" => Answer::ok(Value::Object(input)),
        "cat" => match lines_of(&input) {
            Ok(lines) => {
                let payload = lines
                    .iter()
                    .map(js_join_part)
                    .collect::<Vec<_>>()
                    .join("\n");
                let result = json!({ "lines": lines, "payload": payload });
                Answer::ok(result.clone()).log(format_args!("cat: returning {result}"))
            }
            Err(()) => Answer::thrown("TypeError: lines.join is not a function"),
        },
        "sort" => match lines_of(&input) {
            Ok(mut lines) => {
                let before = js_string(&Value::Array(lines.clone()));
                lines.sort_by_key(js_string);
                let after = js_string(&Value::Array(lines.clone()));
                let length = lines.len();
                Answer::ok(json!({ "lines": lines, "length": length }))
                    .log(format_args!("sort input msg: {}", Value::Object(input)))
                    .log(format_args!("sort before: {before}"))
                    .log(format_args!("sort after: {after}"))
            }
            Err(()) => Answer::thrown("TypeError: lines.sort is not a function"),
        },
        "head" => match lines_of(&input) {
            Ok(lines) => {
                let num = input
                    .get("num")
                    .filter(|v| js_truthy(Some(v)))
                    .cloned()
                    .unwrap_or(json!(1));
                let n = num
                    .as_f64()
                    .or_else(|| num.as_str().and_then(|s| s.trim().parse().ok()))
                    .unwrap_or(0.0) as i64;
                let len = lines.len() as i64;
                let end = if n < 0 { (len + n).max(0) } else { n.min(len) };
                let head: Vec<Value> = lines[..end as usize].to_vec();
                let text = format!(
                    "head get first {} lines of {}: {}",
                    js_string(&num),
                    js_string(&Value::Array(lines)),
                    js_string(&Value::Array(head.clone()))
                );
                Answer::ok(json!({ "lines": head, "num": num })).log(text)
            }
            Err(()) => Answer::thrown("TypeError: lines.slice is not a function"),
        },
        "split" => {
            let Some(payload) = input.get("payload").filter(|v| !v.is_null()) else {
                return Answer::thrown(
                    "TypeError: Cannot read properties of undefined (reading 'toString')",
                );
            };
            let text = js_string(payload);
            let lines: Vec<Value> = match input.get("separator").filter(|v| js_truthy(Some(v))) {
                Some(sep) => {
                    let sep = js_string(sep);
                    text.split(sep.as_str()).map(|s| json!(s)).collect()
                }
                None => text
                    .split('\n')
                    .map(|s| json!(s.strip_suffix('\r').unwrap_or(s)))
                    .collect(),
            };
            let result = json!({ "lines": lines, "payload": payload });
            Answer::ok(result.clone()).log(format_args!("split: returning {result}"))
        }
        "date" => {
            let now = jiff::Timestamp::now();
            let date = now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            Answer::ok(json!({ "date": date })).log(format_args!(
                "It is now {}",
                now.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
            ))
        }
        "namespace" => Answer::ok(json!({ "namespace": namespace })),
        "smash" => match input.get("$fieldName") {
            Some(Value::String(field)) => {
                let field = field.clone();
                let mut rest = input;
                rest.remove("$fieldName");
                let mut out = Map::new();
                out.insert(field, Value::Object(rest));
                Answer::ok(Value::Object(out))
            }
            _ => Answer::error(json!("Expected an argument '$fieldName' of type 'string'.")),
        },
        "hosturl" => hosturl(&input, namespace, api_host),
        other => Answer::thrown(&format!("no built-in action '{other}'")),
    }
}

/// OpenWhisk's `utils/hosturl`.
fn hosturl(args: &Map<String, Value>, ns: &str, host: &str) -> Answer {
    let web = args.get("web") == Some(&Value::Bool(true));
    let trigger = js_truthy(args.get("trigger"));
    let collection = if args.get("trigger") == Some(&Value::Bool(true)) {
        "triggers"
    } else {
        "actions"
    };
    let base = if web {
        format!("{host}/api/v1/web/{ns}")
    } else {
        format!("{host}/api/v1/namespaces/{ns}/{collection}")
    };
    let path = args
        .get("path")
        .filter(|v| js_truthy(Some(v)))
        .map(js_string);
    if web && trigger {
        return Answer::error(json!("triggers are not allowed for web actions."));
    }
    let ext = args
        .get("ext")
        .filter(|v| js_truthy(Some(v)))
        .map(js_string);
    if web
        && let Some(ext) = &ext
        && ![".html", ".http", ".json", ".svg", ".text"].contains(&ext.as_str())
    {
        return Answer::error(json!(
            "extension for web action must be one of [\".html\", \".http\", \".json\", \".svg\", \".text\"]."
        ));
    }
    if !web && trigger {
        match &path {
            None => {
                return Answer::thrown(
                    "TypeError: Cannot read properties of undefined (reading 'indexOf')",
                );
            }
            Some(p) if p.contains('/') => {
                return Answer::error(json!("triggers are not allowed in packages."));
            }
            Some(_) => {}
        }
    }
    match path {
        Some(p) => {
            let p = if web && !p.contains('/') {
                format!("default/{p}")
            } else {
                p
            };
            let ext = if web {
                ext.unwrap_or_default()
            } else {
                String::new()
            };
            Answer::ok(json!({ "url": format!("{base}/{p}{ext}") }))
        }
        None => Answer::ok(json!({ "url": base })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, input: Value) -> (Value, bool) {
        let Value::Object(m) = input else { panic!() };
        let a = run_util(name, m, "guest", "http://h");
        (a.response.result, a.response.success)
    }

    #[test]
    fn utils_answer_as_openwhisks_do() {
        assert_eq!(run("echo", json!({"a": 1})).0, json!({"a": 1}));
        assert_eq!(
            run("cat", json!({"lines": ["seven", "eight", 9]})).0,
            json!({"lines": ["seven", "eight", 9], "payload": "seven\neight\n9"})
        );
        assert_eq!(run("cat", json!({})).0, json!({"lines": [], "payload": ""}));
        assert!(!run("cat", json!({"lines": "x"})).1);
        assert_eq!(
            run("sort", json!({"lines": [10, 9, 1]})).0,
            json!({"lines": [1, 10, 9], "length": 3})
        );
        assert_eq!(
            run("head", json!({"lines": [4, 2, 3], "num": 2})).0,
            json!({"lines": [4, 2], "num": 2})
        );
        assert_eq!(
            run("head", json!({"lines": [4, 2, 3]})).0,
            json!({"lines": [4], "num": 1})
        );
        assert_eq!(
            run(
                "split",
                json!({"payload": "one,two,three", "separator": ","})
            )
            .0,
            json!({"lines": ["one", "two", "three"], "payload": "one,two,three"})
        );
        assert_eq!(
            run("split", json!({"payload": "a\r\nb\nc"})).0["lines"],
            json!(["a", "b", "c"])
        );
        assert!(!run("split", json!({})).1);
        assert_eq!(run("namespace", json!({})).0, json!({"namespace": "guest"}));
        assert_eq!(
            run("smash", json!({"a": 1, "$fieldName": "p"})).0,
            json!({"p": {"a": 1}})
        );
        let (r, ok) = run("smash", json!({"a": 1}));
        assert!(!ok);
        assert_eq!(
            r,
            json!({"error": "Expected an argument '$fieldName' of type 'string'."})
        );
        assert!(
            run("date", json!({})).0["date"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }

    #[test]
    fn hosturl_builds_openwhisks_urls() {
        let url = |v: Value| run("hosturl", v).0["url"].clone();
        assert_eq!(
            url(json!({})),
            json!("http://h/api/v1/namespaces/guest/actions")
        );
        assert_eq!(
            url(json!({"path": "utils/echo"})),
            json!("http://h/api/v1/namespaces/guest/actions/utils/echo")
        );
        assert_eq!(
            url(json!({"trigger": true, "path": "echo"})),
            json!("http://h/api/v1/namespaces/guest/triggers/echo")
        );
        assert_eq!(
            url(json!({"web": true})),
            json!("http://h/api/v1/web/guest")
        );
        assert_eq!(
            url(json!({"web": true, "path": "echo", "ext": ".text"})),
            json!("http://h/api/v1/web/guest/default/echo.text")
        );
        assert_eq!(
            run("hosturl", json!({"trigger": true, "path": "p/echo"})).0,
            json!({"error": "triggers are not allowed in packages."})
        );
    }
}
