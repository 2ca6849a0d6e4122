//! The feeds, one module each: its catalog entry, the parameters it takes, how it checks them
//! and how it turns a request into a fire or a reply.
//!
//! A feed's `receive` reads the configuration that its `configure` kept; should that no longer
//! parse (a configuration written by another version), nothing is authorized.

mod cloudevents;
mod github;
mod hmac;
mod slack;
mod standard;
mod stripe;

use gust_source::{FeedDoc, Hook, HookError, HookRequest};
use serde_json::{Map, Value};

/// A feed's parameters, or the configuration kept from them.
pub type Params = Map<String, Value>;

/// One feed of the package.
pub struct Feed {
    pub doc: FeedDoc,
    /// The parameters it takes, in the order its doc lists them.
    pub params: &'static [&'static str],
    /// Checks the parameters, known ones only, and returns the configuration to keep.
    pub keep: fn(&Params) -> Result<Params, String>,
    /// Checks a request against the kept configuration.
    pub receive: fn(&Params, &HookRequest) -> Result<Hook, HookError>,
}

pub static ALL: [Feed; 6] = [
    github::FEED,
    slack::FEED,
    stripe::FEED,
    standard::FEED,
    hmac::FEED,
    cloudevents::FEED,
];

pub static DOCS: [FeedDoc; 6] = [
    github::FEED.doc,
    slack::FEED.doc,
    stripe::FEED.doc,
    standard::FEED.doc,
    hmac::FEED.doc,
    cloudevents::FEED.doc,
];

impl Feed {
    /// Refuses unknown parameters, then checks the others: the configuration to keep.
    pub fn configure(&self, params: &Params) -> Result<Params, String> {
        gust_source::refuse_unknown(params, self.params)?;
        (self.keep)(params)
    }
}

pub fn find(name: &str) -> Option<&'static Feed> {
    ALL.iter().find(|f| f.doc.name == name)
}

/// The text refusing feed `name`.
pub fn unknown(name: &str) -> String {
    let names: Vec<&str> = ALL.iter().map(|f| f.doc.name).collect();
    format!(
        "unknown feed '{name}' (the webhooks package has {})",
        names.join(", ")
    )
}

/// The refusal of a request when the kept configuration does not parse.
fn invalid_config(why: String) -> HookError {
    HookError::Unauthorized(format!(
        "the trigger's webhook configuration is not valid ({why}): update the trigger"
    ))
}

/// A refusal of a request: 401.
fn unauthorized(text: impl Into<String>) -> HookError {
    HookError::Unauthorized(text.into())
}

/// A refusal of a request: 400.
fn bad_request(text: impl Into<String>) -> HookError {
    HookError::BadRequest(text.into())
}
