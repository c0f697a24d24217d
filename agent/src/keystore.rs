//! Where the device key lives: the OS keyring where one opens, else a
//! root-only 0600 file in the agent's state directory (the normal case for a
//! root timer on a headless Linux machine, which has no D-Bus session).
//!
//! The key is the 32-byte Ed25519 seed. It never leaves this module except
//! as a [`SigningKey`] for the signer; nothing here prints or logs it.

mod os;

pub use os::OsKeyring;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::atomic;

/// Which kind of store holds the key, as recorded in `agent.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStoreKind {
    /// The OS keyring ([`OsKeyring`]).
    Keyring,
    /// The `device-key` file in the state directory.
    File,
}

/// What `enroll --key-store` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// The keyring where one opens, else the file.
    Auto,
    /// The keyring, or fail.
    Keyring,
    /// The file, without trying the keyring.
    File,
}

/// One keyring entry that holds the device key. A trait so tests can stand
/// in for a keyring that is there, or one that is not.
pub trait Keyring: Send + Sync {
    /// How to name it to a person ("the Secret Service keyring").
    fn name(&self) -> &'static str;
    /// The stored secret; `None` when the keyring opens but holds none.
    fn get(&self) -> Result<Option<Vec<u8>>, KeyringError>;
    /// Stores the secret, replacing any earlier one.
    fn set(&self, secret: &[u8]) -> Result<(), KeyringError>;
    /// Removes the secret; removing none is not an error.
    fn delete(&self) -> Result<(), KeyringError>;
}

/// Why the keyring cannot be used, as the platform says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyringError(pub String);

/// A device key that cannot be created, stored, or read back.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the operating system gave no random bytes for the device key: {0}")]
    Random(getrandom::Error),
    #[error("no keyring is available ({reason}): use `--key-store file` or `--key-store auto`")]
    NoKeyring { reason: String },
    #[error("{store}: {reason}")]
    Keyring { store: &'static str, reason: String },
    #[error(
        "the device key is missing from {store}: enroll this machine again with `shipshape enroll`"
    )]
    MissingInKeyring { store: &'static str },
    #[error(
        "the device key file {} is missing: enroll this machine again with `shipshape enroll` \
         (or point SHIPSHAPE_STATE_DIR at the directory it was enrolled with)",
        .path.display()
    )]
    MissingFile { path: PathBuf },
    #[error(
        "the device key file {} is readable by others (mode {mode:04o}): run `chmod 600 {}`, \
         and re-enroll if others may have copied it",
        .path.display(), .path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the device key in {where_} is {len} bytes long, expected a 32-byte Ed25519 seed: re-enroll with `shipshape enroll`"
    )]
    Malformed { where_: String, len: usize },
    #[error("could not read the device key file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(anyhow::Error),
}

/// The device's Ed25519 key.
pub struct DeviceKey(SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DeviceKey")
            .field(&self.public_key_base64())
            .finish()
    }
}

impl DeviceKey {
    /// A fresh key from 32 bytes of the operating system's randomness.
    pub fn generate() -> Result<DeviceKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        let key = DeviceKey(SigningKey::from_bytes(&seed));
        seed.fill(0);
        Ok(key)
    }

    fn from_seed(bytes: &[u8], where_: impl FnOnce() -> String) -> Result<DeviceKey, KeyError> {
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed {
            where_: where_(),
            len: bytes.len(),
        })?;
        Ok(DeviceKey(SigningKey::from_bytes(&seed)))
    }

    /// The public key as the server registers it: 32 bytes, standard base64.
    pub fn public_key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().as_bytes())
    }

    /// The key, for a [`crate::transport::Signer`].
    pub fn into_signing_key(self) -> SigningKey {
        self.0
    }
}

/// A place that holds the device key.
#[derive(Clone, Copy)]
pub enum KeyStore<'a> {
    Keyring(&'a dyn Keyring),
    File(&'a Path),
}

impl std::fmt::Debug for KeyStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<'a> KeyStore<'a> {
    /// The store `kind` names, with the file at `key_file`.
    pub fn of(kind: KeyStoreKind, keyring: &'a dyn Keyring, key_file: &'a Path) -> Self {
        match kind {
            KeyStoreKind::Keyring => KeyStore::Keyring(keyring),
            KeyStoreKind::File => KeyStore::File(key_file),
        }
    }

    pub fn kind(&self) -> KeyStoreKind {
        match self {
            KeyStore::Keyring(_) => KeyStoreKind::Keyring,
            KeyStore::File(_) => KeyStoreKind::File,
        }
    }

    /// Where the key is, for a person: the keyring's name or the file's path.
    pub fn describe(&self) -> String {
        match self {
            KeyStore::Keyring(keyring) => keyring.name().to_owned(),
            KeyStore::File(path) => path.display().to_string(),
        }
    }

    /// Reads the key back.
    pub fn load(&self) -> Result<DeviceKey, KeyError> {
        match self {
            KeyStore::Keyring(keyring) => {
                let secret = keyring
                    .get()
                    .map_err(|error| KeyError::Keyring {
                        store: keyring.name(),
                        reason: error.0,
                    })?
                    .ok_or(KeyError::MissingInKeyring {
                        store: keyring.name(),
                    })?;
                DeviceKey::from_seed(&secret, || keyring.name().to_owned())
            }
            KeyStore::File(path) => load_file(path),
        }
    }

    /// Stores the key, replacing any earlier one.
    pub fn save(&self, key: &DeviceKey) -> Result<(), KeyError> {
        let seed = key.0.to_bytes();
        let result = match self {
            KeyStore::Keyring(keyring) => keyring.set(&seed).map_err(|error| KeyError::Keyring {
                store: keyring.name(),
                reason: format!("could not store the device key: {error}"),
            }),
            KeyStore::File(path) => {
                atomic::write(path, &seed, atomic::Access::Owner).map_err(KeyError::Write)
            }
        };
        let mut seed = seed;
        seed.fill(0);
        result
    }

    /// Removes the key (an enrollment that moved to another store leaves no copy behind).
    pub fn remove(&self) -> Result<(), KeyError> {
        match self {
            KeyStore::Keyring(keyring) => keyring.delete().map_err(|error| KeyError::Keyring {
                store: keyring.name(),
                reason: format!("could not remove the old device key: {error}"),
            }),
            KeyStore::File(path) => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(KeyError::Write(anyhow::Error::new(error).context(format!(
                    "could not remove the old device key {}",
                    path.display()
                )))),
            },
        }
    }
}

fn load_file(path: &Path) -> Result<DeviceKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            KeyError::MissingFile {
                path: path.to_owned(),
            }
        } else {
            KeyError::Read {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| KeyError::Read {
                path: path.to_owned(),
                source,
            })?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    DeviceKey::from_seed(&bytes, || path.display().to_string())
}

/// The store `enroll` settled on, and why a file when it is one.
#[derive(Debug)]
pub struct Chosen<'a> {
    pub store: KeyStore<'a>,
    /// Why the keyring was passed over, when `auto` fell back to the file.
    pub fallback_reason: Option<String>,
}

impl Chosen<'_> {
    /// What to tell the person once the key is stored there.
    pub fn stored_message(&self) -> String {
        match (&self.store, &self.fallback_reason) {
            (KeyStore::Keyring(keyring), _) => {
                format!("device key stored in {}", keyring.name())
            }
            (KeyStore::File(path), Some(reason)) => format!(
                "device key stored in {} (0600): no keyring available here: {reason}",
                path.display()
            ),
            (KeyStore::File(path), None) => format!(
                "device key stored in {} (0600), as --key-store file asked",
                path.display()
            ),
        }
    }
}

/// Decides where a new key goes, before anything is enrolled: a store that
/// fails later would leave the server with a device nobody can sign for.
/// The keyring counts as available when reading its entry works, with or
/// without a key in it.
pub fn choose<'a>(
    choice: Choice,
    keyring: &'a dyn Keyring,
    key_file: &'a Path,
) -> Result<Chosen<'a>, KeyError> {
    let file = |fallback_reason| Chosen {
        store: KeyStore::File(key_file),
        fallback_reason,
    };
    match choice {
        Choice::File => Ok(file(None)),
        Choice::Keyring | Choice::Auto => match keyring.get() {
            Ok(_) => Ok(Chosen {
                store: KeyStore::Keyring(keyring),
                fallback_reason: None,
            }),
            Err(error) if choice == Choice::Auto => Ok(file(Some(error.0))),
            Err(error) => Err(KeyError::NoKeyring { reason: error.0 }),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A keyring that works, in memory.
    #[derive(Default)]
    struct Working(Mutex<Option<Vec<u8>>>);

    impl Keyring for Working {
        fn name(&self) -> &'static str {
            "the test keyring"
        }
        fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn set(&self, secret: &[u8]) -> Result<(), KeyringError> {
            *self.0.lock().unwrap() = Some(secret.to_vec());
            Ok(())
        }
        fn delete(&self) -> Result<(), KeyringError> {
            *self.0.lock().unwrap() = None;
            Ok(())
        }
    }

    /// A keyring that is not there, like the Secret Service without a D-Bus session.
    struct Absent;

    impl Keyring for Absent {
        fn name(&self) -> &'static str {
            "the test keyring"
        }
        fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
            Err(KeyringError("no D-Bus session".to_owned()))
        }
        fn set(&self, _: &[u8]) -> Result<(), KeyringError> {
            Err(KeyringError("no D-Bus session".to_owned()))
        }
        fn delete(&self) -> Result<(), KeyringError> {
            Err(KeyringError("no D-Bus session".to_owned()))
        }
    }

    #[test]
    fn auto_prefers_a_working_keyring() {
        let keyring = Working::default();
        let file = Path::new("/nonexistent/device-key");
        let chosen = choose(Choice::Auto, &keyring, file).unwrap();
        assert_eq!(chosen.store.kind(), KeyStoreKind::Keyring);
        let key = DeviceKey::generate().unwrap();
        chosen.store.save(&key).unwrap();
        let loaded = chosen.store.load().unwrap();
        assert_eq!(loaded.public_key_base64(), key.public_key_base64());
        assert_eq!(
            chosen.stored_message(),
            "device key stored in the test keyring"
        );
    }

    #[test]
    fn auto_falls_back_to_the_file_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("device-key");
        let chosen = choose(Choice::Auto, &Absent, &file).unwrap();
        assert_eq!(chosen.store.kind(), KeyStoreKind::File);
        chosen.store.save(&DeviceKey::generate().unwrap()).unwrap();
        assert_eq!(
            chosen.stored_message(),
            format!(
                "device key stored in {} (0600): no keyring available here: no D-Bus session",
                file.display()
            )
        );
    }

    #[test]
    fn an_explicit_keyring_that_is_absent_is_an_error() {
        let error = choose(Choice::Keyring, &Absent, Path::new("unused")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no keyring is available (no D-Bus session): use `--key-store file` or `--key-store auto`"
        );
        let working = Working::default();
        let explicit = choose(Choice::File, &working, Path::new("/x/device-key")).unwrap();
        assert_eq!(explicit.store.kind(), KeyStoreKind::File);
        assert!(
            explicit
                .stored_message()
                .ends_with("as --key-store file asked")
        );
    }

    #[test]
    fn the_key_file_is_0600_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("device-key");
        let store = KeyStore::File(&path);
        let key = DeviceKey::generate().unwrap();
        store.save(&key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        let loaded = store.load().unwrap();
        assert_eq!(loaded.public_key_base64(), key.public_key_base64());
        assert_eq!(
            loaded.into_signing_key().to_bytes(),
            key.into_signing_key().to_bytes()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-key");
        KeyStore::File(&path)
            .save(&DeviceKey::generate().unwrap())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = KeyStore::File(&path).load().unwrap_err().to_string();
        assert!(error.contains("readable by others (mode 0644)"), "{error}");
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn missing_and_malformed_keys_say_to_re_enroll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-key");
        let missing = KeyStore::File(&path).load().unwrap_err().to_string();
        assert!(missing.contains("is missing"), "{missing}");
        assert!(missing.contains("shipshape enroll"), "{missing}");
        atomic::write(&path, b"short", atomic::Access::Owner).unwrap();
        let malformed = KeyStore::File(&path).load().unwrap_err().to_string();
        assert!(malformed.contains("is 5 bytes long"), "{malformed}");
        let empty = Working::default();
        let none = KeyStore::Keyring(&empty).load().unwrap_err().to_string();
        assert_eq!(
            none,
            "the device key is missing from the test keyring: enroll this machine again with `shipshape enroll`"
        );
    }

    #[test]
    fn debug_output_shows_only_the_public_key() {
        let key = DeviceKey(SigningKey::from_bytes(&[42; 32]));
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.public_key_base64()), "{debug}");
        let secret = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
        assert!(!debug.contains(&secret));
    }
}
