//! The operating system's keyring through the keyring crate: macOS Keychain,
//! Windows Credential Manager, the Secret Service over D-Bus on Linux.
//!
//! The backend is named explicitly, never taken from keyring's default
//! builder, so a build without a platform store cannot end up in keyring's
//! in-memory mock and lose the key when the process exits.

use std::sync::mpsc;
use std::time::Duration;

use super::{Keyring, KeyringError};

/// The keyring entry: service and account.
const SERVICE: &str = "shipshape";
const ACCOUNT: &str = "device-key";

/// A keyring that waits on an unlock prompt nobody will answer (a timer run)
/// must not hang the agent.
const DEADLINE: Duration = Duration::from_secs(10);

/// The real keyring of this OS.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsKeyring;

impl Keyring for OsKeyring {
    fn name(&self) -> &'static str {
        if cfg!(target_os = "macos") {
            "the macOS Keychain"
        } else if cfg!(windows) {
            "the Windows Credential Manager"
        } else {
            "the Secret Service keyring"
        }
    }

    fn get(&self) -> Result<Option<Vec<u8>>, KeyringError> {
        with_deadline(|| match entry()?.get_secret() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(error),
        })
    }

    fn set(&self, secret: &[u8]) -> Result<(), KeyringError> {
        let secret = secret.to_vec();
        with_deadline(move || entry()?.set_secret(&secret))
    }

    fn delete(&self) -> Result<(), KeyringError> {
        with_deadline(|| match entry()?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(error) => Err(error),
        })
    }
}

#[cfg(target_os = "linux")]
fn entry() -> keyring::Result<keyring::Entry> {
    let builder = keyring::secret_service::default_credential_builder();
    Ok(keyring::Entry::new_with_credential(
        builder.build(None, SERVICE, ACCOUNT)?,
    ))
}

#[cfg(target_os = "macos")]
fn entry() -> keyring::Result<keyring::Entry> {
    let builder = keyring::macos::default_credential_builder();
    Ok(keyring::Entry::new_with_credential(
        builder.build(None, SERVICE, ACCOUNT)?,
    ))
}

#[cfg(windows)]
fn entry() -> keyring::Result<keyring::Entry> {
    let builder = keyring::windows::default_credential_builder();
    Ok(keyring::Entry::new_with_credential(
        builder.build(None, SERVICE, ACCOUNT)?,
    ))
}

/// Runs a keyring call on its own thread and gives up after [`DEADLINE`];
/// a call still waiting then is abandoned with the process.
fn with_deadline<T: Send + 'static>(
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, KeyringError> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(call());
    });
    match receiver.recv_timeout(DEADLINE) {
        Ok(result) => result.map_err(|error| KeyringError(describe(&error))),
        Err(_) => Err(KeyringError(format!(
            "the keyring did not answer within {} s (locked, waiting for an unlock prompt?)",
            DEADLINE.as_secs()
        ))),
    }
}

/// keyring's message and the platform error under it, on one line.
fn describe(error: &keyring::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
