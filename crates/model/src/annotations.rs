//! Every annotation key Gust reads or writes, in one place. Entity annotations are set by
//! users (`-a key value`) and read by the platform; record annotations are written by the
//! platform into activation records. The keys and their meanings are OpenWhisk's, except
//! where a key's doc says it is Gust's own.

// Entity annotations (actions, packages, triggers), read by the platform.

/// An action answers web requests at `/api/v1/web/...` (OpenWhisk's web actions).
pub const WEB_EXPORT: &str = "web-export";
/// A web action gets the request body and query unparsed (`__ow_body`, `__ow_query`).
pub const RAW_HTTP: &str = "raw-http";
/// A web action answers `OPTIONS` itself instead of the platform's CORS answer.
pub const WEB_CUSTOM_OPTIONS: &str = "web-custom-options";
/// A web action requires a secret (or the namespace's key) in `X-Require-Whisk-Auth`.
pub const REQUIRE_WHISK_AUTH: &str = "require-whisk-auth";
/// Gust's own: each run of the action gets a token for its calls back into Gust, in
/// `__OW_API_TOKEN`, with this scope (a list of items such as `"invoke:actions/x"`) and the
/// action's timeout plus a minute to live (OpenWhisk's `provide-api-key`, scoped down).
pub const API_TOKEN_SCOPE: &str = "api-token-scope";
/// The action's parameters cannot be overridden by an invocation's.
pub const FINAL: &str = "final";
/// The action is a conductor: its code decides which action runs next.
pub const CONDUCTOR: &str = "conductor";
/// A trigger is fed by this feed action (`/whisk.system/<source>/<feed>`).
pub const FEED: &str = "feed";
/// Shown in list rows of actions and packages: the action's kind, or a package's binding.
pub const EXEC: &str = "exec";
/// A package binding's target, as listed.
pub const BINDING: &str = "binding";

// Record annotations, written by the platform into activation records.

/// `namespace/[package/]action` of the activation.
pub const PATH: &str = "path";
/// The action's kind (`sequence` for a composition's record).
pub const KIND: &str = "kind";
/// The action's limits when it ran.
pub const LIMITS: &str = "limits";
/// Milliseconds between acceptance and start.
pub const WAIT_TIME: &str = "waitTime";
/// Milliseconds spent initializing a new instance (absent for a warm start).
pub const INIT_TIME: &str = "initTime";
/// Whether the activation ran out of time.
pub const TIMEOUT: &str = "timeout";
/// Which composition caused the activation (`sequence`).
pub const CAUSED_BY: &str = "causedBy";
/// Gust's: the W3C trace id of the activation's trace (32 lowercase hex characters;
/// decision 0026).
pub const TRACE_ID: &str = "traceId";
/// The record of the outermost composition.
pub const TOPMOST: &str = "topmost";
/// Gust's: the invocation could not run because the platform was busy (a blocking caller
/// gets 503).
pub const OVERLOADED: &str = "overloaded";
/// Gust's: how a process instance was found (`cold`, `prewarmed` or `warm`).
pub const START: &str = "start";
