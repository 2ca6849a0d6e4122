//! Event source mappings: one per rule of a stream trigger, with the stream sequence up to
//! which its records are done and what its runner last said of it (decision 0027). Only the
//! process that holds the stream trigger's subscription writes them; a rule's mapping goes
//! with the rule, a namespace's mappings with the namespace.

use async_trait::async_trait;
use gust_model::Mapping;

use crate::Result;

#[async_trait]
pub trait MappingStore: Send + Sync + 'static {
    /// The mapping of rule `rule`, if one was written.
    async fn mapping(&self, namespace: &str, rule: &str) -> Result<Option<Mapping>>;
    /// The mappings of a namespace, by rule name.
    async fn mappings(&self, namespace: &str) -> Result<Vec<Mapping>>;
    /// Creates or replaces a rule's mapping. Writes nothing, and returns false, when the rule
    /// does not exist (any more): a runner that has not stopped yet cannot bring back the
    /// mapping of a rule deleted meanwhile.
    async fn put_mapping(&self, mapping: &Mapping) -> Result<bool>;
    /// Deletes a rule's mapping; returns whether there was one.
    async fn delete_mapping(&self, namespace: &str, rule: &str) -> Result<bool>;
}
