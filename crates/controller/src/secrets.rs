//! Secret parameters (decision 0022): sealed in the write path before the store sees them,
//! shown without their values, and handed on still sealed to the invoker, which alone opens
//! them on the way into a sandbox.
//!
//! **Invariant:** a value a client sends is sealed as it is, never opened (a sealed string
//! copied from elsewhere stays that string); a non-secret parameter is never opened.

use gust_model::{KeyValue, secret_place};
use serde_json::Value;

use crate::{Controller, ControllerError};

impl Controller {
    /// `params` as they are stored for the entity `kind` (`actions`, `packages`, `triggers`)
    /// `ns`/`entity`: every secret's value sealed for its place. A secret sent without a
    /// value (or `null`) keeps the sealed value `existing` holds for a secret of that key; a
    /// 400 if there is none.
    pub fn seal_parameters(
        &self,
        kind: &str,
        ns: &str,
        entity: &str,
        params: Vec<KeyValue>,
        existing: &[KeyValue],
    ) -> Result<Vec<KeyValue>, ControllerError> {
        params
            .into_iter()
            .map(|mut p| {
                if !p.secret {
                    return Ok(p);
                }
                if p.value.is_null() {
                    let kept = existing
                        .iter()
                        .find(|e| e.secret && e.key == p.key && !e.value.is_null());
                    let Some(kept) = kept else {
                        return Err(ControllerError::BadRequest(format!(
                            "The secret parameter '{}' has no value and none is stored.",
                            p.key
                        )));
                    };
                    p.value = kept.value.clone();
                    return Ok(p);
                }
                let plain = serde_json::to_vec(&p.value)
                    .map_err(|e| ControllerError::Internal(e.to_string()))?;
                let place = secret_place(kind, ns, entity, &p.key);
                p.value = Value::String(self.keyring.seal(&plain, place.as_bytes()));
                Ok(p)
            })
            .collect()
    }
}

/// Refuses `secret` on an annotation: only parameters are sealed.
pub(crate) fn check_not_secret(annotation: &KeyValue) -> Result<(), ControllerError> {
    if annotation.secret {
        return Err(ControllerError::BadRequest(format!(
            "The annotation '{}' cannot be secret: only parameters are.",
            annotation.key
        )));
    }
    Ok(())
}
