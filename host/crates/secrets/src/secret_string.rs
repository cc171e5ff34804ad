//! The in-memory form of a decrypted secret.

use std::fmt;

use zeroize::Zeroize;

/// A plaintext secret held in process memory.
///
/// Its bytes are overwritten with zeros when it is dropped, and `Debug` and `Display` print
/// `<redacted>`: the plaintext leaves this type only through [`SecretString::expose`], so every
/// place that reveals a secret is greppable. It deliberately implements neither `Serialize` nor
/// `PartialEq` (a comparison would be a timing side channel; compare fingerprints instead).
#[derive(Clone, Default)]
pub struct SecretString(String);

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "<redacted>";

impl SecretString {
    /// Takes ownership of `plaintext`; the string's buffer is zeroized when this value drops.
    pub fn new(plaintext: String) -> Self {
        Self(plaintext)
    }

    /// The plaintext. Call it only where the secret must leave the type (e.g. `get --reveal`,
    /// handing the value to the service that needs it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length of the plaintext in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(plaintext: String) -> Self {
        Self::new(plaintext)
    }
}

impl From<&str> for SecretString {
    fn from(plaintext: &str) -> Self {
        Self::new(plaintext.to_owned())
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({REDACTED})")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}
