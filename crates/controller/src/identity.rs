//! Identity: who a request's key names (authentication: the key itself, or a signature made
//! with it), and which namespaces it may use (authorization: its own; `_` names it).

use std::sync::Arc;

use gust_model::{Identity, Namespace};

use crate::{Controller, ControllerError};

impl Controller {
    async fn namespace_by_uuid(
        &self,
        uuid: &str,
    ) -> Result<Option<Arc<Namespace>>, ControllerError> {
        self.identities
            .get_or_fetch(&uuid.to_string(), async {
                Ok::<_, ControllerError>(self.store.namespace_by_uuid(uuid).await?)
            })
            .await
    }

    /// Namespace `name`, through the same short-lived cache as [`Controller::owner`].
    pub(crate) async fn namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Arc<Namespace>>, ControllerError> {
        self.owners
            .get_or_fetch(&name.to_string(), async {
                Ok::<_, ControllerError>(self.store.namespace(name).await?)
            })
            .await
    }

    /// The identity of namespace `name`'s owner (web actions run as their owner); `None` if
    /// there is no such namespace.
    pub async fn owner(&self, name: &str) -> Result<Option<Identity>, ControllerError> {
        let ns = self.namespace_by_name(name).await?;
        Ok(ns.map(|ns| Identity {
            namespace: ns.name.clone(),
            uuid: ns.uuid.clone(),
            limits: ns.limits,
        }))
    }

    /// Checks an API key (`uuid`, `key`); 401 if unknown or wrong.
    pub async fn authenticate(&self, uuid: &str, key: &str) -> Result<Identity, ControllerError> {
        match self.namespace_by_uuid(uuid).await? {
            Some(ns) if constant_time_eq(ns.key.as_bytes(), key.as_bytes()) => Ok(Identity {
                namespace: ns.name.clone(),
                uuid: ns.uuid.clone(),
                limits: ns.limits,
            }),
            _ => Err(ControllerError::Unauthenticated),
        }
    }

    /// Whether `uuid` names a namespace key: a signed request's body is read only then.
    pub async fn is_key(&self, uuid: &str) -> Result<bool, ControllerError> {
        Ok(self.namespace_by_uuid(uuid).await?.is_some())
    }

    /// Checks a request signed with the secret of namespace key `uuid` (AWS Signature
    /// Version 4: the access key id is the key's uuid, the secret access key the key):
    /// `sign` computes the signature the secret gives the request, compared with `given` in
    /// time that depends on their lengths only.
    pub async fn verify_signature(
        &self,
        uuid: &str,
        given: &[u8],
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<SignatureCheck, ControllerError> {
        let Some(ns) = self.namespace_by_uuid(uuid).await? else {
            return Ok(SignatureCheck::UnknownKey);
        };
        if !constant_time_eq(&sign(ns.key.as_bytes()), given) {
            return Ok(SignatureCheck::Mismatch);
        }
        Ok(SignatureCheck::Verified(Identity {
            namespace: ns.name.clone(),
            uuid: ns.uuid.clone(),
            limits: ns.limits,
        }))
    }

    /// Resolves the namespace of a path (`_` is the caller's own) and checks the caller may
    /// use it; 403 otherwise.
    pub fn authorize<'a>(
        &self,
        who: &'a Identity,
        ns: &'a str,
    ) -> Result<&'a str, ControllerError> {
        who.own_namespace(ns)
            .ok_or_else(|| ControllerError::Forbidden(ns.to_string()))
    }

    /// The namespace record of the caller (for its limits).
    pub async fn namespace(&self, name: &str) -> Result<Namespace, ControllerError> {
        self.store
            .namespace(name)
            .await?
            .ok_or(ControllerError::NotFound)
    }
}

/// What [`Controller::verify_signature`] found.
#[derive(Debug)]
pub enum SignatureCheck {
    /// The key gives this signature: the request is its namespace's.
    Verified(Identity),
    /// No namespace key has this uuid.
    UnknownKey,
    /// The key exists and gives another signature (a wrong secret, or a changed request).
    Mismatch,
}

/// Whether two secrets are equal, in time that depends on their length only (a caller timing
/// the answer learns nothing of where they differ).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
