//! Kit: query-string parameters, parsed with exact error messages. Imports `error` only.

use std::collections::HashMap;

use crate::ApiError;

/// What a list request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Count,
    Page { skip: u64, limit: u64 },
}

/// The decoded query string of a request.
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "The value '{other}' of parameter '{name}' is not a boolean (true or false)."
            ))),
        }
    }

    /// A timestamp, count or offset of a list of `collection` (`actions`, `activations`):
    /// a non-negative integer that fits the store's 64-bit signed columns.
    pub fn int(&self, name: &str, collection: &str) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.0.get(name) else {
            return Ok(None);
        };
        match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n as u64)),
            Ok(_) => Err(ApiError::bad_request(format!(
                "The value '{v}' is not greater than or equal to 0 for {collection}."
            ))),
            Err(_) => Err(ApiError::bad_request(format!(
                "The value '{v}' is not an integer for {collection}."
            ))),
        }
    }

    /// A list page size: 30 when absent, at most `max`.
    pub fn limit(&self, max: u64, collection: &str) -> Result<u64, ApiError> {
        match self.int("limit", collection)? {
            None => Ok(30),
            Some(0) => Ok(max),
            Some(n) if n <= max => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!(
                "The value '{n}' is not in the range of 0 to {max} for {collection}."
            ))),
        }
    }

    /// What a list request of `collection` asks: its count (`count=true`), or a page
    /// (`skip`, and `limit` at most `max`).
    pub fn listing(&self, max: u64, collection: &str) -> Result<Listing, ApiError> {
        if self.bool("count")? {
            return Ok(Listing::Count);
        }
        Ok(Listing::Page {
            skip: self.int("skip", collection)?.unwrap_or(0),
            limit: self.limit(max, collection)?,
        })
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}
