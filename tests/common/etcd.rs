//! A real etcd cluster for the fleet tests (Debian's `etcd-server`): members on free loopback
//! ports with data directories in one temporary directory, started, killed and restarted by the
//! tests. A watchdog shell kills every member and removes the directory when the test process
//! exits (a cluster in a `static` is never dropped).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The three-member cluster a test binary's tests share (started by the first that asks).
pub fn shared_cluster() -> &'static EtcdCluster {
    static CLUSTER: OnceLock<EtcdCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| EtcdCluster::start(3))
}

/// Runs the shared cluster's tests one at a time (some kill its members), each starting with
/// every member up.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    shared_cluster().restart_all();
    guard
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Child>,
}

/// Members `m0..mN`, each restartable with its data.
pub struct EtcdCluster {
    dir: PathBuf,
    /// Client URLs served over TLS with this certificate and key, requiring client certificates
    /// signed by this CA (PEM files).
    client_tls: Option<(PathBuf, PathBuf, PathBuf)>,
    members: Mutex<Vec<Member>>,
    _watchdog: Child,
}

impl EtcdCluster {
    pub fn start(size: usize) -> EtcdCluster {
        Self::start_with(size, None)
    }

    /// Members whose client URLs are HTTPS with `cert` and `key`, and that accept only clients
    /// with a certificate `ca` signed.
    pub fn start_tls(size: usize, cert: PathBuf, key: PathBuf, ca: PathBuf) -> EtcdCluster {
        Self::start_with(size, Some((cert, key, ca)))
    }

    fn start_with(size: usize, client_tls: Option<(PathBuf, PathBuf, PathBuf)>) -> EtcdCluster {
        let dir = tempfile::tempdir().unwrap().keep();
        let members: Vec<Member> = (0..size).map(|i| Member { name: format!("m{i}"), client_port: free_port(), peer_port: free_port(), process: None }).collect();
        let watchdog = super::watchdog("etcd-watchdog", &dir, r#"for pidfile in "$1"/*.pid; do kill -9 "$(cat "$pidfile")" 2>/dev/null; done; rm -rf "$1""#);
        let cluster = EtcdCluster { dir, client_tls, members: Mutex::new(members), _watchdog: watchdog };
        for i in 0..size {
            cluster.spawn_member(i);
        }
        for i in 0..size {
            cluster.wait_listening(i);
        }
        cluster
    }

    fn initial_cluster(members: &[Member]) -> String {
        members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port)).collect::<Vec<_>>().join(",")
    }

    fn spawn_member(&self, i: usize) {
        let mut members = self.members.lock().unwrap();
        let initial = Self::initial_cluster(&members);
        let member = &mut members[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{}.log", member.name))).unwrap();
        let scheme = if self.client_tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let mut command = Command::new("etcd");
        if let Some((cert, key, ca)) = &self.client_tls {
            command.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
            command.arg("--client-cert-auth").arg("--trusted-ca-file").arg(ca);
        }
        let child = command
            .args(["--name", &member.name, "--data-dir"])
            .arg(self.dir.join(&member.name))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial, "--initial-cluster-state", "new", "--initial-cluster-token", "potter-fleet-test"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian's etcd-server) is installed by scripts/setup");
        std::fs::write(self.dir.join(format!("{}.pid", member.name)), child.id().to_string()).unwrap();
        member.process = Some(child);
    }

    fn wait_listening(&self, i: usize) {
        let port = self.members.lock().unwrap()[i].client_port;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "etcd member {i} did not start; see {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` of every member's client URL, comma-separated.
    pub fn endpoints(&self) -> String {
        self.members.lock().unwrap().iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect::<Vec<_>>().join(",")
    }

    pub fn client_port(&self, i: usize) -> u16 {
        self.members.lock().unwrap()[i].client_port
    }

    /// `etcd://<every member>/<prefix>`.
    pub fn location(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.endpoints())
    }

    pub fn size(&self) -> usize {
        self.members.lock().unwrap().len()
    }

    /// SIGKILLs member `i` (its data stays for [`Self::restart`]).
    pub fn kill(&self, i: usize) {
        let mut members = self.members.lock().unwrap();
        if let Some(mut child) = members[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data directory and waits until it listens.
    pub fn restart(&self, i: usize) {
        if self.members.lock().unwrap()[i].process.is_some() {
            return;
        }
        self.spawn_member(i);
        self.wait_listening(i);
    }

    pub fn restart_all(&self) {
        for i in 0..self.size() {
            self.restart(i);
        }
    }

    /// The index of the member that is the leader now, asked through the client.
    pub fn leader(&self) -> usize {
        let endpoints: Vec<String> = self.endpoints().split(',').map(|e| format!("http://{e}")).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = runtime.block_on(async {
                for (i, endpoint) in endpoints.iter().enumerate() {
                    let Ok(mut client) = etcd_client::Client::connect([endpoint.clone()], None).await else { continue };
                    let Ok(status) = client.status().await else { continue };
                    if status.leader() != 0 && status.header().map(|h| h.member_id()) == Some(status.leader()) {
                        return Some(i);
                    }
                }
                None
            });
            if let Some(i) = found {
                return i;
            }
            assert!(Instant::now() < deadline, "the cluster elected no leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Compacts the cluster's history up to its current revision.
    pub fn compact_now(&self) {
        let endpoints: Vec<String> = self.endpoints().split(',').map(|e| format!("http://{e}")).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut client = etcd_client::Client::connect(endpoints, None).await.unwrap();
            let revision = client.get("compact-probe", None).await.unwrap().header().unwrap().revision();
            client.compact(revision, None).await.unwrap();
        });
    }
}

/// An `etcd grpc-proxy` in front of the cluster: a host connected through it can be cut off from
/// etcd (kill the proxy) while the others keep writing, then reconnected on the same port.
pub struct Proxy {
    pub port: u16,
    endpoints: String,
    process: Option<Child>,
}

impl Proxy {
    pub fn start(cluster: &EtcdCluster) -> Proxy {
        let mut proxy = Proxy { port: free_port(), endpoints: cluster.endpoints(), process: None };
        proxy.resume();
        proxy
    }

    pub fn cut(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn resume(&mut self) {
        if self.process.is_some() {
            return;
        }
        let child = Command::new("etcd")
            .args(["grpc-proxy", "start", "--endpoints", &self.endpoints, "--listen-addr", &format!("127.0.0.1:{}", self.port)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "etcd grpc-proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("etcd://127.0.0.1:{}/{prefix}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
