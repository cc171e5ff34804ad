//! A real etcd member for tests and benchmarks (Debian's `etcd-server`), on free loopback ports in
//! a temporary directory.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use potter_history_etcd::EtcdLocation;

/// A real etcd member. It is also stopped when this test process exits (a watchdog shell waits on
/// our pid), since a value in a `static` is never dropped.
pub struct Etcd {
    pub client_port: u16,
    dir: std::path::PathBuf,
    child: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap().keep();
        let (client_port, peer_port) = (free_port(), free_port());
        let script = r#"
            etcd --name potter-test --data-dir "$1/data" \
                 --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
                 --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
                 --initial-cluster "potter-test=http://127.0.0.1:$3" >"$1/etcd.log" 2>&1 &
            member=$!
            echo $member >"$1/member.pid"
            trap 'kill $member 2>/dev/null; wait $member; rm -rf "$1"; exit 0' TERM
            while kill -0 "$4" 2>/dev/null && kill -0 $member 2>/dev/null; do sleep 0.3; done
            kill $member 2>/dev/null; wait $member; rm -rf "$1"
        "#;
        let child = Command::new("sh")
            .args(["-c", script, "etcd-watchdog"])
            .arg(&dir)
            .arg(client_port.to_string())
            .arg(peer_port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian's etcd-server) is installed by scripts/setup");
        let etcd = Etcd { client_port, dir: dir.clone(), child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", client_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not start; see {}/etcd.log", dir.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    pub fn location(&self, prefix: &str) -> EtcdLocation {
        format!("etcd://127.0.0.1:{}/{prefix}", self.client_port).parse().unwrap()
    }

    /// SIGSTOP / SIGCONT the member: to its clients it is unreachable, then back with its data.
    #[allow(dead_code)]
    pub fn signal_member(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join("member.pid")).unwrap();
        assert!(Command::new("kill").args([signal, pid.trim()]).status().unwrap().success());
    }

    /// etcd's own put → watch latency on raw clients, `changes` times (the benchmarks' baseline).
    #[allow(dead_code)]
    pub fn put_to_watch_latencies(&self, changes: usize) -> Vec<Duration> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let endpoint = format!("http://127.0.0.1:{}", self.client_port);
            let mut writer = etcd_client::Client::connect([endpoint.clone()], None).await.unwrap();
            let mut watcher = etcd_client::Client::connect([endpoint], None).await.unwrap();
            let (_watch, mut stream) = watcher.watch("/raw/key", None).await.unwrap();
            let mut samples = Vec::new();
            for n in 0..changes {
                let started = Instant::now();
                writer.put("/raw/key", n.to_string(), None).await.unwrap();
                loop {
                    let response = stream.message().await.unwrap().unwrap();
                    if !response.events().is_empty() {
                        break;
                    }
                }
                samples.push(started.elapsed());
            }
            samples
        })
    }

    #[allow(dead_code)]
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

