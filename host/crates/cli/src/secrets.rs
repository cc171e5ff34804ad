//! `potter-config secrets …`: keyrings, encrypting values, rotation, listing secret paths.
//!
//! Values are read from stdin, never from arguments (which other users can see in `ps` and
//! which land in shell history). Nothing here prints a plaintext or key material.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use potter_engine::ViewKey;
use potter_secrets::{Keyring, SecretString};
use serde_json::{json, Value};

use super::{Cli, Outcome};
use potter_config::Error;
use crate::output::{render, OutputFormat};
use potter_config::secret_values::{self, SecretsError};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create the keyring of the environment (`--env`) in the state directory (file mode 0600).
    Keygen,
    /// Encrypt the value read from stdin and store it at KEY in environments/<env>.*.
    Set {
        /// Dotted key path, e.g. `llm_providers.openai.api_key`.
        key: String,
    },
    /// Encrypt the value read from stdin for KEY and print the ciphertext (to paste into a file).
    Encrypt {
        /// Dotted key path the ciphertext is bound to.
        #[arg(long)]
        key: String,
    },
    /// Add a key, re-encrypt every secret of the environment with it, retire keys no longer used.
    Rotate,
    /// Print the secret paths of the view (never their values).
    List,
}

pub fn run(cli: &Cli, command: &SecretsCommand) -> Outcome {
    let options = cli.options();
    let env = cli.environment.as_str();
    match command {
        SecretsCommand::Keygen => {
            refuse_state_inside_root(&options.root, &options.state_dir)?;
            let keyring = Keyring::create_in_state(&options.state_dir, env).map_err(SecretsError::Keyring).map_err(Error::from)?;
            let file = potter_secrets::keyring_file(&options.state_dir, env).map_err(SecretsError::Keyring).map_err(Error::from)?;
            println!("created the keyring of `{env}` at {} (key {}, mode 0600)", file.display(), keyring.newest_key_id());
            println!("keep it out of version control; in containers pass it as {} instead", potter_secrets::env_var_name(env).unwrap_or_default());
            Ok(())
        }
        SecretsCommand::Set { key } => {
            potter_engine::parse_key_path(key).map_err(Error::from)?;
            let value = read_value_from_stdin()?;
            let report = secret_values::set_secret(&options, env, key, &value)?;
            let created = if report.created { " (created the file)" } else { "" };
            println!("set `{key}` in {}{created}, encrypted for `{env}` with key {}", report.file, report.key_id);
            Ok(())
        }
        SecretsCommand::Encrypt { key } => {
            potter_engine::parse_key_path(key).map_err(Error::from)?;
            let value = read_value_from_stdin()?;
            println!("{}", secret_values::encrypt_value(&options, env, key, &value)?);
            Ok(())
        }
        SecretsCommand::Rotate => {
            let report = secret_values::rotate(&options, env)?;
            match (&report.new_key, &report.env_var) {
                (Some(new_key), _) => {
                    println!("rotated `{env}`: new key {new_key}; re-encrypted {} secret(s) in {}", report.reencrypted, report.file);
                    if report.retired.is_empty() {
                        println!("no key retired");
                    } else {
                        println!("retired {}", report.retired.join(", "));
                    }
                    if !report.kept_for_history.is_empty() {
                        println!("kept {}: the history's older versions hold ciphertexts under them (a rollback needs them)", report.kept_for_history.join(", "));
                    }
                }
                (None, Some(var)) => {
                    println!("the `{env}` keyring comes from {var}, which this command cannot change:");
                    println!("re-encrypted {} secret(s) in {} with its newest key {}", report.reencrypted, report.file, report.newest_key);
                    println!("to rotate: 1. append a new key to {var} (comma-separated, newest last; `openssl rand -base64 32`)");
                    println!("           2. run `potter-config secrets rotate --env {env}` again with the new value");
                    if report.unreferenced.is_empty() {
                        println!("           3. then drop the keys nothing references any more (none now)");
                    } else {
                        println!("           3. keys nothing references any more, which you may now drop from {var}: {}", report.unreferenced.join(", "));
                    }
                }
                (None, None) => unreachable!("a keyring comes from a file or a variable"),
            }
            Ok(())
        }
        SecretsCommand::List => {
            let host = cli.open()?;
            let snapshot = host.snapshot();
            let key = ViewKey::new(env, cli.service.as_deref(), cli.user.as_deref());
            let view = host.options().served_view(&snapshot, &key)?;
            let paths = secret_values::secret_paths(view);
            if cli.format == OutputFormat::Text {
                for path in &paths {
                    println!("{path}");
                }
            } else {
                let list = Value::Array(paths.into_iter().map(Value::String).collect());
                println!("{}", render(&json!({ "secrets": list }), cli.format, "secrets").trim_end());
            }
            Ok(())
        }
    }
}

/// The secret from stdin, with one trailing newline (`\n` or `\r\n`) removed.
fn read_value_from_stdin() -> Result<SecretString, Error> {
    let mut text = String::new();
    let read = std::io::stdin().read_to_string(&mut text);
    let kept = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).len();
    text.truncate(kept);
    // Into the zeroizing type before anything can return early.
    let value = SecretString::new(text);
    read.map_err(|e| SecretsError::Usage(format!("cannot read the value from stdin: {e}")))?;
    if value.is_empty() {
        return Err(SecretsError::Usage("no value on stdin: pipe the secret in, e.g. `printf %s \"$KEY\" | potter-config secrets set KEY --env E`".into()).into());
    }
    Ok(value)
}

/// A keyring inside the config tree would end up in version control next to the ciphertexts.
fn refuse_state_inside_root(root: &Path, state: &Path) -> Result<(), Error> {
    fn absolute(path: &Path) -> PathBuf {
        // The state directory may not exist yet: resolve the nearest existing ancestor.
        let mut existing = path.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() };
                }
                _ => break,
            }
        }
        let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
        resolved.extend(rest.into_iter().rev());
        resolved
    }
    let (root, state) = (absolute(root), absolute(state));
    if state.starts_with(&root) {
        return Err(SecretsError::Usage(format!(
            "the state directory {} is inside the config tree {}: keyrings must live outside it (pass --state)",
            state.display(),
            root.display()
        ))
        .into());
    }
    Ok(())
}
