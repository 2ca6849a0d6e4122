//! Event sources as feeds: every [`Source`] this process knows is a package of feed actions
//! under `whisk.system` (`/whisk.system/mqtt/subscribe`, `/whisk.system/webhooks/github`),
//! and a feed call (OpenWhisk's protocol, as the `alarms` feeds) writes the trigger's
//! [`Subscription`]: CREATE checks the parameters (unknown ones refused) and, for a
//! connected source, connects once, so a wrong password or an unreachable broker fails the
//! call and the CLI deletes the trigger; READ shows the configuration with its secrets
//! hidden and what the runner last said; UPDATE merges parameters; PAUSE and UNPAUSE stop
//! and restart it; DELETE removes it. The [`crate::listeners`] run connected subscriptions;
//! webhooks are received by [`Events::hook`](crate::Events::hook).

use std::sync::Arc;
use std::time::Duration;

use gust_controller::Controller;
use gust_keyring::Keyring;
use gust_model::time::now_ms;
use gust_model::{Identity, Subscription, SubscriptionSpec, secret_place};
use gust_source::{Source, unknown_feed};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::alarms::{FeedCall, FeedError, feed_call, feed_status};
use crate::destinations::Destination;
use crate::mappings;
use crate::system::Answer;

/// The payload key that carries a message's de-duplication key to the function.
pub const EVENT_KEY: &str = "__event_key";

/// An event's payload, with its key under [`EVENT_KEY`] when its source gave it one, and the
/// key its fire is identified by (the source's, or a new one for this message alone).
pub(crate) fn keyed(event: gust_source::Event) -> (Map<String, Value>, String) {
    let mut payload = event.payload;
    let key = match event.key {
        Some(k) => {
            payload.insert(EVENT_KEY.into(), json!(k));
            k
        }
        None => format!("once:{}", uuid::Uuid::new_v4().simple()),
    };
    (payload, key)
}

/// What a READ shows in place of a secret's value.
pub const HIDDEN: &str = "********";
/// Longest a CREATE or UPDATE waits for a source to connect.
const CHECK_AT_MOST: Duration = Duration::from_secs(10);
/// The feed call's own parameters, not the source's.
const PROTOCOL: &[&str] = &["lifecycleEvent", "triggerName", "authKey"];

/// The event sources of this process, by package.
#[derive(Default)]
pub struct Sources {
    list: Vec<Arc<dyn Source>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|s| s.package()))
            .finish()
    }
}

impl Sources {
    pub fn new(list: Vec<Arc<dyn Source>>) -> Arc<Sources> {
        Arc::new(Sources { list })
    }

    /// The source whose package is `package`.
    pub fn get(&self, package: &str) -> Option<&Arc<dyn Source>> {
        self.list.iter().find(|s| s.package() == package)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Source>> {
        self.list.iter()
    }
}

/// The URL a webhook subscription of `ns/trigger` receives at.
pub fn hook_url(api_host: &str, ns: &str, trigger: &str) -> String {
    let escape = |s: &str| s.replace('%', "%25").replace(' ', "%20");
    format!(
        "{}/hooks/{}/{}",
        api_host.trim_end_matches('/'),
        escape(ns),
        escape(trigger)
    )
}

/// The place a subscription's secret `key` (of trigger `ns/trigger`) is sealed for
/// (decision 0022).
pub fn config_place(ns: &str, trigger: &str, key: &str) -> String {
    secret_place("subscriptions", ns, trigger, key)
}

/// The place the secret `key` of rule `ns/rule`'s `output` annotation is sealed for.
pub fn output_place(ns: &str, rule: &str, key: &str) -> String {
    secret_place("rules", ns, rule, &format!("output.{key}"))
}

/// `config` as it is stored: the string values of `source`'s secrets sealed for their place
/// (decision 0022).
pub(crate) fn seal_config(
    keyring: &Keyring,
    source: &dyn Source,
    ns: &str,
    trigger: &str,
    mut config: Map<String, Value>,
) -> Map<String, Value> {
    for (k, v) in config.iter_mut() {
        if let Value::String(text) = v
            && source.secrets().contains(&k.as_str())
        {
            let place = config_place(ns, trigger, k);
            *v = Value::String(keyring.seal(text.as_bytes(), place.as_bytes()));
        }
    }
    config
}

/// A stored `config` with its secrets opened: what the source runs with, only where it runs.
/// A secret stored before secrets were sealed is given as it is; one that does not open is an
/// error naming it.
pub(crate) fn open_config(
    keyring: &Keyring,
    source: &dyn Source,
    ns: &str,
    trigger: &str,
    config: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut out = config.clone();
    for (k, v) in out.iter_mut() {
        if let Value::String(text) = v
            && source.secrets().contains(&k.as_str())
            && gust_keyring::is_sealed(text)
        {
            let place = config_place(ns, trigger, k);
            let plain = keyring
                .open(text, place.as_bytes())
                .map_err(|e| format!("the secret '{k}' of the feed's configuration: {e}"))?;
            let plain = String::from_utf8(plain)
                .map_err(|_| format!("the secret '{k}' of the feed's configuration is not text"))?;
            *v = Value::String(plain);
        }
    }
    Ok(out)
}

/// `text` (an error a source gave) with the values of `secrets` among `config` (opened) and
/// the passwords of URLs among them replaced by `********`: an error is logged and shown.
pub(crate) fn redact(text: &str, secrets: &[&str], config: &Map<String, Value>) -> String {
    let mut out = text.to_string();
    for k in secrets {
        let Some(value) = config.get(*k).and_then(Value::as_str) else {
            continue;
        };
        let mut hidden = vec![value];
        // The password of `scheme://user:password@host...`.
        if let Some((_, rest)) = value.split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            hidden.push(password);
        }
        for h in hidden.into_iter().filter(|h| !h.is_empty()) {
            out = out.replace(h, "********");
        }
    }
    out
}

/// `config` with the values of `source`'s secrets hidden.
pub(crate) fn shown_config(source: &dyn Source, config: &Map<String, Value>) -> Map<String, Value> {
    config
        .iter()
        .map(|(k, v)| {
            let v = if source.secrets().contains(&k.as_str()) && !v.is_null() {
                json!(HIDDEN)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// What a feed call of a source needs besides its input.
pub(crate) struct FeedContext<'a> {
    pub core: &'a Arc<Controller>,
    pub caller: &'a Identity,
    /// What hook URLs start with (`http://host:port`).
    pub api_host: &'a str,
    /// Woken when a subscription changes, so the runners look at once.
    pub wake: &'a Notify,
}

/// Runs feed `feed` of `source` with `input` (the feed action's parameters).
pub(crate) async fn feed(
    cx: FeedContext<'_>,
    source: &Arc<dyn Source>,
    feed: &str,
    input: Map<String, Value>,
) -> Answer {
    match run(&cx, source, feed, input).await {
        Ok(result) => {
            cx.wake.notify_one();
            Answer::ok(result)
        }
        Err(e) => Answer::error(json!({ "error": e.to_string() })),
    }
}

async fn run(
    cx: &FeedContext<'_>,
    source: &Arc<dyn Source>,
    feed: &str,
    input: Map<String, Value>,
) -> Result<Value, FeedError> {
    let FeedCall {
        event,
        namespace: ns,
        trigger,
    } = feed_call(cx.core, cx.caller, &input).await?;
    if !source.feeds().iter().any(|f| f.name == feed) {
        return Err(FeedError::Source(unknown_feed(source.as_ref(), feed)));
    }
    let params: Map<String, Value> = input
        .into_iter()
        .filter(|(k, _)| !PROTOCOL.contains(&k.as_str()))
        .collect();
    let store = cx.core.store();
    let existing = store
        .subscription(&ns, &trigger)
        .await?
        .filter(|s| s.spec.source == source.package() && s.spec.feed == feed);
    let missing = || FeedError::NotFound(format!("/{ns}/{trigger}"));
    let success = |listens: bool| {
        let mut answer = json!({ "status": "success" });
        if !listens {
            answer["url"] = json!(hook_url(cx.api_host, &ns, &trigger));
        }
        answer
    };
    let now = now_ms();
    match event.as_str() {
        "CREATE" | "UPDATE" => {
            if source.streams(feed) && params.contains_key(mappings::STREAM_SINCE) {
                return Err(FeedError::Source(format!(
                    "parameter '{}' is Gust's own: it cannot be given",
                    mappings::STREAM_SINCE
                )));
            }
            let (merged, paused, before) = match (event.as_str(), existing) {
                ("CREATE", _) => (params, false, None),
                (_, None) => return Err(missing()),
                (_, Some(old)) => {
                    if params.is_empty() {
                        return Err(FeedError::NothingToUpdate);
                    }
                    let keyring = cx.core.keyring();
                    let mut config =
                        open_config(keyring, source.as_ref(), &ns, &trigger, &old.spec.config)
                            .map_err(FeedError::Source)?;
                    let before = config.clone();
                    config.extend(params);
                    (config, old.spec.paused, Some(before))
                }
            };
            // An error names no secret, stored or new.
            let hide = |e: String| FeedError::Source(redact(&e, source.secrets(), &merged));
            // A stream feed's mapping parameters are the events crate's, not the source's.
            let (config, mapping) = if source.streams(feed) {
                let (own, mapping) = mappings::split(&merged);
                let config = source.configure(feed, &own).map_err(hide)?;
                let spec = mappings::Spec::read(&mapping).map_err(FeedError::Source)?;
                check_destination(cx, source.as_ref(), &ns, &config, &spec)
                    .await
                    .map_err(hide)?;
                (config, Some(spec.write()))
            } else {
                (source.configure(feed, &merged).map_err(hide)?, None)
            };
            let listens = source.listens(feed);
            if listens {
                match tokio::time::timeout(CHECK_AT_MOST, source.check(feed, &config)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(hide(e.to_string())),
                    Err(_) => {
                        return Err(FeedError::Source(format!(
                            "the {} source did not connect within {} s",
                            source.package(),
                            CHECK_AT_MOST.as_secs()
                        )));
                    }
                }
            }
            let mut config = config;
            if let Some(mut mapping) = mapping {
                // A new subscription (the trigger made again), or another stream: its
                // mappings start again, whatever rows earlier streams left (their runners may
                // still be writing them for a moment).
                let since = match &before {
                    Some(b) if !mappings::another_stream(b, &config) => b
                        .get(mappings::STREAM_SINCE)
                        .and_then(Value::as_u64)
                        .unwrap_or(now),
                    _ => now,
                };
                mapping.insert(mappings::STREAM_SINCE.into(), json!(since));
                config.extend(mapping);
            }
            let config = seal_config(cx.core.keyring(), source.as_ref(), &ns, &trigger, config);
            let spec = SubscriptionSpec {
                source: source.package().to_string(),
                feed: feed.to_string(),
                config,
                listens,
                paused,
                changed_ms: now,
            };
            store
                .put_subscription(&subscription(&ns, &trigger, spec))
                .await?;
            Ok(success(listens))
        }
        "READ" => {
            let s = existing.ok_or_else(missing)?;
            Ok(read(cx, source.as_ref(), &s))
        }
        "DELETE" => {
            let Some(old) = existing else {
                return Err(missing());
            };
            if !store.delete_subscription(&ns, &trigger).await? {
                return Err(missing());
            }
            forget(cx.core.keyring(), source.as_ref(), &old).await;
            Ok(json!({ "status": "success" }))
        }
        pause => {
            let mut s = existing.ok_or_else(missing)?;
            s.spec.paused = pause == "PAUSE";
            s.spec.changed_ms = now;
            let listens = s.spec.listens;
            store.put_subscription(&s).await?;
            Ok(success(listens))
        }
    }
}

/// Lets `source` release what deleted subscription `s` held at its source
/// ([`Source::forget`]: a replication slot), within [`CHECK_AT_MOST`]; an error is logged,
/// secrets hidden, and the deletion stands.
pub(crate) async fn forget(keyring: &Keyring, source: &dyn Source, s: &Subscription) {
    let (ns, trigger) = (&s.namespace, &s.trigger);
    let error = match open_config(keyring, source, ns, trigger, &s.spec.config) {
        Err(e) => e,
        Ok(config) => {
            let forgetting = source.forget(&s.spec.feed, &config);
            match tokio::time::timeout(CHECK_AT_MOST, forgetting).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => redact(&e.to_string(), source.secrets(), &config),
                Err(_) => format!("no answer within {} s", CHECK_AT_MOST.as_secs()),
            }
        }
    };
    tracing::warn!(
        namespace = %ns,
        trigger = %trigger,
        source = source.package(),
        "cannot release what a deleted subscription held at its source: {error}"
    );
}

/// Checks that a mapping's `onFailure` destination can be reached: an action that exists, a
/// subject the source can publish to (a trigger may come later: firing one that is missing
/// is retried, then counted as dropped).
async fn check_destination(
    cx: &FeedContext<'_>,
    source: &dyn Source,
    ns: &str,
    config: &Map<String, Value>,
    spec: &mappings::Spec,
) -> Result<(), String> {
    match &spec.on_failure {
        Some(Destination::Action(name)) => {
            let path = gust_model::EntityPath::parse(name, ns)
                .ok_or_else(|| format!("parameter 'onFailure': '{name}' is not an action name"))?;
            cx.core
                .resolve(cx.caller, path.namespace(), &path.inner())
                .await
                .map(|_| ())
                .map_err(|e| format!("parameter 'onFailure': action {name}: {e}"))
        }
        Some(Destination::Subject(subject)) => {
            mappings::subject_output(source, config, subject).map(|_| ())
        }
        Some(Destination::Trigger(_)) | None => Ok(()),
    }
}

fn subscription(ns: &str, trigger: &str, spec: SubscriptionSpec) -> Subscription {
    Subscription {
        namespace: ns.to_string(),
        trigger: trigger.to_string(),
        spec,
        owner: None,
        lease_ms: 0,
        status: Map::new(),
    }
}

/// A READ's answer: `{config, status}` as the alarms feeds answer, secrets hidden; a
/// webhook's URL.
fn read(cx: &FeedContext<'_>, source: &dyn Source, s: &Subscription) -> Value {
    let mut config = shown_config(source, &s.spec.config);
    config.insert("name".into(), json!(s.trigger));
    config.insert("namespace".into(), json!(s.namespace));
    let mut status = feed_status(!s.spec.paused, s.spec.paused, s.spec.changed_ms, None);
    for (k, v) in &s.status {
        status[k] = v.clone();
    }
    let mut answer = json!({ "config": config, "status": status });
    if !s.spec.listens {
        answer["url"] = json!(hook_url(cx.api_host, &s.namespace, &s.trigger));
    }
    answer
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_names_no_secret_nor_a_url_password() {
        let config: serde_json::Map<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"url": "amqp://u:pw1234@h/", "queue": "q", "secret": "s3cr3t"}),
        )
        .unwrap();
        let text = "cannot connect to amqp://u:pw1234@h/ (u:pw1234@h refused s3cr3t) for q";
        let out = super::redact(text, &["url", "secret"], &config);
        assert!(!out.contains("pw1234") && !out.contains("s3cr3t"), "{out}");
        assert!(out.contains("for q"), "{out}");
    }

    use super::*;

    #[test]
    fn hook_urls_escape_what_a_path_cannot_hold() {
        assert_eq!(
            hook_url("http://h:1/", "guest", "my hook"),
            "http://h:1/hooks/guest/my%20hook"
        );
    }
}
