//! Idempotency keys (decision 0028): an invocation that carries a key (the `Idempotency-Key`
//! header) is made once per key and namespace within [`IDEMPOTENCY_TTL`]; a repeated request
//! gets the first activation's id and runs nothing. The key is claimed with a new activation
//! id, the action and a digest of the parameters before the invocation is made, and released
//! when the invocation is refused, so a retried request may run. The same key with another
//! action is a 409 and with other parameters a 422: a key never answers another action's
//! activation. A claim whose activation was neither journaled nor recorded
//! [`TAKE_OVER_AFTER`] after it was made (its process died between the claim and the
//! invocation) is taken over by the next request with the key, which runs.

use std::time::Duration;

use gust_model::names;
use gust_model::time::now_ms;
use gust_store::IdempotencyClaim;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{Controller, ControllerError, Identity, Resolved};

/// How long a key names its first activation.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long after its claim a key whose activation never reached the journal is taken over.
pub const TAKE_OVER_AFTER: Duration = Duration::from_secs(30);

/// Longest key, in bytes.
const MAX_KEY: usize = 256;

/// What a claimed key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent {
    /// The key is new: invoke with this activation id.
    New(String),
    /// The key was used within [`IDEMPOTENCY_TTL`] for the same action and parameters: its
    /// first activation's id; run nothing.
    Repeated(String),
}

/// Checks an idempotency key: 1 to 256 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), ControllerError> {
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_KEY || !visible {
        return Err(ControllerError::BadRequest(format!(
            "The Idempotency-Key header must be 1 to {MAX_KEY} visible ASCII characters."
        )));
    }
    Ok(())
}

/// The SHA-256 (hex) of `params` written with every object's keys sorted, so the same
/// parameters in another order have the same digest.
pub fn params_digest(params: &Map<String, Value>) -> String {
    fn object(m: &Map<String, Value>, out: &mut String) {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        out.push('{');
        for (n, k) in keys.into_iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(k.clone()).to_string());
            out.push(':');
            value(&m[k], out);
        }
        out.push('}');
    }
    fn value(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => object(m, out),
            Value::Array(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    value(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    object(params, &mut text);
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Controller {
    /// Claims `key` (checked) of `who`'s namespace for a new activation id of `action` with
    /// `params` (the request's parameters).
    pub async fn claim_idempotency_key(
        &self,
        who: &Identity,
        key: &str,
        action: &Resolved,
        params: &Map<String, Value>,
    ) -> Result<Idempotent, ControllerError> {
        check_idempotency_key(key)?;
        let ns = &who.namespace;
        let action = &format!("/{}/{}", action.action.namespace, action.action.name);
        let digest = params_digest(params);
        let claim_at = |now: u64| IdempotencyClaim {
            activation_id: names::new_activation_id(),
            action: action.to_string(),
            digest: digest.clone(),
            claimed_ms: now,
            expires_ms: now + IDEMPOTENCY_TTL.as_millis() as u64,
        };
        // A take-over that lost its race reads the key again: its winner holds it now.
        for _ in 0..3 {
            let now = now_ms();
            let claim = claim_at(now);
            let Some(held) = self
                .store
                .claim_idempotency_key(ns, key, &claim, now)
                .await?
            else {
                return Ok(Idempotent::New(claim.activation_id));
            };
            if held.action != *action {
                return Err(ControllerError::IdempotencyKeyReused(key.to_string()));
            }
            if held.digest != digest {
                return Err(ControllerError::IdempotencyKeyParameters(key.to_string()));
            }
            let old = now.saturating_sub(held.claimed_ms) >= TAKE_OVER_AFTER.as_millis() as u64;
            if !old
                || self.store.is_accepted(ns, &held.activation_id).await?
                || self
                    .store
                    .activation(ns, &held.activation_id)
                    .await?
                    .is_some()
            {
                return Ok(Idempotent::Repeated(held.activation_id));
            }
            // Claimed long ago and never invoked: the claimer died before the invocation.
            if self
                .store
                .replace_idempotency_key(ns, key, &held.activation_id, &claim)
                .await?
            {
                tracing::info!(namespace = %ns, first = %held.activation_id, "an idempotency key whose activation never started was taken over");
                return Ok(Idempotent::New(claim.activation_id));
            }
        }
        Err(ControllerError::Internal(format!(
            "the Idempotency-Key '{key}' kept being taken over"
        )))
    }

    /// Frees `key` claimed for activation `id`, whose invocation was refused.
    pub async fn release_idempotency_key(&self, who: &Identity, key: &str, id: &str) {
        if let Err(e) = self
            .store
            .release_idempotency_key(&who.namespace, key, id)
            .await
        {
            tracing::warn!(error = %e, "cannot release an idempotency key");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_256() {
        for ok in ["a", "order-42", "x/y:z=1", &"k".repeat(256)] {
            assert!(check_idempotency_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", " a", "a b", "é", "tab\t", &"k".repeat(257)] {
            assert!(check_idempotency_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_digest_of_parameters_ignores_their_order() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"x": 1, "y": {"b": [1, {"d": 2, "c": 3}], "a": "s"}}"#)
                .unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"y": {"a": "s", "b": [1, {"c": 3, "d": 2}]}, "x": 1}"#)
                .unwrap();
        assert_eq!(params_digest(&a), params_digest(&b));
        let c: Map<String, Value> = serde_json::from_str(r#"{"x": 2}"#).unwrap();
        assert_ne!(params_digest(&a), params_digest(&c));
        assert_eq!(params_digest(&Map::new()).len(), 64);
        // Not confused by a key that looks like a separator.
        let d: Map<String, Value> = serde_json::from_str(r#"{"a,b": 1}"#).unwrap();
        let e: Map<String, Value> = serde_json::from_str(r#"{"a": 1, "b": 1}"#).unwrap();
        assert_ne!(params_digest(&d), params_digest(&e));
    }
}
