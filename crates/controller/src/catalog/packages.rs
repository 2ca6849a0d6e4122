//! Packages and bindings: create, read, update, delete, list, with OpenWhisk's rules for
//! sharing (`publish`) and binding to another namespace's shared package.

use std::sync::Arc;

use gust_model::entity::{bump_version, hide_secrets};
use gust_model::limits::{MAX_JSON_DEPTH, json_depth};
use gust_model::time::now_ms;
use gust_model::{BindingRef, KeyValue, Package, names};
use gust_store::PutMode;
use serde::Deserialize;

use crate::secrets::check_not_secret;
use crate::{Controller, ControllerError, Identity};

/// The name OpenWhisk reserves for "no package" in web action paths.
pub const DEFAULT_PACKAGE: &str = "default";

/// The body of `PUT .../packages/{name}`: every field optional; an update keeps what is absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PackagePut {
    pub parameters: Option<Vec<KeyValue>>,
    pub annotations: Option<Vec<KeyValue>>,
    pub publish: Option<bool>,
    /// `{}` (or absent) for a package; `{namespace, name}` for a binding.
    #[serde(default)]
    pub binding: Option<serde_json::Value>,
    #[serde(default)]
    pub version: Option<String>,
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

/// The binding a PUT body asks for: `None` for a plain package.
fn binding_of(put: &PackagePut) -> Result<Option<BindingRef>, ControllerError> {
    match &put.binding {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(m)) if m.is_empty() => Ok(None),
        Some(v) => {
            let b: BindingRef = serde_json::from_value(v.clone()).map_err(|e| {
                ControllerError::malformed(format_args!(
                    "binding must be {{\"namespace\": ..., \"name\": ...}}: {e}"
                ))
            })?;
            check_name(&b.name)?;
            names::check_namespace(&b.namespace).map_err(|e| bad(e.to_string()))?;
            Ok(Some(b))
        }
    }
}

/// The namespace a request's path names for `who` (`_` is the caller's own), and whether it
/// is the caller's own.
pub(crate) fn path_namespace<'a>(who: &'a Identity, ns: &'a str) -> (&'a str, bool) {
    match who.own_namespace(ns) {
        Some(own) => (own, true),
        None => (ns, false),
    }
}

impl Controller {
    /// Checks an entity's parameters and annotations (a package's, a trigger's, a rule's):
    /// the parameters within the system's size limit, no empty key, no value nested deeper
    /// than [`MAX_JSON_DEPTH`].
    pub fn check_parameters_and_annotations(
        &self,
        parameters: &[KeyValue],
        annotations: &[KeyValue],
    ) -> Result<(), ControllerError> {
        let size = serde_json::to_vec(parameters).map_or(0, |v| v.len() as u64);
        if size > self.system.max_parameters {
            return Err(ControllerError::ParametersTooLarge {
                size,
                max: self.system.max_parameters,
            });
        }
        for a in annotations {
            check_not_secret(a)?;
        }
        for kv in parameters.iter().chain(annotations) {
            if kv.key.is_empty() {
                return Err(bad("A parameter or annotation key must not be empty."));
            }
            if json_depth(&kv.value) > MAX_JSON_DEPTH {
                return Err(bad(format!(
                    "The parameter or annotation '{}' nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
                    kv.key
                )));
            }
        }
        Ok(())
    }

    /// Package `name` of `ns` as a caller sees it: any of its `own` namespace's (404 if
    /// missing), only a shared one of another namespace (403 otherwise, existing or not).
    pub(crate) async fn visible_package(
        &self,
        ns: &str,
        own: bool,
        name: &str,
    ) -> Result<Arc<Package>, ControllerError> {
        match self.cached_package(ns, name).await? {
            Some(p) if own || p.publish => Ok(p),
            None if own => Err(ControllerError::NotFound),
            _ => Err(ControllerError::Forbidden(ns.to_string())),
        }
    }

    /// The package `ns/name`, through a short-lived cache.
    pub(crate) async fn cached_package(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Package>>, ControllerError> {
        let key = (ns.to_string(), name.to_string());
        self.packages
            .get_or_fetch(&key, async {
                Ok::<_, ControllerError>(self.store.package(ns, name).await?)
            })
            .await
    }

    /// The package binding `b` refers to, if `who` may still use it (it must be shared, or
    /// `who`'s own).
    pub(crate) async fn bound_package(
        &self,
        who: &Identity,
        b: &BindingRef,
    ) -> Result<Arc<Package>, ControllerError> {
        match self.cached_package(&b.namespace, &b.name).await? {
            Some(p) if p.binding.is_none() && (p.publish || p.namespace == who.namespace) => Ok(p),
            _ if b.namespace != who.namespace => {
                Err(ControllerError::Forbidden(b.namespace.clone()))
            }
            _ => Err(ControllerError::NotFound),
        }
    }

    /// Creates or (with `overwrite`) updates a package or binding of `who`'s namespace.
    pub async fn put_package(
        &self,
        who: &Identity,
        name: &str,
        put: PackagePut,
        overwrite: bool,
    ) -> Result<Package, ControllerError> {
        let ns = who.namespace.as_str();
        check_name(name)?;
        if name == DEFAULT_PACKAGE {
            return Err(bad(format!("Package name '{name}' is reserved.")));
        }
        if let Some(n) = &put.name
            && n != name
        {
            return Err(ControllerError::NameMismatch {
                body: n.clone(),
                path: name.to_string(),
            });
        }
        let binding = binding_of(&put)?;
        let existing = self.store.package(ns, name).await?;
        if existing.is_some() && !overwrite {
            return Err(ControllerError::Conflict);
        }
        if let Some(e) = &existing {
            match (&e.binding, &binding, put.binding.is_some()) {
                (None, Some(_), _) => {
                    return Err(bad(
                        "Resource is a package and cannot be converted into a binding.",
                    ));
                }
                (Some(_), None, true) => {
                    return Err(bad(
                        "Resource is a binding and cannot be converted into a package.",
                    ));
                }
                _ => {}
            }
        }
        // An update that does not name the binding keeps it.
        let binding = binding.or_else(|| existing.as_ref().and_then(|e| e.binding.clone()));
        if let Some(b) = &binding {
            if b.namespace == ns && b.name == name {
                return Err(bad(format!(
                    "Package binding '{ns}/{name}' has a circular reference."
                )));
            }
            match self.store.package(&b.namespace, &b.name).await? {
                // Another namespace's package that is not shared is as good as absent, and
                // says nothing about whether it exists.
                Some(t) if !t.publish && t.namespace != ns => {
                    return Err(ControllerError::Forbidden(t.namespace));
                }
                None if b.namespace != ns => {
                    return Err(ControllerError::Forbidden(b.namespace.clone()));
                }
                None => {
                    return Err(bad("Binding references a package that does not exist."));
                }
                Some(t) if t.binding.is_some() => {
                    return Err(bad("Cannot bind to another package binding."));
                }
                Some(_) => {}
            }
        }
        let parameters = put
            .parameters
            .or_else(|| existing.as_ref().map(|e| e.parameters.clone()))
            .unwrap_or_default();
        let annotations = put
            .annotations
            .or_else(|| existing.as_ref().map(|e| e.annotations.clone()))
            .unwrap_or_default();
        self.check_parameters_and_annotations(&parameters, &annotations)?;
        let stored = existing.as_ref().map_or(&[][..], |e| &e.parameters[..]);
        let parameters = self.seal_parameters("packages", ns, name, parameters, stored)?;
        let package = Package {
            namespace: ns.to_string(),
            name: name.to_string(),
            version: existing
                .as_ref()
                .map_or_else(|| "0.0.1".to_string(), |e| bump_version(&e.version)),
            publish: put
                .publish
                .or(existing.as_ref().map(|e| e.publish))
                .unwrap_or(false),
            binding,
            annotations,
            parameters,
            updated: now_ms(),
        };
        let mode = match &existing {
            Some(e) => PutMode::Replace {
                expected_version: e.version.clone(),
            },
            None => PutMode::Create,
        };
        self.store.put_package(&package, mode).await?;
        self.packages.forget(&(ns.to_string(), name.to_string()));
        let mut package = package;
        hide_secrets(&mut package.parameters);
        Ok(package)
    }

    /// A package of `ns` (another namespace's only if shared) and the actions in it (for a
    /// binding, those of the package it binds).
    pub async fn get_package(
        &self,
        who: &Identity,
        ns: &str,
        name: &str,
    ) -> Result<(Package, Vec<gust_model::Action>), ControllerError> {
        check_name(name)?;
        let (ns, own) = path_namespace(who, ns);
        let mut package = (*self.visible_package(ns, own, name).await?).clone();
        hide_secrets(&mut package.parameters);
        // A binding lists the actions of the package it binds, while the caller may use it.
        let home = match &package.binding {
            Some(b) => match self.bound_package(who, b).await {
                Ok(p) => Some((p.namespace.clone(), p.name.clone())),
                Err(ControllerError::Forbidden(_) | ControllerError::NotFound) => None,
                Err(e) => return Err(e),
            },
            None => Some((package.namespace.clone(), package.name.clone())),
        };
        let actions = match home {
            Some((ns, name)) => {
                self.store
                    .list_actions(&ns, Some(&name), 0, u64::MAX >> 1)
                    .await?
            }
            None => Vec::new(),
        };
        let mut actions = actions;
        for a in &mut actions {
            hide_secrets(&mut a.parameters);
        }
        Ok((package, actions))
    }

    /// The packages of `ns`: all of the caller's own, only the shared ones of another.
    pub async fn list_packages(
        &self,
        who: &Identity,
        ns: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Package>, ControllerError> {
        let (ns, own) = path_namespace(who, ns);
        names::check_namespace(ns).map_err(|e| bad(e.to_string()))?;
        let mut packages = self.store.list_packages(ns, !own, skip, limit).await?;
        for p in &mut packages {
            hide_secrets(&mut p.parameters);
        }
        Ok(packages)
    }

    pub async fn count_packages(&self, who: &Identity, ns: &str) -> Result<u64, ControllerError> {
        let (ns, own) = path_namespace(who, ns);
        names::check_namespace(ns).map_err(|e| bad(e.to_string()))?;
        Ok(self.store.count_packages(ns, !own).await?)
    }

    /// Deletes a package of `who`'s namespace; one that still holds actions only with
    /// `force`, which deletes them too.
    pub async fn delete_package(
        &self,
        who: &Identity,
        name: &str,
        force: bool,
    ) -> Result<Package, ControllerError> {
        check_name(name)?;
        let ns = who.namespace.as_str();
        let n = self.store.count_actions(ns, Some(name)).await?;
        if n > 0 && !force {
            return Err(ControllerError::package_not_empty(n));
        }
        let package = self.store.delete_package(ns, name).await?;
        self.packages.forget(&(ns.to_string(), name.to_string()));
        // Its actions went with it (also any created since they were counted).
        self.actions.forget_all();
        let mut package = package.ok_or(ControllerError::NotFound)?;
        hide_secrets(&mut package.parameters);
        Ok(package)
    }
}
