//! Create, read, update, delete and list actions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use base64::Engine as _;
use gust_model::entity::bump_version;
use gust_model::limits::{ActionLimitsPatch, MAX_JSON_DEPTH, json_depth};
use gust_model::time::now_ms;
use gust_model::{Action, ActionLimits, Exec, KeyValue, names};
use gust_runtime_wasm::CompileError;
use gust_store::PutMode;
use serde::Deserialize;
use serde_json::json;

use crate::{CACHE_TTL, Controller, ControllerError, MAX_CACHED, lock};

/// Kinds this controller accepts.
pub const KINDS: &[&str] = &["wasm"];

/// `exec` of a PUT body.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecPut {
    pub kind: String,
    pub code: Option<String>,
    #[serde(default)]
    pub binary: Option<bool>,
    #[serde(default)]
    pub main: Option<String>,
}

/// The body of `PUT .../actions/{name}`: every field optional; an update keeps what is absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionPut {
    pub exec: Option<ExecPut>,
    pub parameters: Option<Vec<KeyValue>>,
    pub annotations: Option<Vec<KeyValue>>,
    pub limits: Option<ActionLimitsPatch>,
    pub publish: Option<bool>,
    /// Accepted for compatibility and ignored: the server assigns versions.
    #[serde(default)]
    pub version: Option<String>,
    /// Accepted for compatibility; must match the path when given.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

fn bad(msg: impl Into<String>) -> ControllerError {
    ControllerError::BadRequest(msg.into())
}

fn check_name(name: &str) -> Result<(), ControllerError> {
    names::check_entity(name).map_err(|e| bad(e.to_string()))
}

/// Refuses a parameter or annotation value nested deeper than [`MAX_JSON_DEPTH`].
fn check_depth(what: &str, kv: &KeyValue) -> Result<(), ControllerError> {
    if json_depth(&kv.value) > MAX_JSON_DEPTH {
        return Err(bad(format!(
            "The {what} '{}' nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
            kv.key
        )));
    }
    Ok(())
}

impl Controller {
    /// The action `ns/name`, through a short-lived cache.
    pub(crate) async fn cached_action(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Action>, ControllerError> {
        let key = (ns.to_string(), name.to_string());
        if let Some((at, a)) = lock(&self.actions).get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return a.clone().ok_or(ControllerError::NotFound);
        }
        let generation = self.actions_generation.load(Ordering::Acquire);
        let a = self.store.action(ns, name, false).await?.map(Arc::new);
        let mut cache = lock(&self.actions);
        // A write through this controller since the read began may have made `a` stale.
        if self.actions_generation.load(Ordering::Acquire) == generation {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), a.clone()));
        }
        a.ok_or(ControllerError::NotFound)
    }

    fn forget_action(&self, ns: &str, name: &str) {
        let mut cache = lock(&self.actions);
        self.actions_generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(&(ns.to_string(), name.to_string()));
    }

    pub async fn get_action(
        &self,
        ns: &str,
        name: &str,
        code: bool,
    ) -> Result<Action, ControllerError> {
        check_name(name)?;
        self.store
            .action(ns, name, code)
            .await?
            .ok_or(ControllerError::NotFound)
    }

    pub async fn list_actions(
        &self,
        ns: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Action>, ControllerError> {
        Ok(self.store.list_actions(ns, skip, limit).await?)
    }

    pub async fn count_actions(&self, ns: &str) -> Result<u64, ControllerError> {
        Ok(self.store.count_actions(ns).await?)
    }

    pub async fn delete_action(&self, ns: &str, name: &str) -> Result<Action, ControllerError> {
        check_name(name)?;
        let a = self.store.delete_action(ns, name).await?;
        self.forget_action(ns, name);
        a.ok_or(ControllerError::NotFound)
    }

    /// Creates or (with `overwrite`) updates an action. New code is compiled before anything
    /// is stored; invalid code is a 400 with the compiler's reason and changes nothing.
    pub async fn put_action(
        &self,
        ns: &str,
        name: &str,
        put: ActionPut,
        overwrite: bool,
    ) -> Result<Action, ControllerError> {
        check_name(name)?;
        if let Some(n) = &put.name
            && n != name
        {
            return Err(bad(format!(
                "The name in the body ('{n}') does not match the path ('{name}')."
            )));
        }
        let existing = self.store.action(ns, name, false).await?;
        if existing.is_some() && !overwrite {
            return Err(ControllerError::Conflict);
        }

        let limits = match (&put.limits, &existing) {
            (Some(p), Some(e)) => p.apply(e.limits),
            (Some(p), None) => p.apply(ActionLimits::default()),
            (None, Some(e)) => e.limits,
            (None, None) => ActionLimits::default(),
        };
        limits.validate().map_err(|e| bad(e.to_string()))?;

        let parameters = match put.parameters {
            Some(p) => p,
            None => existing
                .as_ref()
                .map(|e| e.parameters.clone())
                .unwrap_or_default(),
        };
        let size = serde_json::to_vec(&parameters)
            .map(|v| v.len() as u64)
            .unwrap_or(0);
        if size > self.system.max_parameters {
            return Err(ControllerError::TooLarge(format!(
                "Parameters larger than allowed: {size} > {} bytes.",
                self.system.max_parameters
            )));
        }
        for p in &parameters {
            if p.key.is_empty() {
                return Err(bad("A parameter key must not be empty."));
            }
            check_depth("parameter", p)?;
        }

        let (exec, code, code_hash) = match (put.exec, &existing) {
            (Some(exec), _) => {
                let (exec, code, hash) = self.accept_code(exec).await?;
                (exec, Some(code), hash)
            }
            (None, Some(e)) => (e.exec.clone(), None, e.code_hash.clone()),
            (None, None) => return Err(bad("exec undefined")),
        };

        let mut annotations = match put.annotations {
            Some(a) => a,
            None => existing
                .as_ref()
                .map(|e| e.annotations.clone())
                .unwrap_or_default(),
        };
        for a in &annotations {
            check_depth("annotation", a)?;
        }
        annotations.retain(|a| a.key != "exec");
        annotations.push(KeyValue {
            key: "exec".into(),
            value: json!(exec.kind),
            init: false,
        });

        let action = Action {
            namespace: ns.to_string(),
            name: name.to_string(),
            version: existing
                .as_ref()
                .map(|e| bump_version(&e.version))
                .unwrap_or_else(|| "0.0.1".to_string()),
            publish: put
                .publish
                .or(existing.as_ref().map(|e| e.publish))
                .unwrap_or(false),
            exec,
            annotations,
            parameters,
            limits,
            updated: now_ms(),
            code_hash,
        };
        let mode = match &existing {
            Some(e) => PutMode::Replace {
                expected_version: e.version.clone(),
            },
            None => PutMode::Create,
        };
        self.store
            .put_action(&action, code.as_deref(), mode)
            .await?;
        self.forget_action(ns, name);
        Ok(action)
    }

    /// Decodes, size-checks and compiles new code; returns the exec to store (without code),
    /// the code and its hash.
    async fn accept_code(&self, exec: ExecPut) -> Result<(Exec, Vec<u8>, String), ControllerError> {
        if !KINDS.contains(&exec.kind.as_str()) {
            return Err(bad(format!(
                "kind '{}' is not supported; this server runs: {}.",
                exec.kind,
                KINDS.join(", ")
            )));
        }
        let Some(text) = exec.code else {
            return Err(bad("exec.code is required for kind 'wasm'."));
        };
        // Refuse oversized code before decoding it: the size base64 text decodes to.
        let text = text.trim();
        let padding = text.bytes().rev().take_while(|b| *b == b'=').count() as u64;
        let decoded_len = (text.len() as u64 / 4 * 3).saturating_sub(padding);
        if decoded_len > self.system.max_code {
            return Err(ControllerError::TooLarge(format!(
                "Code larger than allowed: {decoded_len} > {} bytes.",
                self.system.max_code
            )));
        }
        let code = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| bad(format!("exec.code is not valid base64: {e}.")))?;
        if code.len() as u64 > self.system.max_code {
            return Err(ControllerError::TooLarge(format!(
                "Code larger than allowed: {} > {} bytes.",
                code.len(),
                self.system.max_code
            )));
        }
        let runtime = self.runtime.clone();
        let compiled =
            tokio::task::spawn_blocking(move || runtime.compile(&code).map(|h| (h, code)))
                .await
                .map_err(|e| ControllerError::Internal(format!("compilation task failed: {e}")))?;
        let (hash, code) = match compiled {
            Ok(ok) => ok,
            Err(CompileError::Invalid(reason)) => {
                return Err(bad(format!(
                    "The action's code is not a valid Wasm function: {reason}"
                )));
            }
            Err(e) => return Err(ControllerError::Internal(e.to_string())),
        };
        let exec = Exec {
            kind: exec.kind,
            code: None,
            binary: true,
            main: exec.main,
        };
        Ok((exec, code, hash))
    }
}
