//! Reading activation records.

use gust_model::{Activation, names};
use gust_store::ActivationQuery;
use serde_json::value::RawValue;

use crate::{Controller, ControllerError};

impl Controller {
    pub async fn activation(&self, ns: &str, id: &str) -> Result<Activation, ControllerError> {
        if !names::is_activation_id(id) {
            return Err(ControllerError::BadRequest(
                "The activation id is not valid.".into(),
            ));
        }
        self.store
            .activation(ns, id)
            .await?
            .ok_or(ControllerError::NotFound)
    }

    /// Stored records (raw `Activation` JSON), newest first.
    pub async fn list_activations(
        &self,
        q: &ActivationQuery,
    ) -> Result<Vec<Box<RawValue>>, ControllerError> {
        Ok(self.store.list_activations(q).await?)
    }

    pub async fn count_activations(&self, q: &ActivationQuery) -> Result<u64, ControllerError> {
        Ok(self.store.count_activations(q).await?)
    }
}
