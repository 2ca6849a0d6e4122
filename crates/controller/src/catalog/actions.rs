//! Create, read, update, delete and list actions.

use std::sync::Arc;

use base64::Engine as _;
use gust_model::entity::{bump_version, hide_secrets};
use gust_model::limits::{ActionLimitsPatch, MAX_JSON_DEPTH, json_depth};
use gust_model::time::now_ms;
use gust_model::{Action, ActionLimits, Exec, KeyValue, names, secret_place};
use gust_runtime_process::kinds::Kinds;
use gust_runtime_wasm::CompileError;
use gust_store::PutMode;
use serde::Deserialize;
use serde_json::json;

use crate::catalog::packages::path_namespace;
use crate::secrets::check_not_secret;
use crate::{Controller, ControllerError, Identity};

/// The kind of Wasm actions, which this controller compiles itself.
pub const WASM: &str = "wasm";

/// `exec` of a PUT body.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecPut {
    pub kind: String,
    pub code: Option<String>,
    #[serde(default)]
    pub binary: Option<bool>,
    #[serde(default)]
    pub main: Option<String>,
    /// A sequence's components, fully qualified.
    #[serde(default)]
    pub components: Option<Vec<String>>,
}

/// An action found from the path a request names, with the parameters it inherits from its
/// package (and the binding it was reached through).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub action: Arc<Action>,
    /// Package parameters, then binding parameters: a later key wins, and the action's own
    /// parameters win over both.
    pub inherited: Vec<KeyValue>,
    /// The place each of `inherited` is sealed for if it is a secret (same order): its
    /// package's or binding's.
    pub inherited_places: Vec<String>,
    /// Reached through a binding or in another namespace's shared package: a caller reading
    /// it sees the merged parameters.
    pub shared: bool,
}

impl Resolved {
    /// Every parameter the action is given before the request's: inherited, then its own.
    pub fn parameters(&self) -> Vec<KeyValue> {
        self.placed_parameters()
            .into_iter()
            .map(|(kv, _)| kv.clone())
            .collect()
    }

    /// [`Self::parameters`], each secret with the place it is sealed for (others with an
    /// empty one).
    pub fn placed_parameters(&self) -> Vec<(&KeyValue, String)> {
        let action = &self.action;
        let own = action.parameters.iter().map(|kv| {
            let place = if kv.secret {
                secret_place("actions", &action.namespace, &action.name, &kv.key)
            } else {
                String::new()
            };
            (kv, place)
        });
        let inherited = self
            .inherited
            .iter()
            .zip(self.inherited_places.iter().cloned());
        let mut out: Vec<(&KeyValue, String)> = Vec::new();
        for (kv, place) in inherited.chain(own) {
            out.retain(|(o, _)| o.key != kv.key);
            out.push((kv, place));
        }
        out
    }
}

/// Splits an action path inside a namespace: `a` or `pkg/a`.
pub(crate) fn split_path(path: &str) -> Result<(Option<&str>, &str), ControllerError> {
    match path.split_once('/') {
        None => {
            check_name(path)?;
            Ok((None, path))
        }
        Some((pkg, name)) => {
            check_name(pkg)?;
            check_name(name)?;
            Ok((Some(pkg), name))
        }
    }
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
    /// The action `ns/name` (`name` may be `pkg/a`), through a short-lived cache.
    pub(crate) async fn cached_action(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Action>, ControllerError> {
        let key = (ns.to_string(), name.to_string());
        self.actions
            .get_or_fetch(&key, async {
                Ok::<_, ControllerError>(self.store.action(ns, name, false).await?)
            })
            .await?
            .ok_or(ControllerError::NotFound)
    }

    fn forget_action(&self, ns: &str, name: &str) {
        self.actions.forget(&(ns.to_string(), name.to_string()));
    }

    /// Finds the action a request names as `ns` (the path's namespace, `_` for the caller's)
    /// and `path` (`a`, or `pkg/a` through a package or a binding), checking that `who` may
    /// use it: its own namespace, or a package another namespace published (403 otherwise).
    pub async fn resolve(
        &self,
        who: &Identity,
        ns: &str,
        path: &str,
    ) -> Result<Resolved, ControllerError> {
        let (ns, own) = path_namespace(who, ns);
        let (pkg, name) = split_path(path)?;
        let Some(pkg) = pkg else {
            if !own {
                return Err(ControllerError::Forbidden(ns.to_string()));
            }
            let action = self.cached_action(ns, name).await?;
            return Ok(Resolved {
                action,
                inherited: Vec::new(),
                inherited_places: Vec::new(),
                shared: false,
            });
        };
        let package = self.visible_package(ns, own, pkg).await?;
        let places = |p: &gust_model::Package| -> Vec<String> {
            p.parameters
                .iter()
                .map(|kv| secret_place("packages", &p.namespace, &p.name, &kv.key))
                .collect()
        };
        let (home, inherited, inherited_places) = match &package.binding {
            None => (
                package.clone(),
                package.parameters.clone(),
                places(&package),
            ),
            Some(b) => {
                let target = self.bound_package(who, b).await?;
                let mut inherited = target.parameters.clone();
                inherited.extend(package.parameters.iter().cloned());
                let mut inherited_places = places(&target);
                inherited_places.extend(places(&package));
                (target, inherited, inherited_places)
            }
        };
        let action = self
            .cached_action(&home.namespace, &format!("{}/{name}", home.name))
            .await?;
        Ok(Resolved {
            action,
            inherited,
            inherited_places,
            shared: !own || package.binding.is_some(),
        })
    }

    pub async fn get_action(
        &self,
        who: &Identity,
        ns: &str,
        path: &str,
        code: bool,
    ) -> Result<Action, ControllerError> {
        let resolved = self.resolve(who, ns, path).await?;
        let mut action = if code {
            self.store
                .action(&resolved.action.namespace, &resolved.action.name, true)
                .await?
                .ok_or(ControllerError::NotFound)?
        } else {
            (*resolved.action).clone()
        };
        if resolved.shared {
            action.parameters = resolved.parameters();
        }
        if self.defines_composition(&action.exec.kind) {
            // A composition has its definition (a sequence's components), not code.
            action.exec.code = None;
        }
        hide_secrets(&mut action.parameters);
        Ok(action)
    }

    /// The actions of namespace `ns` (all of them), or of its package `pkg` (through a binding,
    /// the bound package's).
    pub async fn list_actions(
        &self,
        who: &Identity,
        ns: &str,
        pkg: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Action>, ControllerError> {
        let (home, pkg) = self.listing_scope(who, ns, pkg).await?;
        let mut actions = self
            .store
            .list_actions(&home, pkg.as_deref(), skip, limit)
            .await?;
        for a in &mut actions {
            hide_secrets(&mut a.parameters);
        }
        Ok(actions)
    }

    pub async fn count_actions(
        &self,
        who: &Identity,
        ns: &str,
        pkg: Option<&str>,
    ) -> Result<u64, ControllerError> {
        let (home, pkg) = self.listing_scope(who, ns, pkg).await?;
        Ok(self.store.count_actions(&home, pkg.as_deref()).await?)
    }

    /// Where a listing of `ns`'s actions (or its package `pkg`'s) reads: the namespace and
    /// package that hold them.
    async fn listing_scope(
        &self,
        who: &Identity,
        ns: &str,
        pkg: Option<&str>,
    ) -> Result<(String, Option<String>), ControllerError> {
        let (ns, own) = path_namespace(who, ns);
        let Some(pkg) = pkg else {
            if !own {
                return Err(ControllerError::Forbidden(ns.to_string()));
            }
            return Ok((ns.to_string(), None));
        };
        check_name(pkg)?;
        let package = self.visible_package(ns, own, pkg).await?;
        let home = match &package.binding {
            Some(b) => self.bound_package(who, b).await?,
            None => package,
        };
        Ok((home.namespace.clone(), Some(home.name.clone())))
    }

    pub async fn delete_action(&self, ns: &str, path: &str) -> Result<Action, ControllerError> {
        split_path(path)?;
        let a = self.store.delete_action(ns, path).await?;
        self.forget_action(ns, path);
        let mut a = a.ok_or(ControllerError::NotFound)?;
        // Its async delivery config goes with it, as a Lambda function's does (a new action
        // of the name starts without one); deliveries in progress keep theirs.
        if let Err(e) = self.delete_delivery_config(ns, path).await {
            tracing::warn!(namespace = ns, action = path, error = %e, "cannot delete a deleted action's delivery config");
        }
        hide_secrets(&mut a.parameters);
        Ok(a)
    }

    /// Creates or (with `overwrite`) updates an action. New code is compiled before anything
    /// is stored; invalid code is a 400 with the compiler's reason and changes nothing.
    pub async fn put_action(
        &self,
        who: &Identity,
        name: &str,
        put: ActionPut,
        overwrite: bool,
    ) -> Result<Action, ControllerError> {
        let ns = who.namespace.as_str();
        let (pkg, simple) = split_path(name)?;
        if let Some(pkg) = pkg {
            match self.store.package(ns, pkg).await? {
                None => return Err(ControllerError::NotFound),
                Some(p) if p.binding.is_some() => {
                    return Err(bad("Operation not permitted on package binding."));
                }
                Some(_) => {}
            }
        }
        if let Some(n) = &put.name
            && n != simple
            && n != name
        {
            return Err(ControllerError::NameMismatch {
                body: n.clone(),
                path: name.to_string(),
            });
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
            return Err(ControllerError::ParametersTooLarge {
                size,
                max: self.system.max_parameters,
            });
        }
        for p in &parameters {
            if p.key.is_empty() {
                return Err(bad("A parameter key must not be empty."));
            }
            check_depth("parameter", p)?;
        }
        let stored = existing.as_ref().map_or(&[][..], |e| &e.parameters[..]);
        let parameters = self.seal_parameters("actions", ns, name, parameters, stored)?;

        let (exec, code, code_hash) = match (put.exec, &existing) {
            (Some(exec), _) => {
                let (exec, code, hash) = self.accept_code(who, name, exec).await?;
                (exec, Some(code), hash)
            }
            (None, Some(e)) => (e.exec.clone(), None, e.code_hash.clone()),
            (None, None) => return Err(bad("exec undefined")),
        };
        // Only Node.js instances run several activations at once; a Wasm activation always
        // has an instance of its own, so any concurrency holds for it.
        let node = self
            .kinds()
            .resolve(&exec.kind)
            .is_some_and(|k| k.family == gust_runtime_process::kinds::Family::Node);
        if limits.concurrency > 1 && !node && exec.kind != "wasm" {
            return Err(bad(format!(
                "limits.concurrency must be 1 for kind '{}': only nodejs kinds run several activations in one instance.",
                exec.kind
            )));
        }

        let mut annotations = match put.annotations {
            Some(a) => a,
            None => existing
                .as_ref()
                .map(|e| e.annotations.clone())
                .unwrap_or_default(),
        };
        for a in &annotations {
            check_depth("annotation", a)?;
            check_not_secret(a)?;
        }
        annotations.retain(|a| a.key != "exec");
        annotations.push(KeyValue::new("exec", json!(exec.kind)));

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
        // OpenWhisk answers with the code it stored (base64 when binary).
        let mut action = action;
        hide_secrets(&mut action.parameters);
        if let Some(code) = code.filter(|_| !self.defines_composition(&action.exec.kind)) {
            action.exec.code = Some(if action.exec.binary {
                base64::engine::general_purpose::STANDARD.encode(code)
            } else {
                String::from_utf8(code).unwrap_or_default()
            });
        }
        Ok(action)
    }

    /// Decodes, size-checks and compiles new code; returns the exec to store (without code),
    /// the code and its hash.
    async fn accept_code(
        &self,
        who: &Identity,
        name: &str,
        exec: ExecPut,
    ) -> Result<(Exec, Vec<u8>, String), ControllerError> {
        if Kinds::is_process_kind(&exec.kind) {
            return self.accept_process_code(exec);
        }
        if let Some(composer) = self.composer_for_kind(&exec.kind) {
            let exec = composer.check(self, who, name, exec).await?;
            return Ok((exec, Vec::new(), String::new()));
        }
        if exec.kind != WASM {
            return Err(self.unsupported_kind(&exec.kind));
        }
        let Some(text) = exec.code else {
            return Err(bad("exec.code is required for kind 'wasm'."));
        };
        let code = self.decode_code(&text)?;
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
            components: None,
            http: self.runtime.is_http_handler(&hash),
        };
        Ok((exec, code, hash))
    }

    /// Whether actions of `kind` are compositions defined for a composer.
    fn defines_composition(&self, kind: &str) -> bool {
        self.composer_for_kind(kind).is_some()
    }

    /// The composer whose compositions are of `kind`.
    fn composer_for_kind(&self, kind: &str) -> Option<&Arc<dyn crate::Composer>> {
        self.composers.iter().find(|c| c.kinds().contains(&kind))
    }

    fn unsupported_kind(&self, kind: &str) -> ControllerError {
        let mut offered = vec![WASM.to_string()];
        for composer in &self.composers {
            offered.extend(composer.kinds().iter().map(|k| k.to_string()));
        }
        offered.extend(self.kinds().all().iter().map(|k| k.name.clone()));
        offered.extend(self.kinds().lambda_examples());
        bad(format!(
            "kind '{kind}' is not supported; this server runs: {}.",
            offered.join(", ")
        ))
    }

    /// Decodes base64 code, refusing it (413) past the code limit before decoding.
    fn decode_code(&self, text: &str) -> Result<Vec<u8>, ControllerError> {
        let text = text.trim();
        let padding = text.bytes().rev().take_while(|b| *b == b'=').count() as u64;
        let decoded_len = (text.len() as u64 / 4 * 3).saturating_sub(padding);
        self.check_code_size(decoded_len)?;
        let code = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| bad(format!("exec.code is not valid base64: {e}.")))?;
        self.check_code_size(code.len() as u64)?;
        Ok(code)
    }

    fn check_code_size(&self, len: u64) -> Result<(), ControllerError> {
        if len > self.system.max_code {
            return Err(ControllerError::TooLarge(format!(
                "Code larger than allowed: {len} > {} bytes.",
                self.system.max_code
            )));
        }
        Ok(())
    }

    /// Node.js, Python and native code: source text, or (binary) a base64 zip or executable,
    /// checked for its entry file; the kind is resolved (`nodejs:default` -> `nodejs:20`).
    fn accept_process_code(
        &self,
        exec: ExecPut,
    ) -> Result<(Exec, Vec<u8>, String), ControllerError> {
        let Some(kind) = self.kinds().resolve(&exec.kind) else {
            return Err(self.unsupported_kind(&exec.kind));
        };
        if kind.lambda.is_some() {
            return self.accept_lambda_code(kind, exec);
        }
        let Some(text) = exec.code else {
            return Err(bad(format!(
                "exec.code is required for kind '{}'.",
                kind.name
            )));
        };
        if let Some(main) = &exec.main
            && !valid_entry_point(main)
        {
            return Err(bad(format!(
                "exec.main '{main}' is not a function name (letters, digits, _ and $, not starting with a digit)."
            )));
        }
        // OpenWhisk's rule: code that reads as base64 is binary, whatever the flag says; a
        // client that leaves the flag out (the npm client does) sends zips that way. Without
        // the flag, base64 that does not decode to a zip is taken as the source it may be.
        let (binary, code) = if exec.binary == Some(true) {
            (true, self.decode_code(&text)?)
        } else {
            match looks_like_base64(&text).then(|| self.decode_code(&text)) {
                Some(Ok(zip)) if zip.starts_with(b"PK\x03\x04") => (true, zip),
                Some(Err(e @ ControllerError::TooLarge(_))) => return Err(e),
                _ => {
                    self.check_code_size(text.len() as u64)?;
                    (false, text.into_bytes())
                }
            }
        };
        gust_runtime_process::code::check(kind.family, &code, binary).map_err(bad)?;
        let hash = gust_runtime_wasm::code_hash(&code);
        let exec = Exec {
            kind: kind.name,
            code: None,
            binary,
            main: exec.main,
            components: None,
            http: false,
        };
        Ok((exec, code, hash))
    }
}

impl Controller {
    /// A Lambda function's code: a zip (with a `bootstrap` for a `provided` runtime) and its
    /// handler (decision 0025).
    fn accept_lambda_code(
        &self,
        kind: gust_runtime_process::kinds::Kind,
        exec: ExecPut,
    ) -> Result<(Exec, Vec<u8>, String), ControllerError> {
        let provided = kind.lambda == Some(gust_model::lambda::Runtime::Provided);
        let Some(text) = exec.code else {
            return Err(bad(format!(
                "exec.code (a base64 zip) is required for kind '{}'.",
                kind.name
            )));
        };
        let code = self.decode_code(&text)?;
        if !gust_runtime_process::code::is_zip(&code) {
            return Err(bad(format!(
                "A Lambda function's code (kind '{}') is a zip archive, given in base64.",
                kind.name
            )));
        }
        let names = gust_runtime_process::code::zip_names(&code).map_err(bad)?;
        if provided && !names.iter().any(|n| n == "bootstrap") {
            return Err(bad(
                "The zip of a provided runtime holds no executable named bootstrap at its top level.",
            ));
        }
        let main = match exec.main {
            Some(h) if valid_handler(&h) => Some(h),
            Some(h) => {
                return Err(bad(format!(
                    "The handler '{h}' is not a Lambda handler (module.function: letters, digits, _, -, / and dots, at most 128 characters)."
                )));
            }
            None if provided => None,
            None => {
                return Err(bad(format!(
                    "exec.main, the handler (for example app.handler), is required for kind '{}'.",
                    kind.name
                )));
            }
        };
        let hash = gust_runtime_wasm::code_hash(&code);
        let exec = Exec {
            kind: kind.name,
            code: None,
            binary: true,
            main,
            components: None,
            http: false,
        };
        Ok((exec, code, hash))
    }
}

/// A Lambda handler: `module.function` (the module may have a folder path), as Lambda allows.
fn valid_handler(h: &str) -> bool {
    h.len() <= 128
        && h.contains('.')
        && !h.starts_with(['/', '.'])
        && !h.ends_with('.')
        && !h.contains("..")
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./$".contains(&b))
}

/// OpenWhisk's test for binary code: trimmed, not empty, a multiple of 4 long, and only the
/// base64 alphabet with its padding.
fn looks_like_base64(code: &str) -> bool {
    let t = code.trim();
    let body = t.trim_end_matches('=');
    !t.is_empty()
        && t.len().is_multiple_of(4)
        && t.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A JavaScript or Python identifier: what `exec.main` may name.
fn valid_entry_point(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 256
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_told_from_source_as_openwhisk_tells_it() {
        use super::looks_like_base64 as b64;
        assert!(b64("UEsDBAoAAAAAAA=="));
        assert!(!b64("function main() { return {} }"));
        assert!(!b64("abc"));
        assert!(!b64(""));
        assert!(!b64("ab=c"));
    }
}
