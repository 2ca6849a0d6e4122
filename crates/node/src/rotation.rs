//! Rotation of the master key (decision 0022): every secret in the store (parameters, feed
//! configurations, rule outputs) sealed again under the current key, then the old keys
//! dropped once nothing needs them.
//!
//! **Invariant:** an old key is removed only after every stored secret (entities) and every
//! journaled invocation no longer needs it; an interrupted rotation leaves the old key in
//! place and is resumed by running it again.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gust_events::Sources;
use gust_events::sources::{config_place, output_place};
use gust_keyring::{FILE, Keyring, read_key_file, write_key_file};
use gust_model::{KeyValue, secret_place};
use gust_store::{PutMode, Store, StoreError};
use serde_json::Value;

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The id of the key everything is sealed under now.
    pub current: String,
    /// Secrets sealed again.
    pub resealed: usize,
    /// Keys still held besides the current one: in `GUST_MASTER_KEY` (the operator removes
    /// them), or kept in `master.key` because journaled invocations still need them.
    pub kept: Vec<String>,
    /// Journaled invocations that carry a value sealed under a kept key.
    pub waiting: usize,
    /// Secrets sealed under an old key while the rotation ran (a server still running): the
    /// old key is kept.
    pub sealed_meanwhile: usize,
}

/// Rotates the master key of `store`. With `GUST_MASTER_KEY` (a cluster): seals everything
/// under its first key. Else (the embedded store): puts a new key first in
/// `data_dir/master.key` unless a rotation is under way (several keys there), seals
/// everything under it, then removes the older keys if no journaled invocation needs them.
pub async fn rotate_master_key(data_dir: &Path, store: &dyn Store) -> Result<Rotation> {
    if std::env::var_os(gust_keyring::ENV).is_some() {
        let keyring = Keyring::load(data_dir).context("cannot load the master keys")?;
        let resealed = reseal_store(store, &keyring).await?;
        let old: Vec<String> = keyring.ids()[1..].iter().map(|s| s.to_string()).collect();
        let waiting = journaled_under(store, &old).await?;
        return Ok(Rotation {
            current: keyring.ids()[0].to_string(),
            resealed,
            kept: old,
            waiting,
            sealed_meanwhile: 0,
        });
    }
    let path = data_dir.join(FILE);
    if !path.exists() {
        bail!(
            "no master key at {}: nothing is sealed (it is made at the server's first start)",
            path.display()
        );
    }
    let mut keys = read_key_file(&path)?;
    if keys.len() < 2 {
        // A new key first, the old one kept after it, written whole before any value is
        // sealed under the new key (a temporary file renamed over the old one).
        keys.insert(0, gust_keyring::new_key_text());
        replace_key_file(&path, &keys)?;
    }
    let keyring = Keyring::from_keys(&keys)?;
    let resealed = reseal_store(store, &keyring).await?;
    let old: Vec<String> = keyring.ids()[1..].iter().map(|s| s.to_string()).collect();
    let waiting = journaled_under(store, &old).await?;
    // A second pass finds nothing unless a running server sealed something under the old key
    // meanwhile (it read master.key at its start): then the old key stays.
    let late = reseal_store(store, &keyring).await?;
    let kept = if waiting == 0 && late == 0 {
        replace_key_file(&path, &keys[..1])?;
        Vec::new()
    } else {
        old
    };
    Ok(Rotation {
        current: keyring.ids()[0].to_string(),
        resealed: resealed + late,
        kept,
        waiting,
        sealed_meanwhile: late,
    })
}

/// Writes `keys` to `path` through a temporary file renamed over it: the key file is always
/// whole, the old or the new.
fn replace_key_file(path: &Path, keys: &[String]) -> Result<()> {
    let tmp = path.with_extension("key.new");
    write_key_file(&tmp, keys)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Journaled invocations whose message holds a value sealed under one of `ids`.
async fn journaled_under(store: &dyn Store, ids: &[String]) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let marks: Vec<String> = ids
        .iter()
        .map(|id| format!("{}{id}:", gust_keyring::PREFIX))
        .collect();
    let pending = store.pending().await?;
    Ok(pending
        .iter()
        .filter(|p| {
            let text = String::from_utf8_lossy(&p.message);
            marks.iter().any(|m| text.contains(m.as_str()))
        })
        .count())
}

/// Seals again, under `keyring`'s current key, every secret of every namespace: the secret
/// parameters of actions, packages and triggers, the secrets of triggers' feed
/// configurations and of rules' outputs; how many.
async fn reseal_store(store: &dyn Store, keyring: &Keyring) -> Result<usize> {
    const ALL: u64 = u64::MAX >> 1;
    let sources = crate::event_sources();
    let mut n = 0;
    for ns in store.list_namespaces().await? {
        let ns = ns.name.as_str();
        for a in store.list_actions(ns, None, 0, ALL).await? {
            n += reseal_action(store, keyring, ns, &a.name).await?;
        }
        for p in store.list_packages(ns, false, 0, ALL).await? {
            n += reseal_package(store, keyring, ns, &p.name).await?;
        }
        for t in store.list_triggers(ns, 0, ALL).await? {
            n += reseal_trigger(store, keyring, ns, &t.name).await?;
            n += reseal_subscription(store, keyring, &sources, ns, &t.name).await?;
        }
        for r in store.list_rules(ns, 0, ALL).await? {
            n += reseal_rule(store, keyring, &sources, ns, &r.name).await?;
        }
    }
    Ok(n)
}

/// Seals again the sealed strings of `map` whose keys are among `secrets` and that are not
/// under the current key, each at the place `place` names for its key; how many.
fn reseal_map(
    keyring: &Keyring,
    map: &mut serde_json::Map<String, Value>,
    secrets: &[&str],
    place: impl Fn(&str) -> String,
) -> Result<usize> {
    let mut n = 0;
    for (k, v) in map.iter_mut() {
        let Value::String(sealed) = v else { continue };
        if !secrets.contains(&k.as_str())
            || !gust_keyring::is_sealed(sealed)
            || keyring.is_current(sealed)
        {
            continue;
        }
        let place = place(k);
        let plain = keyring
            .open(sealed, place.as_bytes())
            .with_context(|| format!("the secret '{k}' does not open"))?;
        *v = Value::String(keyring.seal(&plain, place.as_bytes()));
        n += 1;
    }
    Ok(n)
}

/// The secrets of trigger `ns/trigger`'s feed configuration (a source's subscription).
async fn reseal_subscription(
    store: &dyn Store,
    keyring: &Keyring,
    sources: &Sources,
    ns: &str,
    trigger: &str,
) -> Result<usize> {
    let Some(mut s) = store.subscription(ns, trigger).await? else {
        return Ok(0);
    };
    let Some(source) = sources.get(&s.spec.source) else {
        return Ok(0);
    };
    let n = reseal_map(keyring, &mut s.spec.config, source.secrets(), |k| {
        config_place(ns, trigger, k)
    })
    .with_context(|| format!("the feed of trigger {ns}/{trigger}"))?;
    if n > 0 {
        store.put_subscription(&s).await?;
    }
    Ok(n)
}

/// The secrets of rule `ns/rule`'s `output` annotation.
async fn reseal_rule(
    store: &dyn Store,
    keyring: &Keyring,
    sources: &Sources,
    ns: &str,
    name: &str,
) -> Result<usize> {
    reseal_entity(
        async || store.rule(ns, name).await,
        |r: &mut gust_model::Rule| {
            let Some(output) = r.annotations.iter_mut().find(|kv| kv.key == "output") else {
                return Ok(0);
            };
            let secrets = output
                .value
                .get("source")
                .and_then(Value::as_str)
                .and_then(|s| sources.get(s))
                .map_or(&[][..], |s| s.secrets());
            let Some(map) = output.value.as_object_mut() else {
                return Ok(0);
            };
            reseal_map(keyring, map, secrets, |k| output_place(ns, name, k))
                .with_context(|| format!("the output of rule {ns}/{name}"))
        },
        async |r| store.put_rule(r, replacing(&r.version)).await,
    )
    .await
}

/// How often an entity is read and written again when an update races the rotation.
const TRIES: usize = 5;

/// Reads an entity, seals its secrets again (`reseal` says how many) and writes it back
/// if any changed, over from the read when an update raced the write ([`TRIES`] times).
async fn reseal_entity<T>(
    read: impl AsyncFn() -> Result<Option<T>, StoreError>,
    mut reseal: impl FnMut(&mut T) -> Result<usize>,
    write: impl AsyncFn(&T) -> Result<(), StoreError>,
) -> Result<usize> {
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(mut entity) = read().await? else {
            return Ok(0);
        };
        let k = reseal(&mut entity)?;
        if k == 0 {
            return Ok(0);
        }
        match write(&entity).await {
            Ok(()) => return Ok(k),
            Err(StoreError::Conflict) if tries < TRIES => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A write that replaces the entity at `version` (a conflict if it changed meanwhile).
fn replacing(version: &str) -> PutMode {
    PutMode::Replace {
        expected_version: version.to_string(),
    }
}

async fn reseal_action(
    store: &dyn Store,
    keyring: &Keyring,
    ns: &str,
    name: &str,
) -> Result<usize> {
    reseal_entity(
        async || store.action(ns, name, false).await,
        |a: &mut gust_model::Action| reseal(keyring, "actions", ns, name, &mut a.parameters),
        async |a| store.put_action(a, None, replacing(&a.version)).await,
    )
    .await
}

async fn reseal_package(
    store: &dyn Store,
    keyring: &Keyring,
    ns: &str,
    name: &str,
) -> Result<usize> {
    reseal_entity(
        async || store.package(ns, name).await,
        |p: &mut gust_model::Package| reseal(keyring, "packages", ns, name, &mut p.parameters),
        async |p| store.put_package(p, replacing(&p.version)).await,
    )
    .await
}

async fn reseal_trigger(
    store: &dyn Store,
    keyring: &Keyring,
    ns: &str,
    name: &str,
) -> Result<usize> {
    reseal_entity(
        async || store.trigger(ns, name).await,
        |t: &mut gust_model::Trigger| reseal(keyring, "triggers", ns, name, &mut t.parameters),
        async |t| store.put_trigger(t, replacing(&t.version)).await,
    )
    .await
}

/// Seals again under the current key every secret of `params` that is not; how many. The
/// entity keeps its version: its content did not change.
fn reseal(
    keyring: &Keyring,
    kind: &str,
    ns: &str,
    entity: &str,
    params: &mut [KeyValue],
) -> Result<usize> {
    let mut n = 0;
    for p in params.iter_mut().filter(|p| p.secret) {
        let Value::String(sealed) = &p.value else {
            continue;
        };
        if keyring.is_current(sealed) {
            continue;
        }
        let place = secret_place(kind, ns, entity, &p.key);
        let plain = keyring.open(sealed, place.as_bytes()).with_context(|| {
            format!(
                "the secret parameter '{}' of {kind} {ns}/{entity} does not open",
                p.key
            )
        })?;
        p.value = Value::String(keyring.seal(&plain, place.as_bytes()));
        n += 1;
    }
    Ok(n)
}
