//! The master key: Gust's one secret that lives outside the store. It seals secrets at rest
//! (action, package and trigger parameters marked secret, webhook and broker secrets) and
//! derives the keys that sign scoped tokens, so every process of a cluster that holds the same
//! master key opens the same secrets and checks the same tokens without a store read.
//!
//! **Where it comes from:** `GUST_MASTER_KEY` (comma-separated keys, the first current; each
//! 32 bytes as 64 hex characters or base64), else `master.key` in the data directory (one key
//! per line, the first current), created 0600 with a random key at first start.
//!
//! **Wire format of a sealed value** (stored; decision 0022): `gust:v1:<key id>:<base64url of
//! nonce (12 bytes) || ciphertext || tag (16 bytes)>`, AES-256-GCM with a random nonce under
//! the key named by its id (the first 8 hex characters of SHA-256 of the key). The caller's
//! associated data (for instance the parameter's name) binds a value to its place: moved to
//! another place it does not open.
//!
//! **Rotation:** a new key is put first and the old one kept after it; values sealed under
//! the old one still open, [`Keyring::is_current`] tells which to seal again; once none is
//! left, the old key is removed.
//!
//! **Invariant:** no Gust dependency; the clear key never leaves this crate (only derived
//! keys do, for one named purpose each).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// The environment variable that holds the master keys (first current).
pub const ENV: &str = "GUST_MASTER_KEY";
/// The file in the data directory that holds them when the environment does not.
pub const FILE: &str = "master.key";
/// What every sealed value starts with.
pub const PREFIX: &str = "gust:v1:";

/// What can go wrong with keys and sealed values. `Malformed`, `UnknownKey` and `Tampered`
/// come from stored data (or a key configured wrong); `Io` and `BadKey` from the host.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The master key file could not be read or written.
    #[error("master key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A configured master key is not 32 bytes in hex or base64.
    #[error("a master key must be 32 bytes as 64 hex characters or base64 ({0})")]
    BadKey(String),
    /// No master key is configured (an empty `GUST_MASTER_KEY` or key file).
    #[error("no master key: {0} is empty")]
    Empty(String),
    /// A sealed value that does not have the sealed layout.
    #[error("not a sealed value")]
    Malformed,
    /// A value sealed under a key this process does not hold.
    #[error("sealed under master key {0}, which this process does not hold")]
    UnknownKey(String),
    /// A value that does not open under its key: altered, or moved to another place.
    #[error("a sealed value does not open: altered or moved")]
    Tampered,
}

/// One 32-byte master key and its id.
struct MasterKey {
    id: String,
    aead: LessSafeKey,
    bytes: [u8; 32],
}

impl MasterKey {
    fn new(bytes: [u8; 32]) -> MasterKey {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &bytes).unwrap_or_else(|_| unreachable!("32 bytes")),
        );
        MasterKey { id, aead, bytes }
    }

    fn parse(text: &str) -> Result<MasterKey, KeyringError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| KeyringError::BadKey(e.to_string()))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|e| KeyringError::BadKey(e.to_string()))?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyringError::BadKey(format!("{} bytes", b.len())))?;
        Ok(MasterKey::new(bytes))
    }
}

/// The master keys this process holds: the current one (which seals) and older ones (which
/// still open what they sealed).
pub struct Keyring {
    keys: Vec<MasterKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.ids())
            .finish()
    }
}

impl Keyring {
    /// A keyring of these keys, each 64 hex characters or base64 of 32 bytes; the first seals.
    pub fn from_keys<S: AsRef<str>>(keys: &[S]) -> Result<Keyring, KeyringError> {
        let keys = keys
            .iter()
            .map(|k| k.as_ref().trim())
            .filter(|k| !k.is_empty())
            .map(MasterKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyringError::Empty("the key list".into()));
        }
        Ok(Keyring {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The keys of `GUST_MASTER_KEY` if it is set, else of `master.key` in `data_dir`,
    /// created (0600) with a new random key if it does not exist.
    pub fn load(data_dir: &Path) -> Result<Keyring, KeyringError> {
        if let Ok(value) = std::env::var(ENV) {
            let keys: Vec<&str> = value.split(',').collect();
            return Keyring::from_keys(&keys).map_err(|e| match e {
                KeyringError::Empty(_) => KeyringError::Empty(ENV.into()),
                e => e,
            });
        }
        let path = data_dir.join(FILE);
        if !path.exists() {
            write_key_file(&path, &[new_key_text()])?;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| KeyringError::Io {
            path: path.clone(),
            source,
        })?;
        let keys: Vec<&str> = text.lines().collect();
        Keyring::from_keys(&keys).map_err(|e| match e {
            KeyringError::Empty(_) => KeyringError::Empty(path.display().to_string()),
            e => e,
        })
    }

    /// A keyring with one new random key (tests, and `rotate`'s new key).
    pub fn generate() -> Keyring {
        Keyring::from_keys(&[new_key_text()]).unwrap_or_else(|_| unreachable!("a fresh key"))
    }

    /// The ids of the keys held, current first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// Seals `plain` under the current key, bound to `aad` (the place it is stored at).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> String {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        // The system's random source failing is not something to carry on after.
        self.rng
            .fill(&mut nonce)
            .unwrap_or_else(|_| panic!("the system random source failed"));
        let mut data = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut data,
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any length Gust stores"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!(
            "{PREFIX}{}:{}",
            key.id,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// Opens a value [`seal`](Self::seal) made with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let (id, body) = split(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyringError::UnknownKey(id.to_string()))?;
        let mut data = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| KeyringError::Malformed)?;
        if data.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(KeyringError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = data[..NONCE_LEN]
            .try_into()
            .map_err(|_| KeyringError::Malformed)?;
        let plain = key
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut data[NONCE_LEN..],
            )
            .map_err(|_| KeyringError::Tampered)?;
        Ok(plain.to_vec())
    }

    /// Whether `sealed` was sealed under the current key (else rotation seals it again).
    pub fn is_current(&self, sealed: &str) -> bool {
        split(sealed).is_ok_and(|(id, _)| id == self.current().id)
    }

    /// A 32-byte key for one `purpose` (for instance `"token-signing:2026-12-06"`), derived
    /// from the current master key with HKDF-SHA256: the same on every process holding it.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        derive_from(&self.current().bytes, purpose)
    }

    /// The keys [`derive`](Self::derive) gives for `purpose` under every key held, current
    /// first (to check what an older master key signed during a rotation).
    pub fn derive_all(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|k| derive_from(&k.bytes, purpose))
            .collect()
    }
}

/// Whether `value` is a sealed value (by its prefix).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

fn split(sealed: &str) -> Result<(&str, &str), KeyringError> {
    sealed
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or(KeyringError::Malformed)
}

fn derive_from(master: &[u8; 32], purpose: &str) -> [u8; 32] {
    struct Len32;
    impl ring::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"gust master key");
    let prk = salt.extract(master);
    let info = [purpose.as_bytes()];
    let mut out = [0u8; 32];
    prk.expand(&info, Len32)
        .and_then(|okm| okm.fill(&mut out))
        .unwrap_or_else(|_| unreachable!("32 bytes is within HKDF-SHA256's output"));
    out
}

/// A new random key as 64 hex characters.
pub fn new_key_text() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("the system random source failed"));
    hex::encode(bytes)
}

/// Writes `keys` (current first), one per line, to `path`, readable by its owner only.
pub fn write_key_file(path: &Path, keys: &[String]) -> Result<(), KeyringError> {
    let mut text = keys.join("\n");
    text.push('\n');
    write_private(path, text.as_bytes()).map_err(|source| KeyringError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path`, readable and writable by its owner only (0600, also when
/// the file existed with a wider mode), and syncs it to disk.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()
}

/// The keys of the key file at `path`, current first, as written.
pub fn read_key_file(path: &Path) -> Result<Vec<String>, KeyringError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_under_its_key() {
        let ring = Keyring::generate();
        let sealed = ring.seal(b"hunter2", b"actions/guest/a/password");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            ring.open(&sealed, b"actions/guest/a/password").unwrap(),
            b"hunter2"
        );
        assert!(matches!(
            ring.open(&sealed, b"actions/guest/b/password"),
            Err(KeyringError::Tampered)
        ));
        // One bit flipped in the ciphertext.
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        bytes[14] ^= 1;
        let flipped = format!(
            "{head}:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        assert!(matches!(
            ring.open(&flipped, b"actions/guest/a/password"),
            Err(KeyringError::Tampered)
        ));
        let other = Keyring::generate();
        assert!(matches!(
            other.open(&sealed, b"actions/guest/a/password"),
            Err(KeyringError::UnknownKey(_))
        ));
        assert!(matches!(
            ring.open("gust:v1:nonsense", b""),
            Err(KeyringError::Malformed)
        ));
        // Two seals of one value differ (random nonces).
        assert_ne!(ring.seal(b"x", b""), ring.seal(b"x", b""));
    }

    #[test]
    fn a_rotated_keyring_opens_the_old_values_and_seals_under_the_new_key() {
        let old = new_key_text();
        let new = new_key_text();
        let before = Keyring::from_keys(&[&old]).unwrap();
        let sealed = before.seal(b"v", b"p");
        let after = Keyring::from_keys(&[&new, &old]).unwrap();
        assert_eq!(after.open(&sealed, b"p").unwrap(), b"v");
        assert!(!after.is_current(&sealed));
        assert!(after.is_current(&after.seal(b"v", b"p")));
        assert_eq!(after.derive_all("t").len(), 2);
        assert_eq!(after.derive_all("t")[1], before.derive("t"));
        assert_ne!(after.derive("t"), before.derive("t"));
        assert_ne!(after.derive("t"), after.derive("u"));
    }

    #[test]
    fn the_key_file_is_made_private_at_first_load_and_read_back_after() {
        let dir = tempfile::tempdir().unwrap();
        // Only when the environment does not name a key (tests do not set it).
        if std::env::var(ENV).is_ok() {
            return;
        }
        let first = Keyring::load(dir.path()).unwrap();
        let again = Keyring::load(dir.path()).unwrap();
        assert_eq!(first.ids(), again.ids());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Keyring::from_keys(&["abc"]).is_err());
        assert!(Keyring::from_keys::<&str>(&[]).is_err());
    }
}
