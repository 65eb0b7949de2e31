//! Shared helpers for the integration tests: fake peers speaking the P2P
//! protocol over loopback, an in-process node in a temporary directory, and
//! the real `strand` binary as a child process.
#![allow(dead_code)]

pub mod rules;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use strand::wire::{self, WireError};
use strand::{Config, Network, Node, NodeHandle, Snapshot};

pub const MAGIC: Magic = Magic::REGTEST;

/// Polls `f` every 10 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A node running in this process, on 127.0.0.1 with an OS-chosen port.
pub struct TestNode {
    pub handle: NodeHandle,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestNode {
    pub fn start(tweak: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(Network::Regtest);
        config.datadir = dir.path().to_path_buf();
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        tweak(&mut config);
        let handle = Node::start(config).expect("node starts");
        let addr = handle.listen_addr().expect("listening");
        TestNode { handle, addr, dir }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.handle.snapshot().expect("snapshot")
    }

    /// Waits until the node has no connection and its peer handler and sync
    /// manager know no peer; returns the last snapshot.
    pub fn wait_quiet(&self, timeout: Duration) -> Snapshot {
        let mut last = self.snapshot();
        wait_until(timeout, || {
            last = self.snapshot();
            last.connections == 0 && last.peers.is_empty() && last.sync_known.is_empty()
        });
        last
    }
}

pub fn version_message(start_height: i32, services: ServiceFlags, nonce: u64) -> NetworkMessage {
    let unspecified: SocketAddr = "0.0.0.0:0".parse().unwrap();
    NetworkMessage::Version(VersionMessage {
        version: 70016,
        services,
        timestamp: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        receiver: Address::new(&unspecified, ServiceFlags::NONE),
        sender: Address::new(&unspecified, services),
        nonce,
        user_agent: "/fakepeer:0.1/".into(),
        start_height,
        relay: true,
    })
}

/// A scripted peer. Every I/O call returns its error to the test.
pub struct FakePeer {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl FakePeer {
    pub fn connect(addr: SocketAddr) -> io::Result<FakePeer> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(FakePeer { stream, reader })
    }

    /// A peer over an existing connection (one the node dialled).
    pub fn from_parts(stream: TcpStream, reader: BufReader<TcpStream>) -> FakePeer {
        FakePeer { stream, reader }
    }

    pub fn send(&mut self, msg: NetworkMessage) -> io::Result<()> {
        self.stream.write_all(&wire::encode_message(MAGIC, msg))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn recv(&mut self) -> Result<NetworkMessage, WireError> {
        wire::read_message(&mut self.reader, MAGIC).map(|(m, _)| m)
    }

    /// Reads messages until one matches `want`; others are skipped.
    pub fn recv_until(
        &mut self,
        what: &str,
        mut want: impl FnMut(&NetworkMessage) -> bool,
    ) -> Result<NetworkMessage, String> {
        for _ in 0..1000 {
            match self.recv() {
                Ok(m) if want(&m) => return Ok(m),
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for {what}: {e}")),
            }
        }
        Err(format!("waiting for {what}: too many other messages"))
    }

    /// Sends `version`, reads the node's `version` and `verack`.
    pub fn send_version(
        &mut self,
        start_height: i32,
        services: ServiceFlags,
    ) -> Result<(), String> {
        self.send(version_message(start_height, services, rand_nonce()))
            .map_err(|e| format!("send version: {e}"))?;
        match self.recv().map_err(|e| format!("read version: {e}"))? {
            NetworkMessage::Version(v) => {
                assert_eq!(v.version, 70016);
                assert!(v.user_agent.starts_with("/strand:"), "{}", v.user_agent);
            }
            other => return Err(format!("expected version, got {}", other.command())),
        }
        // BIP339/BIP155 negotiation comes between version and verack.
        loop {
            match self.recv().map_err(|e| format!("read verack: {e}"))? {
                NetworkMessage::Verack => return Ok(()),
                NetworkMessage::WtxidRelay | NetworkMessage::SendAddrV2 => {}
                other => return Err(format!("expected verack, got {}", other.command())),
            }
        }
    }

    /// A complete handshake, as an inbound peer of the node.
    pub fn handshake(&mut self, start_height: i32, services: ServiceFlags) -> Result<(), String> {
        self.send_version(start_height, services)?;
        self.send(NetworkMessage::Verack)
            .map_err(|e| format!("send verack: {e}"))
    }

    /// Pings and waits for the matching pong.
    pub fn ping(&mut self, nonce: u64) -> Result<(), String> {
        self.send(NetworkMessage::Ping(nonce))
            .map_err(|e| format!("send ping: {e}"))?;
        self.recv_until("pong", |m| *m == NetworkMessage::Pong(nonce))
            .map(|_| ())
    }

    /// True if the node closes the connection within `timeout` (reads and
    /// discards anything it sends first).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left)).ok();
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true, // reset
            }
        }
        false
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }
}

pub fn rand_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

pub const SERVES: ServiceFlags = ServiceFlags::NETWORK;

/// The real `strand` binary as a child process; killed on drop.
pub struct NodeProcess {
    pub child: Child,
    pub addr: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Set when the log reader reached the end of the child's stderr.
    pub log_eof: Arc<std::sync::atomic::AtomicBool>,
    pub dir: tempfile::TempDir,
}

pub fn strand_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strand")
}

impl NodeProcess {
    /// Starts `strand --regtest --datadir TMP --listen 127.0.0.1:0 ARGS` and
    /// waits for its listening line.
    pub fn start(args: &[&str]) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_str().unwrap().to_string();
        let mut p = Self::start_in(&path, args);
        p.dir = dir;
        p
    }

    /// Like [`NodeProcess::start`] with an existing data directory (which
    /// the caller keeps; the returned `dir` is an unrelated empty one).
    pub fn start_in(datadir: &str, args: &[&str]) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(strand_bin())
            .arg("--regtest")
            .arg("--datadir")
            .arg(datadir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--rpcport")
            .arg("0")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strand");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log_eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let log = Arc::clone(&log);
            let log_eof = Arc::clone(&log_eof);
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !sent {
                        if let Some(rest) = line.split("listening for peers on ").nth(1) {
                            let _ = tx.send(rest.trim().parse::<SocketAddr>().ok());
                            sent = true;
                        }
                    }
                    log.lock().unwrap().push(line);
                }
                log_eof.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let addr = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let mut p = NodeProcess {
            child,
            addr,
            log,
            log_eof,
            dir,
        };
        if p.addr.is_none() {
            let _ = p.child.kill();
            panic!("strand did not start listening: {:?}", p.log_lines());
        }
        p
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.unwrap()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The child's last log lines may still be in the pipe: wait
                // (bounded) for the reader to reach its end, so callers can
                // assert on them.
                while !self.log_eof.load(std::sync::atomic::Ordering::SeqCst)
                    && Instant::now() < deadline + Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a whole stream (for child outputs).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// Accepts one connection within `timeout` (panics otherwise), so a test
/// never hangs on a node that does not dial.
pub fn accept_within(listener: &std::net::TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no connection within {timeout:?}: {e}"),
        }
    }
}

/// A fake peer that serves a fixed chain (`blocks[0]` is genesis) to a node:
/// answers `getheaders`, `getdata` and `ping`, announces nothing. Runs on its
/// own thread until the connection ends; `blocks_served` counts blocks sent.
pub struct ChainServer {
    pub thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    pub blocks_served: Arc<std::sync::atomic::AtomicUsize>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub addr: SocketAddr,
}

/// How a [`ChainServer`] behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// Headers and blocks.
    Everything,
    /// Headers only: never answers `getdata` (a stalling peer).
    HeadersOnly,
}

impl ChainServer {
    pub fn start(node: SocketAddr, blocks: Vec<bitcoin::Block>, mode: Serve) -> ChainServer {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let mut p = FakePeer::connect(node).expect("connect chain server");
        let height = blocks.len() as i32 - 1;
        p.handshake(height, SERVES).expect("chain server handshake");
        let addr = p.local_addr();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (served2, stop2) = (Arc::clone(&served), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            use bitcoin::p2p::message_blockdata::Inventory;
            let by_hash: std::collections::HashMap<_, _> = blocks
                .iter()
                .enumerate()
                .map(|(h, b)| (b.block_hash(), h))
                .collect();
            p.stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(|e| e.to_string())?;
            while !stop2.load(Ordering::Relaxed) {
                let msg = match p.recv() {
                    Ok(m) => m,
                    Err(e) if e.is_timeout() => continue,
                    Err(WireError::Closed) => return Ok(()),
                    Err(WireError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return Ok(())
                    }
                    Err(e) => return Err(format!("chain server read: {e}")),
                };
                let reply: Vec<NetworkMessage> = match msg {
                    NetworkMessage::GetHeaders(gh) => {
                        vec![NetworkMessage::Headers(headers_after(
                            &blocks,
                            &by_hash,
                            &gh.locator_hashes,
                        ))]
                    }
                    NetworkMessage::GetData(items) if mode == Serve::Everything => items
                        .iter()
                        .filter_map(|i| match i {
                            Inventory::Block(h) | Inventory::WitnessBlock(h) => {
                                by_hash.get(h).map(|&n| blocks[n].clone())
                            }
                            _ => None,
                        })
                        .map(|b| {
                            served2.fetch_add(1, Ordering::Relaxed);
                            NetworkMessage::Block(b)
                        })
                        .collect(),
                    NetworkMessage::Ping(n) => vec![NetworkMessage::Pong(n)],
                    _ => vec![],
                };
                for m in reply {
                    if let Err(e) = p.send(m) {
                        if e.kind() == io::ErrorKind::BrokenPipe
                            || e.kind() == io::ErrorKind::ConnectionReset
                        {
                            return Ok(());
                        }
                        return Err(format!("chain server write: {e}"));
                    }
                }
            }
            Ok(())
        });
        ChainServer {
            thread: Some(thread),
            blocks_served: served,
            stop,
            addr,
        }
    }

    /// Stops serving and returns the server thread's verdict.
    pub fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map_or(Ok(()), |t| t.join().expect("server thread"))
    }
}

impl Drop for ChainServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The height a node reports in its `version` message (a handshake probe).
pub fn probe_height(node: SocketAddr) -> Option<i32> {
    let mut p = FakePeer::connect(node).ok()?;
    p.send(version_message(0, ServiceFlags::NONE, rand_nonce()))
        .ok()?;
    match p.recv().ok()? {
        NetworkMessage::Version(v) => Some(v.start_height),
        _ => None,
    }
}

/// Waits until the in-process node's tip is `hash`.
pub fn wait_tip(node: &TestNode, hash: bitcoin::BlockHash, timeout: Duration) -> bool {
    wait_until(timeout, || node.snapshot().tip == hash)
}

/// Opens a stopped node's chain state (read its tip and UTXO digest).
pub fn chain_of(datadir: &std::path::Path) -> strand::chain::state::ChainState {
    strand::chain::state::ChainState::open(
        &datadir.join("regtest").join("chainstate"),
        Network::Regtest,
        strand::chain::state::ChainOptions {
            script_threads: 0,
            ..Default::default()
        },
    )
    .expect("open stopped node's chain state")
}

/// A deterministic chain of `n` blocks with `txs` transactions each (after
/// coinbase maturity), timed so that its last block is about now.
pub fn test_chain(seed: u64, n: u32, txs: usize) -> strand::testdata::ChainBuilder {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut b = strand::testdata::ChainBuilder::with_times(seed, now - n * 60 - 3600, 60);
    for _ in 0..n {
        b.next_block(txs);
    }
    b
}

/// An in-process node holding `blocks` (after genesis), submitted directly.
pub fn node_with_blocks(blocks: &[bitcoin::Block], tweak: impl FnOnce(&mut Config)) -> TestNode {
    let node = TestNode::start(tweak);
    for b in blocks {
        node.handle.submit_block(b.clone()).expect("submit block");
    }
    node
}

impl NodeProcess {
    /// The JSON-RPC address from the node's log.
    pub fn rpc_addr(&self) -> SocketAddr {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = self.log_lines().iter().find_map(|l| {
                l.split("JSON-RPC listening on ")
                    .nth(1)
                    .and_then(|a| a.trim().parse().ok())
            });
            found.is_some()
        });
        found.expect("JSON-RPC address in the log")
    }

    /// The cookie file of this node (when started with [`NodeProcess::start`]).
    pub fn cookie(&self) -> std::path::PathBuf {
        self.dir.path().join("regtest").join(".cookie")
    }
}
/// Calls `method` (params a JSON array) and returns its result; panics
/// with the method's name on any failure.
pub fn rpc_ok(
    addr: SocketAddr,
    auth: &strand::rpc::client::ClientAuth,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let params = params.as_array().cloned().unwrap_or_default();
    strand::rpc::client::call(addr, auth, method, params)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Calls `method` expecting an RPC error; returns its code and message.
pub fn rpc_err(
    addr: SocketAddr,
    auth: &strand::rpc::client::ClientAuth,
    method: &str,
    params: serde_json::Value,
) -> (i32, String) {
    let params = params.as_array().cloned().unwrap_or_default();
    match strand::rpc::client::call(addr, auth, method, params) {
        Err(strand::rpc::client::ClientError::Rpc(e)) => (e.code, e.message),
        other => panic!("{method}: expected an RPC error, got {other:?}"),
    }
}

pub mod oracle;

/// The builder's first coinbase output script: where test blocks pay.
pub fn payout(b: &strand::testdata::ChainBuilder) -> bitcoin::ScriptBuf {
    b.tip().txdata[0].output[0].script_pubkey.clone()
}

/// A regtest block template on the builder's tip with `txs` paying `fees`.
pub fn template(
    b: &strand::testdata::ChainBuilder,
    txs: Vec<bitcoin::Transaction>,
    fees: bitcoin::Amount,
) -> strand::mining::BlockTemplate {
    let tip = b.tip();
    strand::mining::BlockTemplate::regtest(
        tip.block_hash(),
        b.height() + 1,
        tip.header.time + 1,
        txs,
        fees,
    )
}

/// A connection to `node` from the loopback address `src` (127.x.y.z), so
/// one test can have peers at different addresses (and network groups).
pub fn connect_from(src: std::net::Ipv4Addr, node: SocketAddr) -> io::Result<FakePeer> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(dst) = node else {
        return Err(io::Error::other("node not on IPv4"));
    };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns until it
    // is handed to `TcpStream` (or closed on error).
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(src, 0);
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        stream
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok(FakePeer::from_parts(stream, reader))
}

/// A serving peer's answer to `getheaders`: up to 2,000 headers of
/// `blocks` after the first locator hash it knows (genesis if none).
pub fn headers_after(
    blocks: &[bitcoin::Block],
    by_hash: &std::collections::HashMap<bitcoin::BlockHash, usize>,
    locator: &[bitcoin::BlockHash],
) -> Vec<bitcoin::block::Header> {
    let start = locator
        .iter()
        .find_map(|h| by_hash.get(h).copied())
        .unwrap_or(0);
    blocks
        .iter()
        .skip(start + 1)
        .take(2000)
        .map(|b| b.header)
        .collect()
}

/// A spend of one mature output of `b` (the `skip`-th), paying back to a
/// builder key with a 10,000-satoshi fee.
pub fn spend(b: &strand::testdata::ChainBuilder, skip: usize) -> bitcoin::Transaction {
    let (op, value) = b.spendable_outputs()[skip];
    b.sign_spend(
        &[op],
        vec![bitcoin::TxOut {
            value: value - bitcoin::Amount::from_sat(10_000),
            script_pubkey: b.tip().txdata[0].output[0].script_pubkey.clone(),
        }],
    )
    .unwrap()
}
