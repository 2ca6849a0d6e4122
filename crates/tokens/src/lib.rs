//! Short-lived scoped tokens: Gust's token service. A namespace key mints a token; the token
//! stands for the namespace, within a [`Scope`] and a lifetime of at most [`MAX_TTL`].
//!
//! **Format** (decision 0023): a JWT signed with Ed25519 (`alg: EdDSA`). Its `kid` is
//! `<master key id>.<day>` (UTC days since the epoch); the signing key's seed is the master
//! key's HKDF for `token-signing:<day>` ([`gust_keyring::Keyring::derive`]), so every process
//! holding the same master keys signs and checks the same tokens without a store read, and a
//! new signing key comes every day. A token is checked under the kid of today or yesterday,
//! under any master key held. Claims: [`Claims`].
//!
//! **Invariant:** a token verifies only if its signature holds under a key derived here, it
//! has not expired (no leeway), and its `kid` names a day no older than yesterday. Whether the
//! namespace's key is still the one it was minted under ([`Claims::nsk`]) is the caller's to
//! check, with [`fingerprint`].
//!
//! **May not depend on:** any Gust crate but `gust-keyring` (no store, HTTP or entities).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gust_keyring::Keyring;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use scope::{KINDS, Scope, ScopeError, Verb};

/// The longest lifetime a token may have.
pub const MAX_TTL: Duration = Duration::from_secs(12 * 3600);
/// The lifetime of a token minted without one.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The `iss` of every token.
pub const ISSUER: &str = "gust";

const DAY: u64 = 86_400;

/// Why a token is refused. All come from the token's bearer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Its lifetime is over.
    #[error("the token expired")]
    Expired,
    /// Not a token, altered, signed by a key this process does not know, or too old a key.
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// What a token says. `sub` and `nsid` name the namespace, `nsk` fingerprints its key at
/// minting time, `scope` and `web` bound what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The namespace's name.
    pub sub: String,
    /// The namespace's key uuid.
    pub nsid: String,
    /// [`fingerprint`] of the namespace's key when the token was minted.
    pub nsk: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// A unique id.
    pub jti: String,
    /// The scope items, as written ([`Scope`]).
    #[serde(default)]
    pub scope: Vec<String>,
    /// The one web action (`action` or `package/action`) the token may call, if restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

/// The first 16 hex characters of SHA-256 of `uuid:key`: changes when the key is rotated.
pub fn fingerprint(uuid: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{uuid}:{key}").as_bytes());
    hex::encode(&digest[..8])
}

/// A lifetime as a request gives it: seconds (a number or digits) or a number with `s`, `m`
/// or `h`; between one second and [`MAX_TTL`]. The error says what was wrong.
pub fn parse_ttl(value: &serde_json::Value) -> Result<Duration, String> {
    let secs = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let (digits, unit) = match s.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
                _ => (s, 's'),
            };
            let n = digits.trim().parse::<u64>().ok();
            match unit {
                's' => n,
                'm' => n.and_then(|n| n.checked_mul(60)),
                'h' => n.and_then(|n| n.checked_mul(3600)),
                _ => None,
            }
        }
        _ => None,
    }
    .ok_or_else(|| {
        format!("ttl {value} is not a lifetime: give seconds, or a number with s, m or h (\"30m\")")
    })?;
    if secs == 0 {
        return Err("ttl must be at least 1 second".into());
    }
    let ttl = Duration::from_secs(secs);
    if ttl > MAX_TTL {
        return Err(format!(
            "ttl {value} is longer than a token may live: at most 12h ({} seconds)",
            MAX_TTL.as_secs()
        ));
    }
    Ok(ttl)
}

/// Signs and checks tokens with keys derived from the master keys.
pub struct TokenKeys {
    keyring: Arc<Keyring>,
    /// Today's signing key and its kid, by day.
    signing: Mutex<Option<(u64, String, Arc<EncodingKey>)>>,
    /// Verifying keys by kid (of today and yesterday; older ones are dropped).
    verifying: Mutex<HashMap<String, (u64, Arc<DecodingKey>)>>,
    /// Tokens whose signature held, with their claims: a token used again is checked for
    /// expiry only, not verified again (an Ed25519 verification costs about as much CPU as
    /// the rest of a warm invocation). Keyed by the whole token, so an altered one misses.
    verified: Mutex<HashMap<Box<str>, Arc<Claims>>>,
}

/// Most verified tokens remembered per process; past it, expired ones are dropped, then all.
const MAX_VERIFIED: usize = 10_000;

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Ed25519 key pair of `seed`.
fn key_pair(seed: &[u8; 32]) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(seed).unwrap_or_else(|_| unreachable!("32-byte seed"))
}

/// `seed` as a PKCS#8 v1 document (RFC 8410), the form the JWT crate signs with.
fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

fn purpose(day: u64) -> String {
    format!("token-signing:{day}")
}

impl TokenKeys {
    pub fn new(keyring: Arc<Keyring>) -> TokenKeys {
        TokenKeys {
            keyring,
            signing: Mutex::new(None),
            verifying: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Today's kid and signing key.
    fn signing_key(&self, now: u64) -> (String, Arc<EncodingKey>) {
        let day = now / DAY;
        let mut slot = lock(&self.signing);
        match &*slot {
            Some((d, kid, key)) if *d == day => (kid.clone(), key.clone()),
            _ => {
                let seed = self.keyring.derive(&purpose(day));
                let kid = format!("{}.{day}", self.keyring.ids()[0]);
                let key = Arc::new(EncodingKey::from_ed_der(&pkcs8(&seed)));
                *slot = Some((day, kid.clone(), key.clone()));
                (kid, key)
            }
        }
    }

    /// The verifying key `kid` names, if it is of today or yesterday under a key held.
    fn verifying_key(&self, kid: &str, now: u64) -> Option<Arc<DecodingKey>> {
        let today = now / DAY;
        let (id, day) = kid.split_once('.')?;
        let day: u64 = day.parse().ok()?;
        if day != today && day + 1 != today {
            return None;
        }
        let mut cache = lock(&self.verifying);
        if let Some((_, key)) = cache.get(kid) {
            return Some(key.clone());
        }
        let index = self.keyring.ids().iter().position(|k| *k == id)?;
        let seed = self
            .keyring
            .derive_all(&purpose(day))
            .into_iter()
            .nth(index)?;
        let public = key_pair(&seed).public_key().as_ref().to_vec();
        let key = Arc::new(DecodingKey::from_ed_der(&public));
        cache.retain(|_, (d, _)| *d + 1 >= today);
        cache.insert(kid.to_string(), (day, key.clone()));
        Some(key)
    }

    /// Signs `claims` with today's key.
    pub fn sign(&self, claims: &Claims) -> String {
        let (kid, key) = self.signing_key(now_secs());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &key)
            .unwrap_or_else(|e| unreachable!("Ed25519 signing of plain claims cannot fail: {e}"))
    }

    /// The claims of `token` if it verifies (see the crate's invariant).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = now_secs();
        if let Some(claims) = lock(&self.verified).get(token) {
            // The same test as a first verification's, without leeway.
            return if claims.exp < now {
                Err(TokenError::Expired)
            } else {
                Ok(Claims::clone(claims))
            };
        }
        let claims = self.verify_signature(token)?;
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, c| c.exp >= now);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(token.into(), Arc::new(claims.clone()));
        Ok(claims)
    }

    /// [`verify`](Self::verify) without the memory of tokens seen.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let invalid = |why: &str| TokenError::Invalid(why.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("not signed by Gust"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let key = self
            .verifying_key(&kid, now_secs())
            .ok_or_else(|| invalid("unknown or retired key id"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                ErrorKind::InvalidSignature => Err(invalid("bad signature")),
                _ => Err(invalid("malformed")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(master: &[&str]) -> TokenKeys {
        TokenKeys::new(Arc::new(Keyring::from_keys(master).unwrap()))
    }

    const A: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const B: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    fn claims(ttl: u64) -> Claims {
        let now = now_secs();
        Claims {
            iss: ISSUER.into(),
            sub: "guest".into(),
            nsid: "uuid".into(),
            nsk: fingerprint("uuid", "key"),
            iat: now,
            exp: now + ttl,
            jti: "j".into(),
            scope: vec!["read:*".into()],
            web: None,
        }
    }

    #[test]
    fn signs_and_verifies_across_processes_with_the_same_master_key() {
        let token = keys(&[A]).sign(&claims(60));
        assert_eq!(keys(&[A]).verify(&token).unwrap(), claims_of(&token));
        // After a master key rotation (B current, A kept), A's tokens still verify.
        assert!(keys(&[B, A]).verify(&token).is_ok());
        assert!(matches!(
            keys(&[B]).verify(&token),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_verified_before_is_still_refused_once_expired() {
        let k = keys(&[A]);
        let mut c = claims(0);
        c.exp = now_secs() + 1;
        let token = k.sign(&c);
        assert!(k.verify(&token).is_ok());
        assert!(k.verify(&token).is_ok(), "remembered");
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(k.verify(&token), Err(TokenError::Expired));
        // An altered copy of a remembered token is verified, and fails.
        let fresh = k.sign(&claims(60));
        assert!(k.verify(&fresh).is_ok());
        let mut altered = fresh.into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(matches!(k.verify(&altered), Err(TokenError::Invalid(_))));
    }

    fn claims_of(token: &str) -> Claims {
        keys(&[A]).verify(token).unwrap()
    }

    #[test]
    fn refuses_expired_tampered_and_garbage() {
        let k = keys(&[A]);
        let mut c = claims(60);
        c.exp = now_secs() - 1;
        assert_eq!(k.verify(&k.sign(&c)), Err(TokenError::Expired));
        let token = k.sign(&claims(60));
        let (rest, sig) = token.rsplit_once('.').unwrap();
        let flipped = |s: &str, at: usize| {
            let mut b = s.as_bytes().to_vec();
            b[at] = if b[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).unwrap()
        };
        assert!(k.verify(&format!("{rest}.{}", flipped(sig, 3))).is_err());
        let (head, payload) = rest.split_once('.').unwrap();
        let t = format!("{head}.{}.{sig}", flipped(payload, 10));
        assert!(matches!(k.verify(&t), Err(TokenError::Invalid(_))));
        assert!(k.verify("garbage").is_err());
        assert!(k.verify("").is_err());
    }

    #[test]
    fn kids_older_than_yesterday_are_refused() {
        let k = keys(&[A]);
        let id = k.keyring.ids()[0].to_string();
        let today = now_secs() / DAY;
        assert!(
            k.verifying_key(&format!("{id}.{today}"), now_secs())
                .is_some()
        );
        assert!(
            k.verifying_key(&format!("{id}.{}", today - 1), now_secs())
                .is_some()
        );
        assert!(
            k.verifying_key(&format!("{id}.{}", today - 2), now_secs())
                .is_none()
        );
        assert!(k.verifying_key("nope.1", now_secs()).is_none());
    }

    fn ttl(v: serde_json::Value) -> Result<u64, String> {
        parse_ttl(&v).map(|d| d.as_secs())
    }

    #[test]
    fn lifetimes() {
        use serde_json::json;
        assert_eq!(ttl(json!(90)), Ok(90));
        assert_eq!(ttl(json!("90")), Ok(90));
        assert_eq!(ttl(json!("30s")), Ok(30));
        assert_eq!(ttl(json!("30m")), Ok(1800));
        assert_eq!(ttl(json!("12h")), Ok(43200));
        assert!(ttl(json!("13h")).unwrap_err().contains("at most 12h"));
        assert!(ttl(json!(43201)).unwrap_err().contains("at most 12h"));
        assert!(ttl(json!(0)).unwrap_err().contains("at least"));
        assert!(ttl(json!("1d")).unwrap_err().contains("not a lifetime"));
        assert!(ttl(json!(-5)).unwrap_err().contains("not a lifetime"));
        assert!(ttl(json!("soon")).unwrap_err().contains("not a lifetime"));
    }
}
