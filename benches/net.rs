//! Networking benchmark (not a test): handshakes per second under N
//! concurrent fake peers, and the node's resident memory with 0, 100 and 125
//! idle peers, with 125 peers trickling a huge message, and with 125 peers
//! that request blocks by `getdata` and never read (the send budget), read
//! from /proc. Runs the real `strand` binary on regtest on 127.0.0.1 with an
//! OS-chosen port and a temporary data directory.
//!
//!     cargo bench --bench net
//!
//! A handshake here is what the issue measures: connect, send `version`,
//! read `version` and `verack`, send `verack`, close. Client sockets close
//! with SO_LINGER 0 so tens of thousands of runs do not exhaust ports.

mod common;

use common::{linger_zero, version};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use strand::wire::{encode_message, read_message};

const MAGIC: Magic = Magic::REGTEST;
const RUN_FOR: Duration = Duration::from_secs(4);

/// One handshake. Returns the open stream, or `None` if the node closed
/// the connection first (refused).
fn handshake(addr: SocketAddr, nonce: u64) -> std::io::Result<Option<TcpStream>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    linger_zero(&s);
    s.write_all(&encode_message(
        MAGIC,
        version(0, ServiceFlags::NONE, nonce),
    ))?;
    let mut r = BufReader::new(s.try_clone()?);
    let (mut got_version, mut got_verack) = (false, false);
    while !(got_version && got_verack) {
        match read_message(&mut r, MAGIC) {
            Ok((NetworkMessage::Version(_), _)) => got_version = true,
            Ok((NetworkMessage::Verack, _)) => got_verack = true,
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
    }
    s.write_all(&encode_message(MAGIC, NetworkMessage::Verack))?;
    Ok(Some(s))
}

struct Node {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(extra: &[&str]) -> Node {
        Node::start_in(tempfile::tempdir().unwrap(), extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args([
                "--regtest",
                "--listen",
                "127.0.0.1:0",
                "--rpcport",
                "0",
                "--datadir",
            ])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "warn,strand=info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start strand");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.split("listening for peers on ").nth(1) {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).expect("listening");
        Node {
            child,
            addr,
            _dir: dir,
        }
    }

    fn status(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn rss_mb(&self) -> f64 {
        self.status("VmRSS:") as f64 / 1024.0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// N clients doing handshakes back to back for RUN_FOR.
fn handshake_rate(n: usize) {
    let node = Node::start(&[]);
    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (done, refused, errors, stop) = (
                Arc::clone(&done),
                Arc::clone(&refused),
                Arc::clone(&errors),
                Arc::clone(&stop),
            );
            let addr = node.addr;
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut nonce = (i as u64) << 32;
                    while !stop.load(Ordering::Relaxed) {
                        nonce += 1;
                        match handshake(addr, nonce) {
                            Ok(Some(_)) => done.fetch_add(1, Ordering::Relaxed),
                            Ok(None) => refused.fetch_add(1, Ordering::Relaxed),
                            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(RUN_FOR);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let d = done.load(Ordering::Relaxed);
    println!(
        "handshakes  clients={n:<4} {:>7.0}/s  completed={d} refused={} errors={}  node peak RSS {:.1} MB",
        d as f64 / secs,
        refused.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        node.status("VmHWM:") as f64 / 1024.0
    );
}

/// Resident memory with 0, 100 and 125 idle, handshaken peers.
fn idle_memory() {
    // 125 inbound peers need 10 more slots (kept for outbound ones).
    let node = Node::start(&["--maxpeers", "135"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut report = vec![(0, node.rss_mb(), node.status("Threads:"))];
    let mut peers = Vec::new();
    for target in [100usize, 125] {
        while peers.len() < target {
            match handshake(node.addr, peers.len() as u64 + 1) {
                Ok(Some(s)) => peers.push(s),
                other => panic!("peer {} refused: {:?}", peers.len(), other.map(|_| ())),
            }
        }
        std::thread::sleep(Duration::from_millis(1000));
        report.push((target, node.rss_mb(), node.status("Threads:")));
    }
    for (n, rss, threads) in report {
        println!("memory      idle peers={n:<4} RSS {rss:.1} MB  threads={threads}");
    }
    drop(peers);
}

/// Resident memory with 125 peers that each announce a 4,000,000-byte
/// message (Core's limit) and then trickle one byte: the reader buffers must
/// grow with the bytes received, not with the announced length.
fn trickle_memory() {
    let node = Node::start(&["--maxpeers", "135"]);
    let mut peers = Vec::new();
    while peers.len() < 125 {
        match handshake(node.addr, 10_000 + peers.len() as u64) {
            Ok(Some(s)) => peers.push(s),
            other => panic!("peer {} refused: {:?}", peers.len(), other.map(|_| ())),
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let before = node.rss_mb();
    for s in &mut peers {
        let mut header = MAGIC.to_bytes().to_vec();
        header.extend_from_slice(b"block\0\0\0\0\0\0\0");
        header.extend_from_slice(&4_000_000u32.to_le_bytes());
        header.extend_from_slice(&[0; 4]);
        header.push(0x01);
        s.write_all(&header).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2000));
    let after = node.rss_mb();
    let connected = peers
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let open = !matches!(std::io::Read::read(&mut &**s, &mut b), Ok(0));
            s.set_nonblocking(false).unwrap();
            open
        })
        .count();
    println!(
        "memory      125 peers each announcing a 4,000,000-byte message, 1 byte sent: RSS {before:.1} -> {after:.1} MB (+{:.1} MB), {connected} still connected",
        after - before
    );
    drop(peers);
}

/// Resident memory with 125 peers that complete the handshake, ask for
/// every block of a 300-block chain (about 12 kB each) ten times over by
/// `getdata` and never read: each peer's queue stays within the send
/// budget (`--maxsendbuffer`, Core's 1,000 kB) plus one block, the rest of
/// its request waits as 36-byte items.
fn never_read_memory() {
    use bitcoin::p2p::message_blockdata::Inventory;
    let dir = tempfile::tempdir().unwrap();
    let mut chain = strand::testdata::ChainBuilder::new(0x6e65_7672);
    let blocks: Vec<bitcoin::Block> = (0..300)
        .map(|h| chain.next_block(if h < 100 { 0 } else { 40 }))
        .collect();
    {
        let mut state = strand::chain::state::ChainState::open(
            &dir.path().join("regtest").join("chainstate"),
            strand::Network::Regtest,
            strand::chain::state::ChainOptions {
                script_threads: 0,
                ..Default::default()
            },
        )
        .expect("open chain state");
        for b in &blocks {
            state.accept_block(b.clone()).expect("accept block");
        }
        state.flush().expect("flush");
    }
    let chain_bytes: usize = blocks
        .iter()
        .map(|b| bitcoin::consensus::serialize(b).len())
        .sum();
    // 125 inbound peers need 10 more slots (kept for outbound ones).
    let node = Node::start_in(dir, &["--maxpeers", "135"]);
    let mut peers = Vec::new();
    while peers.len() < 125 {
        match handshake(node.addr, 20_000 + peers.len() as u64) {
            Ok(Some(s)) => peers.push(s),
            other => panic!("peer {} refused: {:?}", peers.len(), other.map(|_| ())),
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let before = node.rss_mb();
    let items: Vec<Inventory> = blocks
        .iter()
        .cycle()
        .take(blocks.len() * 10)
        .map(|b| Inventory::WitnessBlock(b.block_hash()))
        .collect();
    let request = encode_message(MAGIC, NetworkMessage::GetData(items));
    for s in &mut peers {
        s.write_all(&request).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5000));
    let after = node.rss_mb();
    let peak = node.status("VmHWM:") as f64 / 1024.0;
    println!(
        "memory      125 peers each requesting {:.0} MB of blocks by getdata, never reading: RSS {before:.1} -> {after:.1} MB (+{:.1} MB, {:.2} MB per peer; peak {peak:.1} MB)",
        (chain_bytes * 10) as f64 / 1e6,
        after - before,
        (after - before) / 125.0
    );
    drop(peers);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench --bench net -- NAME` runs the scenarios whose name
    // contains NAME (handshakes, idle, trickle, neverread).
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("handshakes") {
        for n in [8, 50, 300] {
            handshake_rate(n);
        }
    }
    if run("idle") {
        idle_memory();
    }
    if run("trickle") {
        trickle_memory();
    }
    if run("neverread") {
        never_read_memory();
    }
}
