//! The checks the feeds are made of, as pure functions: an HMAC of the signed bytes under any
//! of the keys, an Ed25519 signature by any of the public keys, the replay window, and the
//! decoding of a signature's text. Every comparison of a signature is constant time
//! (`Mac::verify_slice`, Ed25519's verification); which key matched is not hidden.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};

use crate::params::Keys;

/// The hash under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// Whether `signature` is the HMAC of `message` (its parts concatenated) under any of `keys`.
pub fn hmac_matches(
    algorithm: Algorithm,
    keys: &Keys,
    message: &[&[u8]],
    signature: &[u8],
) -> bool {
    keys.iter().any(|key| match algorithm {
        Algorithm::Sha1 => mac_matches::<Hmac<sha1::Sha1>>(key, message, signature),
        Algorithm::Sha256 => mac_matches::<Hmac<sha2::Sha256>>(key, message, signature),
        Algorithm::Sha512 => mac_matches::<Hmac<sha2::Sha512>>(key, message, signature),
    })
}

fn mac_matches<M: Mac + KeyInit>(key: &[u8], message: &[&[u8]], signature: &[u8]) -> bool {
    // HMAC takes a key of any length: this fails for no key.
    let Ok(mut mac) = <M as Mac>::new_from_slice(key) else {
        return false;
    };
    for part in message {
        mac.update(part);
    }
    mac.verify_slice(signature).is_ok()
}

/// The HMAC of `message` under `key`: what a sender computes (tests sign with it).
#[cfg(test)]
pub fn hmac(algorithm: Algorithm, key: &[u8], message: &[&[u8]]) -> Vec<u8> {
    fn tag<M: Mac + KeyInit>(key: &[u8], message: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(key).unwrap();
        for part in message {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => tag::<Hmac<sha1::Sha1>>(key, message),
        Algorithm::Sha256 => tag::<Hmac<sha2::Sha256>>(key, message),
        Algorithm::Sha512 => tag::<Hmac<sha2::Sha512>>(key, message),
    }
}

/// Whether `signature` is an Ed25519 signature of `message` by any of `keys` (public keys of
/// 32 bytes, as [`ed25519_public_key`] checked them). Strict verification: no malleable
/// signatures, no weak keys.
pub fn ed25519_matches(keys: &Keys, message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    keys.iter().any(|key| {
        ed25519_key(key).is_some_and(|key| key.verify_strict(message, &signature).is_ok())
    })
}

/// An Ed25519 public key from its 32 bytes, if they are one.
pub fn ed25519_key(bytes: &[u8]) -> Option<VerifyingKey> {
    let bytes: &[u8; 32] = bytes.try_into().ok()?;
    VerifyingKey::from_bytes(bytes).ok()
}

/// How far a sender's timestamp may be from when the request arrived, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// Any timestamp passes (a tolerance of 0, as Stripe's libraries read it).
    Off,
    Seconds(u64),
}

impl Tolerance {
    /// A feed's `tolerance` parameter: seconds, 0 turning the check off.
    pub fn from_seconds(seconds: u64) -> Self {
        match seconds {
            0 => Tolerance::Off,
            s => Tolerance::Seconds(s),
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Off => f.write_str("no limit"),
            Tolerance::Seconds(s) => write!(f, "{s} s"),
        }
    }
}

/// A timestamp outside the window: by how many seconds it is old or ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    Old(u64),
    Ahead(u64),
}

impl fmt::Display for Skew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skew::Old(s) => write!(f, "{s} s old"),
            Skew::Ahead(s) => write!(f, "{s} s ahead"),
        }
    }
}

/// Whether `timestamp` (Unix seconds) is within `tolerance` of `now_ms` (ms since the epoch):
/// a difference of exactly the tolerance passes.
pub fn fresh(now_ms: u64, timestamp: u64, tolerance: Tolerance) -> Result<(), Skew> {
    let Tolerance::Seconds(limit) = tolerance else {
        return Ok(());
    };
    let now = now_ms / 1000;
    match now.abs_diff(timestamp) {
        d if d <= limit => Ok(()),
        d if timestamp < now => Err(Skew::Old(d)),
        d => Err(Skew::Ahead(d)),
    }
}

/// A timestamp header's value as Unix seconds: ASCII digits only.
pub fn unix_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    /// Standard or URL-safe alphabet, padded or not.
    Base64,
}

/// `text` decoded as `encoding` (surrounding blanks ignored), if it is that.
pub fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    match encoding {
        Encoding::Hex => hex::decode(text).ok(),
        Encoding::Base64 => base64(text),
    }
}

/// Base64 in either alphabet, padding optional.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// `bytes` in standard base64, padded (payloads carry binary bodies so).
pub fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;
    use serde_json::json;

    fn keys(secrets: &[&str]) -> Keys {
        let params = json!({ "secret": secrets });
        params::required_keys(params.as_object().unwrap(), "secret", params::utf8).unwrap()
    }

    /// GitHub's published vector ("Validating webhook deliveries").
    #[test]
    fn github_vector() {
        let sig = hex::decode("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
            .unwrap();
        let secret = keys(&["It's a Secret to Everybody"]);
        assert!(hmac_matches(
            Algorithm::Sha256,
            &secret,
            &[b"Hello, World!"],
            &sig
        ));
        assert!(!hmac_matches(
            Algorithm::Sha256,
            &secret,
            &[b"Hello, World?"],
            &sig
        ));
        assert!(!hmac_matches(
            Algorithm::Sha256,
            &secret,
            &[b"Hello, World!"],
            &sig[..31]
        ));
    }

    /// RFC 4231 test case 2 (HMAC-SHA-256 and -512) and RFC 2202 test case 2 (HMAC-SHA-1).
    #[test]
    fn rfc_vectors() {
        let key = keys(&["Jefe"]);
        let message: &[&[u8]] = &[b"what do ya want ", b"for nothing?"];
        let cases = [
            (Algorithm::Sha1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (
                Algorithm::Sha256,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                Algorithm::Sha512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a\
                 6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (algorithm, want) in cases {
            let want = hex::decode(want).unwrap();
            assert!(
                hmac_matches(algorithm, &key, message, &want),
                "{algorithm:?}"
            );
            assert_eq!(hmac(algorithm, b"Jefe", message), want);
        }
    }

    #[test]
    fn any_of_the_rotated_keys_passes() {
        let sig = hmac(Algorithm::Sha256, b"new", &[b"body"]);
        assert!(hmac_matches(
            Algorithm::Sha256,
            &keys(&["old", "new"]),
            &[b"body"],
            &sig
        ));
        assert!(!hmac_matches(
            Algorithm::Sha256,
            &keys(&["old"]),
            &[b"body"],
            &sig
        ));
    }

    #[test]
    fn the_window_holds_both_ways_and_its_edges() {
        let now_ms = 1_700_000_000_999;
        let five = Tolerance::Seconds(300);
        let cases = [
            (1_700_000_000, five, Ok(())),
            (1_700_000_000 - 300, five, Ok(())),
            (1_700_000_000 + 300, five, Ok(())),
            (1_700_000_000 - 301, five, Err(Skew::Old(301))),
            (1_700_000_000 + 301, five, Err(Skew::Ahead(301))),
            (0, five, Err(Skew::Old(1_700_000_000))),
            (u64::MAX, five, Err(Skew::Ahead(u64::MAX - 1_700_000_000))),
            (0, Tolerance::Off, Ok(())),
        ];
        for (timestamp, tolerance, want) in cases {
            assert_eq!(fresh(now_ms, timestamp, tolerance), want, "{timestamp}");
        }
    }

    #[test]
    fn timestamps_are_digits() {
        let cases = [
            ("1531420618", Some(1531420618)),
            (" 12 ", Some(12)),
            ("-12", None),
            ("+12", None),
            ("1.5", None),
            ("", None),
            ("99999999999999999999999", None),
        ];
        for (text, want) in cases {
            assert_eq!(unix_seconds(text), want, "{text}");
        }
    }

    #[test]
    fn signatures_decode_in_either_base64_alphabet() {
        let cases = [
            (Encoding::Hex, "00ff", Some(vec![0, 255])),
            (Encoding::Hex, "00FF", Some(vec![0, 255])),
            (Encoding::Hex, "0g", None),
            (Encoding::Base64, "+/8=", Some(vec![251, 255])),
            (Encoding::Base64, "+/8", Some(vec![251, 255])),
            (Encoding::Base64, "-_8", Some(vec![251, 255])),
            (Encoding::Base64, "!!", None),
        ];
        for (encoding, text, want) in cases {
            assert_eq!(decode(encoding, text), want, "{text}");
        }
    }
}
