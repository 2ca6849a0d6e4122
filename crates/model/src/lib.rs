//! Gust's shared vocabulary: entities, limits, activation records and the messages that travel
//! on the bus. Everything here is plain data with serde derives; the JSON shapes are
//! OpenWhisk's, because the REST API and the bus both speak them.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod activation;
pub mod annotations;
pub mod entity;
pub mod lambda;
pub mod limits;
pub mod logs;
pub mod message;
pub mod names;
pub mod record;
pub mod run;
pub mod time;
pub mod trace;
pub mod trigger;
pub mod workflow;

pub use activation::{
    Activation, ActivationResponse, ActivationStatus, ActivationSummary, EncodedActivation,
};
pub use entity::{
    Action, BindingRef, Exec, Identity, KeyValue, Namespace, Package, Route, Site, SiteFile,
};
pub use limits::{ActionLimits, LimitError, NamespaceLimits, SystemLimits};
pub use message::{
    Cause, CauseKind, CompletionMessage, InvocationMessage, InvokerHealth, SealedParam,
    secret_place,
};
pub use trace::TraceParent;
pub use trigger::{
    DeleteAfterFire, EntityPath, Mapping, Rule, RuleStatus, Schedule, ScheduleSpec, Subscription,
    SubscriptionSpec, Timing, Trigger,
};
pub use workflow::{
    DeadLetter, Delivery, DeliveryConfig, Execution, ExecutionStatus, HistoryEvent, RunState,
    Workflow,
};
