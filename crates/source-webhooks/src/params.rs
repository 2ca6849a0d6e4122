//! Reading a feed's parameters beyond `gust_source`'s helpers: secrets that may be rotated
//! (one value or a list), a choice among named values, header names and lists of strings.
//! Every error names the parameter and never its value.

use std::fmt;

use serde_json::{Map, Value};

/// How many values a rotated secret may list at once.
pub const MAX_KEYS: usize = 5;

/// Key bytes, one per value of a secret or public-key parameter. `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys(Vec<Vec<u8>>);

impl Keys {
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} redacted)", self.0.len())
    }
}

/// Turns one value of a key parameter into key bytes, or says what the value must be
/// ("must be base64").
pub type KeyReader = fn(&str) -> Result<Vec<u8>, &'static str>;

/// A secret used as it is written: its UTF-8 bytes (GitHub, Slack, Stripe, HMAC).
pub fn utf8(text: &str) -> Result<Vec<u8>, &'static str> {
    Ok(text.as_bytes().to_vec())
}

/// Parameter `name` as one non-empty string or a list of 1 to [`MAX_KEYS`] of them, each
/// read by `read`; `None` when absent.
pub fn keys(
    params: &Map<String, Value>,
    name: &str,
    read: KeyReader,
) -> Result<Option<Keys>, String> {
    let shape = || {
        format!(
            "parameter '{name}' must be a non-empty string or a list of 1 to {MAX_KEYS} of them"
        )
    };
    let texts: Vec<&str> = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if (1..=MAX_KEYS).contains(&items.len()) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(shape))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape()),
    };
    let mut keys = Vec::with_capacity(texts.len());
    for text in texts {
        if text.is_empty() {
            return Err(shape());
        }
        keys.push(read(text).map_err(|must| format!("parameter '{name}' {must}"))?);
    }
    Ok(Some(Keys(keys)))
}

/// Like [`keys`], but an error naming `name` when it is absent.
pub fn required_keys(
    params: &Map<String, Value>,
    name: &str,
    read: KeyReader,
) -> Result<Keys, String> {
    keys(params, name, read)?.ok_or_else(|| format!("missing required parameter '{name}'"))
}

/// Parameter `name` as one of `options` (by name), the first when absent; with its name.
pub fn choice<T: Copy>(
    params: &Map<String, Value>,
    name: &str,
    options: &[(&'static str, T)],
) -> Result<(&'static str, T), String> {
    let Some(&first) = options.first() else {
        return Err(format!("parameter '{name}' has no options"));
    };
    match params.get(name) {
        None | Some(Value::Null) => Ok(first),
        Some(Value::String(s)) => options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .copied()
            .ok_or_else(|| must_be_one_of(name, options)),
        Some(_) => Err(must_be_one_of(name, options)),
    }
}

fn must_be_one_of<T>(name: &str, options: &[(&'static str, T)]) -> String {
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    format!("parameter '{name}' must be one of {}", names.join(", "))
}

/// Parameter `name` as an HTTP header name, lower-cased (as requests give them); `None` when
/// absent.
pub fn header(params: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().all(is_token) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(format!("parameter '{name}' must be an HTTP header name")),
    }
}

/// Parameter `name` as a string, which may be empty; `None` when absent.
pub fn text(params: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("parameter '{name}' must be a string")),
    }
}

/// Parameter `name` as a list of 1 to `max` non-empty strings; `None` when absent.
pub fn strings(
    params: &Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<Vec<String>>, String> {
    let shape = || format!("parameter '{name}' must be a list of 1 to {max} non-empty strings");
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if (1..=max).contains(&items.len()) => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(shape()),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(shape()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_never_show_in_debug() {
        let params = json!({"secret": ["hunter2", "hunter3"]});
        let keys = required_keys(params.as_object().unwrap(), "secret", utf8).unwrap();
        assert_eq!(format!("{keys:?}"), "Keys(2 redacted)");
        assert_eq!(keys.iter().collect::<Vec<_>>(), [b"hunter2", b"hunter3"]);
    }

    #[test]
    fn choices_are_case_blind_and_default_to_the_first() {
        let opts = [("sha256", 1), ("sha512", 2)];
        let check = |v: Value| choice(v.as_object().unwrap(), "algorithm", &opts);
        assert_eq!(check(json!({})), Ok(("sha256", 1)));
        assert_eq!(check(json!({"algorithm": "SHA512"})), Ok(("sha512", 2)));
        assert!(check(json!({"algorithm": 5})).is_err());
    }

    #[test]
    fn header_names_are_lower_cased() {
        let params = json!({"header": "X-Signature"});
        let header = header(params.as_object().unwrap(), "header");
        assert_eq!(header, Ok(Some("x-signature".into())));
    }
}
