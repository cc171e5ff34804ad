//! `potter-config serve` as a child process on 127.0.0.1 (any free port), killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Serve {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Serve {
    /// Serves the tree at `root` with state in `state`, the process environment cleared but for
    /// `PATH` and `env`. Returns once the server printed its address (it is listening).
    pub fn start(root: &Path, state: &Path, env: &[(String, String)]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
            .args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server prints its address").unwrap();
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Serve { child, addr }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
