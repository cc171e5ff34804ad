//! Hostile test source plugin: uses WASI capabilities its manifest does not grant — files
//! (`/etc/passwd`, the root directory; it has no directory grant), environment variables (any,
//! and the host's keyring variable) and sockets (a TCP connection to a loopback port that is
//! listening, `probe_port` of its namespace, and a name lookup) — and returns what it got, so a
//! test can read that every attempt came back empty or refused:
//! `{"probe": {"file": "denied", "dir": "denied", "env": 0, "keyring": "absent", "tcp": "denied", "dns": "denied"}}`.

use std::net::{TcpStream, ToSocketAddrs};

use potter_sdk::{json, Source, Value};

struct UngrantedWasi;

fn outcome<T, E>(result: Result<T, E>) -> &'static str {
    if result.is_ok() {
        "ALLOWED"
    } else {
        "denied"
    }
}

impl Source for UngrantedWasi {
    fn load(_environment: &str) -> Result<Value, String> {
        let port = potter_sdk::namespace_config().get("probe_port").and_then(Value::as_u64).unwrap_or(7700);
        let keyring = match std::env::var_os("POTTER_SECRET_KEY_PRODUCTION") {
            Some(_) => "PRESENT",
            None => "absent",
        };
        Ok(json!({
            "probe": {
                "file": outcome(std::fs::read("/etc/passwd")),
                "dir": outcome(std::fs::read_dir("/")),
                "env": std::env::vars_os().count(),
                "keyring": keyring,
                "tcp": outcome(TcpStream::connect(("127.0.0.1", port as u16))),
                "dns": outcome("example.com:80".to_socket_addrs()),
            }
        }))
    }
}

potter_sdk::export_source!(UngrantedWasi);
