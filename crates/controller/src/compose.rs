//! The hook through which compositions (sequences, conductor actions, crate `gust-compose`)
//! and built-in actions (the system namespace's, crate `gust-events`) plug into the core.
//! The core knows only that some actions are run by a composer instead of their code, as the
//! composer says; what they are and how they run is the composer's.

use std::sync::Arc;

use async_trait::async_trait;
use gust_model::{Action, Exec};

use crate::{Controller, ControllerError, ExecPut, Identity, Invocation, InvokeOutcome};

/// Runs compositions: actions whose invocation runs other actions.
#[async_trait]
pub trait Composer: Send + Sync + 'static {
    /// The kinds whose `exec` defines a composition instead of code (`sequence`): the core
    /// accepts them at create time through [`Composer::check`].
    fn kinds(&self) -> &'static [&'static str];

    /// Whether invoking `action` runs a composition instead of the action's own code.
    fn composes(&self, action: &Action) -> bool;

    /// Whether `action` has no code of its own and this composer runs it also where only
    /// code runs (a composition's step): the built-in actions.
    fn replaces_code(&self, action: &Action) -> bool {
        let _ = action;
        false
    }

    /// Checks the definition of `who`'s composition `name` (an `exec` of one of
    /// [`Composer::kinds`]) and returns the `exec` to store.
    async fn check(
        &self,
        core: &Controller,
        who: &Identity,
        name: &str,
        exec: ExecPut,
    ) -> Result<Exec, ControllerError>;

    /// Starts a composition: journals it, runs it, and answers as [`Controller::invoke`]
    /// does. Its steps are invoked through [`Controller::invoke_code`].
    async fn compose(
        &self,
        core: &Arc<Controller>,
        inv: Invocation<'_>,
    ) -> Result<InvokeOutcome, ControllerError>;
}
