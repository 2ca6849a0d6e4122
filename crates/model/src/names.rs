//! Entity and namespace names, validated as OpenWhisk validates them.

/// Longest entity or namespace name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Why a name was refused; the texts are OpenWhisk's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("The name of the entity contains illegal characters.")]
    IllegalEntity,
    #[error("The namespace contains illegal characters.")]
    IllegalNamespace,
    #[error("Name longer than allowed: {0} > 256.")]
    TooLong(usize),
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// OpenWhisk's `\A([\w]|[\w][\w@ .-]*[\w@.-]+)\z`.
fn well_formed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [] => false,
        [c] => is_word(*c),
        [first, middle @ .., last] => {
            is_word(*first)
                && middle
                    .iter()
                    .all(|c| is_word(*c) || matches!(c, '@' | ' ' | '.' | '-'))
                && (is_word(*last) || matches!(last, '@' | '.' | '-'))
        }
    }
}

/// Checks an action (or other entity) name.
pub fn check_entity(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if well_formed(name) {
        Ok(())
    } else {
        Err(NameError::IllegalEntity)
    }
}

/// Checks a namespace name.
pub fn check_namespace(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if well_formed(name) {
        Ok(())
    } else {
        Err(NameError::IllegalNamespace)
    }
}

/// An activation id is 32 lowercase hex digits.
pub fn is_activation_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh activation id: 32 hex digits like OpenWhisk's, time-ordered (UUIDv7 layout: 48 bits
/// of milliseconds, then randomness) so that new records append to the store's id index
/// instead of landing on a random page.
pub fn new_activation_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        assert_eq!(check_entity(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn entity_names() {
        check("hello", true);
        check("a", true);
        check("hello world", true);
        check("hello-world.v2@x", true);
        check("", false);
        check(" hello", false);
        check("hello ", false);
        check("-x", false);
        check("a/b", false);
        check("../etc", false);
        check("a\nb", false);
        check(&"x".repeat(257), false);
        check(&"x".repeat(256), true);
    }

    #[test]
    fn activation_ids() {
        assert!(is_activation_id(&new_activation_id()));
        assert!(!is_activation_id("xyz"));
        assert!(!is_activation_id(&"A".repeat(32)));
    }
}
