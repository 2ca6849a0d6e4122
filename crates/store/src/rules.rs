//! Rules. A rule names its trigger by its fully qualified name (`/ns/t`, kept in a column of
//! its own so a fire finds its rules by index) and carries its own status (decision 0020).

use async_trait::async_trait;
use gust_model::Rule;

use crate::{PutMode, Result};

#[async_trait]
pub trait RuleStore: Send + Sync + 'static {
    async fn rule(&self, namespace: &str, name: &str) -> Result<Option<Rule>>;
    /// Writes a rule (`Replace` compares versions like `put_action`).
    async fn put_rule(&self, rule: &Rule, mode: PutMode) -> Result<()>;
    /// Deletes and returns the rule.
    async fn delete_rule(&self, namespace: &str, name: &str) -> Result<Option<Rule>>;
    /// The rules of a namespace by name.
    async fn list_rules(&self, namespace: &str, skip: u64, limit: u64) -> Result<Vec<Rule>>;
    async fn count_rules(&self, namespace: &str) -> Result<u64>;
    /// The rules of `namespace` that name trigger `trigger` (`/ns/t`), by name.
    async fn rules_of_trigger(&self, namespace: &str, trigger: &str) -> Result<Vec<Rule>>;
}
