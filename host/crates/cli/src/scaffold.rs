//! `potter-config plugin new`: a plugin project (Rust, Python or JavaScript; validator or source)
//! that builds, signs with a development key it creates and loads on first try (`./install.sh ROOT`).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use potter_config::Error;
use potter_plugin::is_plugin_name;

use super::{exit, Failure, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Rust,
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Validator,
    Source,
}

/// What `plugin new` was asked for.
pub struct NewPlugin<'a> {
    pub name: &'a str,
    pub language: Language,
    pub kind: Kind,
    /// The project folder (default `./<name>`).
    pub dir: Option<&'a Path>,
    /// A checkout's `sdk/` folder to depend on instead of the published packages.
    pub sdk: Option<&'a Path>,
}

const MANIFEST: &str = include_str!("../templates/plugin/manifest.plugin.toml");
const INSTALL: &str = include_str!("../templates/plugin/install.sh");
const GITIGNORE: &str = include_str!("../templates/plugin/gitignore");

/// Interpreted guests need more than the default limits: a fresh CPython or SpiderMonkey instance
/// takes 9-16 MiB and a few milliseconds before it reads the configuration.
const INTERPRETER_LIMITS: &str = "\n[limits]\nmemory_mib = 128\ntimeout_ms = 2000\n";

pub fn run(request: &NewPlugin) -> Outcome {
    if !is_plugin_name(request.name) {
        return Err(usage(format!(
            "`{}` is not a plugin name: 1-64 characters of a-z, 0-9 and `-`, starting with a letter or digit",
            request.name
        )));
    }
    let dir = request.dir.map_or_else(|| PathBuf::from(request.name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir).map_err(|source| io(&dir, source))?.next().is_some() {
        return Err(usage(format!("{} exists and is not empty; choose another --dir", dir.display())));
    }
    let sdk = request.sdk.map(|sdk| sdk.canonicalize().map_err(|source| io(sdk, source))).transpose()?;
    let files = project_files(request, sdk.as_deref());
    for (relative, contents) in &files {
        write(&dir.join(relative), contents)?;
    }
    make_executable(&dir.join("install.sh"))?;
    potter_plugin::keygen(&dir.join("dev-key")).map_err(Error::from)?;

    let language = format!("{:?}", request.language).to_lowercase();
    let kind = format!("{:?}", request.kind).to_lowercase();
    println!("created {} ({language} {kind} `{}`), with a development signing key dev-key.key", dir.display(), request.name);
    println!("build, sign and load it into a tree: {}/install.sh ROOT", dir.display());
    Ok(())
}

/// Every file of the project but the key pair: (path inside the project, contents).
fn project_files(request: &NewPlugin, sdk: Option<&Path>) -> Vec<(String, String)> {
    let name = request.name;
    let kind = match request.kind {
        Kind::Validator => "validator",
        Kind::Source => "source",
    };
    // A source writes under its prefix; a key segment may not hold `-` everywhere it is used.
    let prefix = name.replace('-', "_");
    let (prefixes_comment, prefix) = match request.kind {
        Kind::Validator => ("The keys it receives (besides its own namespace plugins.<name>).", "app".to_owned()),
        Kind::Source => ("The keys its layer may write.", prefix),
    };
    let limits = if request.language == Language::Rust { "" } else { INTERPRETER_LIMITS };
    let (module, module_text, build, ignore, mut extra) = match request.language {
        Language::Rust => {
            let dependency = match sdk {
                Some(sdk) => format!("potter-sdk = {{ path = {:?} }}", sdk.display().to_string()),
                None => "potter-sdk = \"0.1\"".to_owned(),
            };
            let module = match request.kind {
                Kind::Validator => include_str!("../templates/plugin/rust-validator.rs"),
                Kind::Source => include_str!("../templates/plugin/rust-source.rs"),
            };
            let crate_name = name.replace('-', "_");
            let build = format!(
                "cargo build --release --target wasm32-wasip2\ncp \"${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_name}.wasm\" {name}.wasm"
            );
            let cargo = include_str!("../templates/plugin/rust-Cargo.toml").replace("{{sdk_dependency}}", &dependency);
            ("src/lib.rs".to_owned(), module, build, "target/\nCargo.lock", vec![("Cargo.toml".to_owned(), cargo)])
        }
        Language::Python => {
            let package = sdk.map_or_else(|| "potter-config-sdk".to_owned(), |sdk| sdk.join("python").display().to_string());
            let module = match request.kind {
                Kind::Validator => include_str!("../templates/plugin/python-validator.py"),
                Kind::Source => include_str!("../templates/plugin/python-source.py"),
            };
            // One virtual environment per project holds componentize-py and the SDK.
            let build = format!(
                "[ -x .venv/bin/potter-plugin ] || {{ python3 -m venv .venv && .venv/bin/pip install --quiet {}; }}\n.venv/bin/potter-plugin build .",
                shell_quote(&package)
            );
            ("app.py".to_owned(), module, build, ".venv/\n__pycache__/", Vec::new())
        }
        Language::Js => {
            let package = sdk.map_or_else(|| "^0.1.0".to_owned(), |sdk| format!("file:{}", sdk.join("js").display()));
            let module = match request.kind {
                Kind::Validator => include_str!("../templates/plugin/js-validator.js"),
                Kind::Source => include_str!("../templates/plugin/js-source.js"),
            };
            let manifest = include_str!("../templates/plugin/js-package.json").replace("{{sdk_dependency}}", &package);
            // `--install-links` copies a path dependency with its own dependencies (componentize-js).
            let build = "npm install --silent --no-audit --no-fund --install-links\nnpx potter-plugin build .".to_owned();
            (format!("{name}.js"), module, build, "node_modules/\npackage-lock.json", vec![("package.json".to_owned(), manifest)])
        }
    };
    let type_name: String = name
        .split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect();
    // A Rust type name may not start with a digit.
    let type_name = if type_name.starts_with(|c: char| c.is_ascii_digit()) { format!("Plugin{type_name}") } else { type_name };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{kind}}", kind)
            .replace("{{prefix}}", &prefix)
            .replace("{{prefixes_comment}}", prefixes_comment)
            .replace("{{limits}}", limits)
            .replace("{{type_name}}", &type_name)
            .replace("{{build}}", &build)
            .replace("{{ignore}}", ignore)
    };
    let mut files = vec![
        (format!("{name}.plugin.toml"), fill(MANIFEST)),
        (module, fill(module_text)),
        ("install.sh".to_owned(), fill(INSTALL)),
        (".gitignore".to_owned(), fill(GITIGNORE)),
    ];
    for (_, contents) in &mut extra {
        *contents = fill(contents);
    }
    files.extend(extra);
    files
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn write(path: &Path, contents: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| io(parent, source))?;
    }
    std::fs::write(path, contents).map_err(|source| io(path, source))
}

fn make_executable(path: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| io(path, source))
}

fn io(path: &Path, source: std::io::Error) -> Failure {
    Error::Io { path: path.to_path_buf(), source }.into()
}

fn usage(message: String) -> Failure {
    Failure { code: exit::USAGE, message }
}
