//! Query-string parameters, parsed with exact error messages.

use std::collections::HashMap;

use crate::ApiError;

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

    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "The value '{v}' of parameter '{name}' is not a non-negative integer."
                ))
            }),
        }
    }

    /// A list page size: 30 when absent, at most `max`.
    pub fn limit(&self, max: u64) -> Result<u64, ApiError> {
        match self.u64("limit")? {
            None => Ok(30),
            Some(0) => Ok(max),
            Some(n) if n <= max => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!(
                "The value '{n}' is not in the range of 0 to {max}."
            ))),
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}
