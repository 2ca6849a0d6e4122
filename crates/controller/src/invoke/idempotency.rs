//! Idempotency keys (decision 0028): an invocation that carries a key (the `Idempotency-Key`
//! header) is made once per key and namespace within [`IDEMPOTENCY_TTL`]; a repeated request
//! gets the first activation's id and runs nothing. The key is claimed with a new activation
//! id before the invocation is made, and released when the invocation is refused, so a
//! retried request may run.

use std::time::Duration;

use gust_model::names;
use gust_model::time::now_ms;

use crate::{Controller, ControllerError, Identity};

/// How long a key names its first activation.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest key, in bytes.
const MAX_KEY: usize = 256;

/// What a claimed key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent {
    /// The key is new: invoke with this activation id.
    New(String),
    /// The key was used within [`IDEMPOTENCY_TTL`]: its first activation's id; run nothing.
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

impl Controller {
    /// Claims `key` (checked) of `who`'s namespace for a new activation id.
    pub async fn claim_idempotency_key(
        &self,
        who: &Identity,
        key: &str,
    ) -> Result<Idempotent, ControllerError> {
        check_idempotency_key(key)?;
        let id = names::new_activation_id();
        let now = now_ms();
        let expires = now + IDEMPOTENCY_TTL.as_millis() as u64;
        Ok(
            match self
                .store
                .claim_idempotency_key(&who.namespace, key, &id, now, expires)
                .await?
            {
                Some(first) => Idempotent::Repeated(first),
                None => Idempotent::New(id),
            },
        )
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
}
