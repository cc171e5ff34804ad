//! Potter Config secrets: values encrypted at rest, a keyring per environment, rotation, and
//! a plaintext type that never prints itself.
//!
//! A secret in a configuration file is a string `enc:v1:<key-id>:<nonce>:<ciphertext>`:
//! AES-256-GCM with a fresh random nonce, bound (through the additional authenticated data) to
//! its environment and key path, so a ciphertext copied elsewhere fails to decrypt.
//!
//! ```
//! use potter_secrets::{decrypt, encrypt, is_ciphertext, Keyring};
//!
//! let keyring = Keyring::generate("prod")?;
//! let path = ["llm_providers", "openai", "api_key"];
//! let sealed = encrypt(&keyring, "prod", &path, "sk-live-123")?;
//! assert!(is_ciphertext(&sealed));
//!
//! let secret = decrypt(&keyring, "prod", &path, &sealed)?;
//! assert_eq!(secret.expose(), "sk-live-123");
//! assert_eq!(format!("{secret} {secret:?}"), "<redacted> SecretString(<redacted>)");
//!
//! // Moved to another key path: refused.
//! assert!(decrypt(&keyring, "prod", &["llm_providers", "openai", "org"], &sealed).is_err());
//! # Ok::<(), potter_secrets::CipherError>(())
//! ```
//!
//! Keyrings live in `<state>/keyrings/<env>.json` (mode 0600) or come from
//! `POTTER_SECRET_KEY_<ENV>`; see [`Keyring::resolve`]. The design is documented in
//! `docs/SECRETS.md`.

mod cipher;
mod error;
mod fingerprint;
mod keyring;
mod secret_string;
mod store;

pub use cipher::{check_structure, decrypt, encrypt, is_ciphertext, key_id_of, reencrypt, CIPHERTEXT_PREFIX};
pub use error::{display_path, CipherError};
pub use fingerprint::{ciphertext_fingerprint, fingerprint, fingerprint_matches};
pub use keyring::{env_var_name, Keyring, KeyringOrigin, KEY_LEN};
pub use secret_string::{SecretString, REDACTED};
pub use store::{keyring_file, KEYRINGS_DIR};
