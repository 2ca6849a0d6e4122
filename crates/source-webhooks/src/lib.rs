//! The `webhooks` event source: triggers fired by HTTP requests to their hook URL, each
//! feed one sender's way of signing and shaping them.
//!
//! | feed          | checks                                                            | key            |
//! |---------------|-------------------------------------------------------------------|----------------|
//! | `github`      | `X-Hub-Signature-256` (HMAC-SHA256 of the body); answers `ping`   | delivery id    |
//! | `slack`       | `X-Slack-Signature` over `v0:ts:body`, 5-minute window; answers `url_verification` | `event_id` |
//! | `stripe`      | `Stripe-Signature` `t=…,v1=…` over `t.body`, tolerance            | event `id`     |
//! | `standard`    | Standard Webhooks `webhook-signature` (`v1` HMAC, `v1a` Ed25519)  | `webhook-id`   |
//! | `hmac`        | any header holding an HMAC of the body (hex or base64)            | `idHeader`     |
//! | `cloudevents` | optional HMAC as `hmac`; CloudEvents 1.0 binary or structured     | source + id    |
//!
//! **Owns:** each feed's parameters, the signature and replay-window checks (pure functions,
//! every comparison in constant time) and the payload a request fires with.
//!
//! **Payload convention:** the body's JSON object is the payload, its fields at the top level
//! as OpenWhisk hands a trigger's payload to an action; a body that is JSON but not an object
//! is put under `body`. What the request said besides its body (the event name, the delivery
//! id, a retry count) is under the reserved key [`META`] (`__webhook`), an object whose
//! `source` names the feed; a body field of that name is replaced. The cloudevents feed fires
//! the event in its JSON form (attributes and `data` or `data_base64`) plus `__webhook`.
//!
//! **Secrets:** a secret parameter may be one string or a list of up to five (rotation on the
//! receiving side: a request signed with any of them passes). No error text holds a secret or
//! the signature that was expected.
//!
//! **May not** depend on any Gust crate but `gust-source`: it knows nothing of triggers, rules,
//! stores or HTTP routing, and never blocks.

mod feed;
mod params;
mod payload;
#[cfg(test)]
mod testing;
mod verify;

use gust_source::{FeedDoc, Hook, HookError, HookRequest, Source};
use serde_json::{Map, Value};

pub use payload::META;

/// The `webhooks` package: feeds `github`, `slack`, `stripe`, `standard`, `hmac` and
/// `cloudevents`, none of which listens (each is a hook URL).
#[derive(Debug, Default, Clone, Copy)]
pub struct Webhooks;

impl Source for Webhooks {
    fn package(&self) -> &'static str {
        "webhooks"
    }

    fn description(&self) -> &'static str {
        "Webhooks: GitHub, Slack, Stripe, Standard Webhooks, HMAC and CloudEvents"
    }

    fn feeds(&self) -> &'static [FeedDoc] {
        &feed::DOCS
    }

    fn secrets(&self) -> &'static [&'static str] {
        &["secret", "signingSecret"]
    }

    fn configure(
        &self,
        feed: &str,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, String> {
        feed::find(feed)
            .ok_or_else(|| feed::unknown(feed))?
            .configure(params)
    }

    fn listens(&self, _feed: &str) -> bool {
        false
    }

    fn receive(
        &self,
        feed: &str,
        config: &Map<String, Value>,
        request: &HookRequest,
    ) -> Result<Hook, HookError> {
        let feed = feed::find(feed).ok_or_else(|| HookError::BadRequest(feed::unknown(feed)))?;
        (feed.receive)(config, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_feed_documents_exactly_the_parameters_it_takes() {
        for feed in &feed::ALL {
            let doc: Vec<Value> = serde_json::from_str(feed.doc.parameters).unwrap();
            let names: Vec<&str> = doc.iter().map(|p| p["name"].as_str().unwrap()).collect();
            assert_eq!(names, feed.params, "feed {}", feed.doc.name);
            for p in &doc {
                assert!(p["required"].is_boolean(), "feed {}", feed.doc.name);
                assert!(p["description"].is_string(), "feed {}", feed.doc.name);
            }
        }
    }

    #[test]
    fn no_feed_listens_and_every_feed_is_listed() {
        let names: Vec<&str> = Webhooks.feeds().iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "github",
                "slack",
                "stripe",
                "standard",
                "hmac",
                "cloudevents"
            ]
        );
        assert!(names.iter().all(|f| !Webhooks.listens(f)));
        assert_eq!(Webhooks.package(), "webhooks");
    }

    #[test]
    fn every_secret_parameter_is_named_as_one() {
        for feed in &feed::ALL {
            for p in feed.params {
                let secret = matches!(*p, "secret" | "signingSecret");
                assert_eq!(Webhooks.secrets().contains(p), secret, "{p}");
            }
        }
    }

    /// `configure` refuses what it cannot use, naming the parameter and never its value.
    #[test]
    fn configuration_is_checked() {
        let cases = [
            ("github", json!({}), "missing required parameter 'secret'"),
            (
                "github",
                json!({"secret": "s", "secert": 1}),
                "unknown parameter 'secert'",
            ),
            (
                "github",
                json!({"secret": 42}),
                "parameter 'secret' must be",
            ),
            (
                "github",
                json!({"secret": []}),
                "parameter 'secret' must be",
            ),
            (
                "github",
                json!({"secret": ["a", "b", "c", "d", "e", "f"]}),
                "1 to 5",
            ),
            (
                "github",
                json!({"secret": ["a", ""]}),
                "parameter 'secret' must be",
            ),
            (
                "slack",
                json!({"secret": "s"}),
                "unknown parameter 'secret'",
            ),
            (
                "slack",
                json!({}),
                "missing required parameter 'signingSecret'",
            ),
            (
                "stripe",
                json!({"secret": "s", "tolerance": -1}),
                "'tolerance' must be",
            ),
            (
                "stripe",
                json!({"secret": "s", "tolerance": 86401}),
                "'tolerance' must be",
            ),
            ("standard", json!({}), "missing required parameter 'secret'"),
            (
                "standard",
                json!({"secret": "whsec_not base64!"}),
                "must be base64",
            ),
            (
                "standard",
                json!({"publicKey": "whpk_AAAA"}),
                "32-byte Ed25519",
            ),
            (
                "standard",
                json!({"secret": "whsec_QUJD", "url": "x"}),
                "unknown parameter 'url'",
            ),
            (
                "hmac",
                json!({"secret": "s", "algorithm": "md5"}),
                "'algorithm' must be one of",
            ),
            (
                "hmac",
                json!({"secret": "s", "encoding": "base32"}),
                "'encoding' must be one of",
            ),
            (
                "hmac",
                json!({"secret": "s", "header": "x sig"}),
                "'header' must be",
            ),
            (
                "hmac",
                json!({"secret": "s", "idHeader": ""}),
                "'idHeader' must be",
            ),
            (
                "hmac",
                json!({"header": "x-sig"}),
                "missing required parameter 'secret'",
            ),
            (
                "cloudevents",
                json!({"header": "x-sig"}),
                "'header' needs parameter 'secret'",
            ),
            ("cloudevents", json!({"types": []}), "'types' must be"),
            (
                "cloudevents",
                json!({"types": "com.example."}),
                "'types' must be",
            ),
            ("nope", json!({}), "unknown feed 'nope'"),
        ];
        for (feed, params, want) in cases {
            let err = Webhooks
                .configure(feed, params.as_object().unwrap())
                .unwrap_err();
            assert!(err.contains(want), "{feed} {params}: {err}");
            assert!(!err.contains("base64!"), "{err}");
        }
    }

    #[test]
    fn configuration_kept_has_the_defaults_filled_in() {
        let cases = [
            ("github", json!({"secret": "s"}), json!({"secret": "s"})),
            (
                "slack",
                json!({"signingSecret": ["a", "b"]}),
                json!({"signingSecret": ["a", "b"]}),
            ),
            (
                "stripe",
                json!({"secret": "whsec_x"}),
                json!({"secret": "whsec_x", "tolerance": 300}),
            ),
            (
                "standard",
                json!({"secret": "whsec_QUJD", "tolerance": 0}),
                json!({"secret": "whsec_QUJD", "tolerance": 0}),
            ),
            (
                "hmac",
                json!({"secret": "s", "idHeader": "X-Request-Id"}),
                json!({"secret": "s", "header": "x-signature", "algorithm": "sha256",
                       "encoding": "hex", "prefix": "", "idHeader": "x-request-id"}),
            ),
            ("cloudevents", json!({}), json!({})),
            (
                "cloudevents",
                json!({"secret": "s", "types": ["com.example."]}),
                json!({"secret": "s", "header": "x-signature", "algorithm": "sha256",
                       "encoding": "hex", "prefix": "", "types": ["com.example."]}),
            ),
        ];
        for (feed, params, want) in cases {
            let kept = Webhooks.configure(feed, params.as_object().unwrap());
            assert_eq!(kept, Ok(want.as_object().unwrap().clone()), "{feed}");
        }
    }

    #[test]
    fn an_unknown_feed_takes_no_request() {
        let request = testing::request(&[], b"{}", 0);
        assert_eq!(
            Webhooks.receive("gitlab", &Map::new(), &request),
            Err(HookError::BadRequest(
                "unknown feed 'gitlab' (the webhooks package has github, slack, stripe, \
                 standard, hmac, cloudevents)"
                    .into()
            ))
        );
    }

    #[test]
    fn a_configuration_that_no_longer_parses_authorizes_nothing() {
        let request = testing::request(&[], b"{}", 0);
        let err = Webhooks
            .receive("github", &Map::new(), &request)
            .unwrap_err();
        assert!(matches!(err, HookError::Unauthorized(ref t) if t.contains("not valid")));
    }
}
