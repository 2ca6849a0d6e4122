//! Actions: their documents and their code, stored apart so that listing and resolving an
//! action never read its code.

use async_trait::async_trait;
use gust_model::Action;

use crate::{PutMode, Result};

#[async_trait]
pub trait ActionStore: Send + Sync + 'static {
    /// The action, with `exec.code` filled in (base64 when binary) when `with_code`.
    async fn action(&self, namespace: &str, name: &str, with_code: bool) -> Result<Option<Action>>;
    /// The raw code of the action.
    async fn action_code(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>>;
    /// Writes an action. `code` replaces the stored code when given; an update without code
    /// keeps the old code (and `action.code_hash` must then be the old hash).
    async fn put_action(&self, action: &Action, code: Option<&[u8]>, mode: PutMode) -> Result<()>;
    /// Deletes and returns the action.
    async fn delete_action(&self, namespace: &str, name: &str) -> Result<Option<Action>>;
    /// The actions of a namespace (every one, also those in packages), or of one of its
    /// packages, by name.
    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Action>>;
    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> Result<u64>;
    /// The code hashes of every action of every namespace (for sweeping compiled artifacts).
    async fn code_hashes(&self) -> Result<Vec<String>>;
}
