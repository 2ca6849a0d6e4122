//! Failures of triggers, rules and fires. Each variant's doc comment is its message
//! (OpenWhisk's text where it has one); the gateway maps each to one status.

use gust_controller::ControllerError;

/// Every way a trigger, rule or fire request can fail. Caused by the caller, except the
/// host failures that `Core` carries.
#[derive(Debug, thiserror::Error, displaydoc::Display)]
pub enum EventError {
    /// {0}
    Core(#[from] ControllerError),
    /// rule requires a valid trigger and a valid action
    RuleIncomplete,
    /// trigger {0} does not exist
    NoSuchTrigger(String),
    /// action {0} does not exist
    NoSuchAction(String),
    /// A rule's trigger must be in the rule's namespace: {0} is not.
    ForeignTrigger(String),
    /// '{0}' is not a recognized rule state, must be one of ['active', 'inactive']
    BadStatus(String),
    /// Only rules with existing triggers can be activated
    TriggerGone,
    /// Feed name is not valid
    BadFeed,
    /// Resource by this name exists but is not in this collection.
    OtherCollection,
    /// {0}
    Throttled(String),
    /// {0}
    HookUnauthorized(String),
    /// {0}
    HookRefused(String),
    /// The trigger has no webhook.
    NoHook,
}

impl From<gust_store::StoreError> for EventError {
    fn from(e: gust_store::StoreError) -> Self {
        EventError::Core(e.into())
    }
}

impl EventError {
    /// Whether the host caused it (the store, the bus, no invoker), not the request.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, EventError::Core(e) if e.is_host_failure())
    }

    /// Whether the namespace is throttled (its fires or invocations): to retry later.
    pub fn is_throttled(&self) -> bool {
        match self {
            EventError::Core(e) => e.is_throttled(),
            EventError::Throttled(_) => true,
            _ => false,
        }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        EventError::Core(ControllerError::BadRequest(msg.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_openwhisks() {
        assert_eq!(
            EventError::BadStatus("on".into()).to_string(),
            "'on' is not a recognized rule state, must be one of ['active', 'inactive']"
        );
        assert_eq!(
            EventError::NoSuchTrigger("/ns/t".into()).to_string(),
            "trigger /ns/t does not exist"
        );
        assert_eq!(
            EventError::Core(ControllerError::NotFound).to_string(),
            "The requested resource does not exist."
        );
    }
}
