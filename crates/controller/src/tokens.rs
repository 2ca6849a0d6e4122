//! Scoped tokens: minting one for a caller authenticated with its namespace's key, and
//! authenticating a bearer token and what it may do (its [`Grant`]). The format and the scope
//! grammar are `gust-tokens`'s; the gateway says which verb and entity a request asks for.
//!
//! **Invariant:** a token authenticates only while its namespace's key is the one it was
//! minted under (the namespace read through the same short-lived cache as a key's), so
//! rotating a key refuses every token minted before, on every controller, within the cache's
//! lifetime.

use std::time::Duration;

use gust_model::annotations::API_TOKEN_SCOPE;
use gust_model::entity::annotation;
use gust_model::{Action, Identity, SealedParam, secret_place};
use gust_tokens::{Claims, ISSUER, TokenError, fingerprint, now_secs};
pub use gust_tokens::{DEFAULT_TTL, MAX_TTL, Scope, ScopeError, Verb, parse_ttl};
use serde_json::Value;

use crate::identity::constant_time_eq;
use crate::{Controller, ControllerError};

/// The environment variable that holds an action's own token (annotation `api-token-scope`).
pub const ACTION_TOKEN_ENV: &str = "__OW_API_TOKEN";
/// The environment variable that tells an action given a token where the API is.
pub const API_HOST_ENV: &str = "__OW_API_HOST";
/// How much longer than the action's timeout its own token lives.
const ACTION_TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// What a token is asked for: a lifetime, a scope, and maybe one web action.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub ttl: Duration,
    pub scope: Scope,
    /// The one web action (`action` or `package/action` of the caller's namespace) or API
    /// route (`/base/path`, as declared) the token may call, and nothing else.
    pub web: Option<String>,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    /// When it expires, ms since the epoch.
    pub expires: u64,
    pub scope: Vec<String>,
    pub web: Option<String>,
}

/// What an authenticated bearer token may do.
#[derive(Debug, Clone)]
pub struct Grant {
    pub scope: Scope,
    pub web: Option<String>,
}

/// A web restriction as the token holds it: an API route as `/base/path` without a trailing
/// `/`, or an action's path in its namespace without the `default/` of a web action's URL;
/// `None` if it is neither.
fn web_target(web: &str) -> Option<String> {
    let web = web.trim();
    if web.contains('*') || web.chars().any(char::is_whitespace) {
        return None;
    }
    if web.starts_with('/') {
        let route = web.trim_end_matches('/');
        return (!route.is_empty() && !route.contains("//")).then(|| route.to_string());
    }
    let action = web.strip_prefix("default/").unwrap_or(web);
    let parts: Vec<&str> = action.split('/').collect();
    (parts.len() <= 2 && parts.iter().all(|p| !p.is_empty())).then(|| action.to_string())
}

/// An API route's name as a token's `web` gives it: `/base/path` without a trailing `/`.
pub fn route_name(base_path: &str, path: &str) -> String {
    format!("{base_path}{path}")
        .trim_end_matches('/')
        .to_string()
}

impl Grant {
    /// Whether the token lets its caller do `verb` on `entity` of the REST API; a token for
    /// one web action may do nothing there (403 either way, naming the scope).
    pub fn permit(&self, verb: Verb, entity: &str) -> Result<(), ControllerError> {
        if let Some(web) = &self.web {
            return Err(ControllerError::WebOnly(web.clone()));
        }
        if self.scope.allows(verb, entity) {
            Ok(())
        } else {
            Err(ControllerError::OutOfScope {
                verb: verb.as_str(),
                entity: entity.to_string(),
                scope: self.scope.to_string(),
            })
        }
    }

    /// Whether the token may `verb` the entity of `kind` that a reference written into
    /// another entity names (`/ns/pkg/a`, `/ns/a`, `pkg/a` or `a`; `_` is the caller's own
    /// namespace). A token reaches nothing through what it writes that it could not reach
    /// itself, and nothing of another namespace.
    pub fn permit_reference(
        &self,
        own: &str,
        verb: Verb,
        kind: &str,
        reference: &str,
    ) -> Result<(), ControllerError> {
        let path = match reference.strip_prefix('/') {
            Some(full) => match full.split_once('/') {
                Some((ns, rest)) if ns == own || ns == "_" => rest,
                _ => {
                    return Err(ControllerError::OutOfScope {
                        verb: verb.as_str(),
                        entity: reference.to_string(),
                        scope: self.scope.to_string(),
                    });
                }
            },
            None => reference,
        };
        self.permit(verb, &format!("{kind}/{path}"))
    }

    /// Whether the token may write an action with these annotations and this sequence's
    /// `components`: never an `api-token-scope` (that would mint tokens); a sequence only of
    /// actions it may invoke; a conductor (which picks its components as it runs) only if it
    /// may invoke every action.
    pub fn permit_action_write(
        &self,
        own: &str,
        annotations: &[gust_model::KeyValue],
        components: &[String],
    ) -> Result<(), ControllerError> {
        if annotations.iter().any(|a| a.key == API_TOKEN_SCOPE) {
            return Err(ControllerError::TokenCannotMint);
        }
        let conductor = annotations
            .iter()
            .any(|a| a.key == gust_model::annotations::CONDUCTOR && a.value != Value::Bool(false));
        if conductor {
            self.permit(Verb::Invoke, "actions")?;
        }
        for c in components {
            self.permit_reference(own, Verb::Invoke, "actions", c)?;
        }
        Ok(())
    }

    /// Whether the token lets its caller, of namespace `own`, call web action `action` (its
    /// path `action` or `package/action`) of namespace `ns`, maybe through API `route`
    /// ([`route_name`]): its web action or route, or an action its scope may invoke, in its
    /// own namespace only.
    pub fn permit_web(
        &self,
        own: &str,
        ns: &str,
        action: &str,
        route: Option<&str>,
    ) -> Result<(), ControllerError> {
        let entity = format!("actions/{action}");
        match &self.web {
            Some(web) if own == ns && (web == action || Some(web.as_str()) == route) => Ok(()),
            Some(web) => Err(ControllerError::WebOnly(web.clone())),
            None if own == ns => self.permit(Verb::Invoke, &entity),
            None => Err(ControllerError::OutOfScope {
                verb: Verb::Invoke.as_str(),
                entity: format!("/{ns}/{action}"),
                scope: self.scope.to_string(),
            }),
        }
    }
}

impl Controller {
    /// Mints a token for `who` (authenticated with its key, never with a token).
    pub async fn mint_token(
        &self,
        who: &Identity,
        req: TokenRequest,
    ) -> Result<Minted, ControllerError> {
        if req.ttl > MAX_TTL || req.ttl.is_zero() {
            return Err(ControllerError::BadRequest(format!(
                "A token lives between 1 second and 12h, not {} seconds.",
                req.ttl.as_secs()
            )));
        }
        if req.scope.is_empty() && req.web.is_none() {
            return Err(ControllerError::BadRequest(
                "A token needs a scope (e.g. [\"invoke:actions/billing/*\"]) or a web action."
                    .into(),
            ));
        }
        if !req.scope.is_empty() && req.web.is_some() {
            return Err(ControllerError::BadRequest(
                "A token has a scope or a web action, not both: a web token may do nothing else."
                    .into(),
            ));
        }
        let web = match req.web.as_deref() {
            None => None,
            Some(w) => Some(web_target(w).ok_or_else(|| {
                ControllerError::BadRequest(format!(
                    "web '{w}' is neither an action (action or package/action) nor an API \
                     route (/base/path)."
                ))
            })?),
        };
        let ns = self
            .namespace_by_name(&who.namespace)
            .await?
            .filter(|ns| ns.uuid == who.uuid)
            .ok_or(ControllerError::Unauthenticated)?;
        let iat = now_secs();
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: ns.name.clone(),
            nsid: ns.uuid.clone(),
            nsk: fingerprint(&ns.uuid, &ns.key),
            iat,
            exp: iat + req.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            scope: req.scope.items().to_vec(),
            web: web.clone(),
        };
        Ok(Minted {
            token: self.tokens.sign(&claims),
            expires: claims.exp * 1000,
            scope: claims.scope,
            web,
        })
    }

    /// A token for a run of `action` by `who`, if the action's `api-token-scope` annotation
    /// asks for one and `who` is the action's own namespace (a token is never minted for a
    /// caller from another namespace); it lives the action's timeout plus a minute. It is
    /// sealed like a secret `init` parameter (decision 0022), so the bus and the journal never
    /// carry it in clear and the invoker opens it into the environment. A scope that does not
    /// parse is the invocation's 400.
    pub(crate) async fn action_token(
        &self,
        who: &Identity,
        action: &Action,
    ) -> Result<Option<SealedParam>, ControllerError> {
        let Some(value) = annotation(&action.annotations, API_TOKEN_SCOPE) else {
            return Ok(None);
        };
        if who.namespace != action.namespace {
            return Ok(None);
        }
        let bad = |why: String| {
            ControllerError::BadRequest(format!("The annotation {API_TOKEN_SCOPE}: {why}"))
        };
        let items: Vec<String> = match value {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("a list of strings such as \"invoke:actions/x\"".into()))?,
            Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
            _ => return Err(bad("a list of strings such as \"invoke:actions/x\"".into())),
        };
        let scope = Scope::parse(&items).map_err(|e| bad(e.to_string()))?;
        let ttl = (Duration::from_millis(action.limits.timeout) + ACTION_TOKEN_MARGIN).min(MAX_TTL);
        let minted = self
            .mint_token(
                who,
                TokenRequest {
                    ttl,
                    scope,
                    web: None,
                },
            )
            .await?;
        let place = secret_place("actions", &action.namespace, &action.name, ACTION_TOKEN_ENV);
        let plain = Value::String(minted.token).to_string();
        Ok(Some(SealedParam {
            key: ACTION_TOKEN_ENV.to_string(),
            sealed: self.keyring.seal(plain.as_bytes(), place.as_bytes()),
            place,
            init: true,
        }))
    }

    /// The identity a bearer token stands for and what it may do; 401 when it does not
    /// verify, has expired, or was minted under a key the namespace no longer has.
    pub async fn authenticate_token(
        &self,
        token: &str,
    ) -> Result<(Identity, Grant), ControllerError> {
        let claims = self.tokens.verify(token).map_err(|e| match e {
            TokenError::Expired => ControllerError::TokenExpired,
            TokenError::Invalid(_) => ControllerError::Unauthenticated,
        })?;
        // By name: a rotation gives the key a new uuid too, and that is what this tells apart.
        let ns = self
            .namespace_by_name(&claims.sub)
            .await?
            .ok_or(ControllerError::Unauthenticated)?;
        let current = fingerprint(&ns.uuid, &ns.key);
        if ns.uuid != claims.nsid || !constant_time_eq(current.as_bytes(), claims.nsk.as_bytes()) {
            return Err(ControllerError::TokenRevoked);
        }
        // Signed by us, so it parsed when it was minted.
        let scope = Scope::parse(&claims.scope).map_err(|_| ControllerError::Unauthenticated)?;
        let who = Identity {
            namespace: ns.name.clone(),
            uuid: ns.uuid.clone(),
            limits: ns.limits,
        };
        Ok((
            who,
            Grant {
                scope,
                web: claims.web,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scope: &[&str], web: Option<&str>) -> Grant {
        Grant {
            scope: Scope::parse(scope).unwrap(),
            web: web.map(str::to_string),
        }
    }

    #[test]
    fn out_of_scope_names_verb_entity_and_scope() {
        let g = grant(&["invoke:actions/billing/*", "read:activations"], None);
        assert!(g.permit(Verb::Invoke, "actions/billing/charge").is_ok());
        let e = g.permit(Verb::Write, "actions/billing/charge").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The token's scope (invoke:actions/billing/* read:activations) does not allow \
             write on 'actions/billing/charge'."
        );
    }

    #[test]
    fn a_web_token_calls_its_web_action_only() {
        let g = grant(&[], Some("hello"));
        assert!(g.permit_web("guest", "guest", "hello", None).is_ok());
        assert!(g.permit_web("guest", "guest", "other", None).is_err());
        assert!(g.permit_web("guest", "else", "hello", None).is_err());
        assert!(g.permit(Verb::Read, "actions").is_err());
        let g = grant(&[], Some("/shop/users/{id}"));
        assert!(
            g.permit_web("guest", "guest", "x", Some("/shop/users/{id}"))
                .is_ok()
        );
        assert!(g.permit_web("guest", "guest", "x", Some("/shop")).is_err());
        assert!(g.permit_web("guest", "guest", "x", None).is_err());
        let g = grant(&["invoke:actions/p/*"], None);
        assert!(g.permit_web("guest", "guest", "p/a", None).is_ok());
        assert!(g.permit_web("guest", "guest", "q/a", None).is_err());
        assert!(g.permit_web("guest", "else", "p/a", None).is_err());
    }

    #[test]
    fn web_targets() {
        for (given, held) in [
            ("hello", Some("hello")),
            ("default/hello", Some("hello")),
            ("shop/checkout", Some("shop/checkout")),
            ("/shop/", Some("/shop")),
            ("/shop/users/{id}", Some("/shop/users/{id}")),
            ("a/b/c", None),
            ("a//b", None),
            ("", None),
            ("/", None),
            ("act*", None),
            ("/a b", None),
        ] {
            assert_eq!(web_target(given).as_deref(), held, "{given}");
        }
    }
}
