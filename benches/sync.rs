//! Chain-sync benchmark (not a test): how fast the real `strand` binary
//! downloads and validates a chain from another `strand`, on regtest over
//! 127.0.0.1 with OS-chosen ports and temporary data directories.
//!
//!     cargo bench --bench sync
//!
//! 1. Full sync: 2,000 blocks of ~100 signed transactions of mixed script
//!    types (`strand::testdata::ChainBuilder`). A fake peer loads the chain
//!    into node A; then node B starts with `--connect A` and is timed from
//!    its start until it reports height 2,000 (its `version` message's start
//!    height, probed every 50 ms). Reports seconds, blocks/s, tx/s, MB/s,
//!    B's peak RSS (`VmHWM`), B's CPU time, and B's data directory size (du,
//!    after a clean shutdown).
//! 2. Coinbase-only sync: the same with 10,000 blocks holding only a
//!    coinbase (per-block overhead).
//!    `-- assumevalid`: the chain of (1) with 2,100 coinbase-only blocks
//!    on top, node B timed twice from the same node A: `--assumevalid=0`,
//!    then `--assumevalid=<tip>` (Core skips scripts only more than two
//!    weeks of work, 2,016 regtest blocks, below the best header).
//! 3. Headers-only sync of 100,000 headers: a fake peer advertising height
//!    100,000 answers `getheaders` but never `getdata`; timed from the first
//!    `getheaders` until the node asks for headers after the last one (a
//!    `getheaders` whose locator starts with header 100,000). Then the same
//!    headers through `ChainState::process_headers` in-process, in chunks of
//!    2,000, to separate validation + LMDB from networking.
//!
//! 4. Parallel download: a fresh node downloads the 2,000-block chain of
//!    (1) from one fake peer sending at most 0.4 MB/s
//!    (`STRAND_BENCH_PEER_RATE`, bytes/s), then another fresh node from
//!    four such peers; timed from the first connection until the node
//!    reports height 2,000. Prints both times, the blocks each peer served
//!    and the speedup (target ≥ 3×).
//!
//! `STRAND_BENCH_B_ARGS="--dbcache 4"` passes extra options to every node
//! B (whitespace-separated). B's RSS is split into anonymous, file-backed
//! and the part of the file-backed pages that is the LMDB map.
//!
//! Blocks are 60 s apart, the last about now. `STRAND_BENCH_SPACING=1201`
//! builds chains (cached separately, `-s1201`) whose headers take the
//! regtest min-difficulty shortcut of `next_work_required` (time more than
//! twice the 600 s target spacing after the previous block) instead of the
//! walk back to the last retarget boundary, which strand currently does in
//! time quadratic in the headers of one `headers` message.
//!
//! Chains are built once and cached in the target directory as
//! `bench-chain-<seed>-<n>-<txs>.bin` (length-prefixed consensus-encoded
//! blocks from genesis). Every node started here is killed on drop; every
//! wait has a deadline that aborts with the node's last log lines.

mod common;

use common::{linger_zero, version};
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bitcoin::block::Header;
use bitcoin::consensus::{encode, Decodable};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::BlockHash;
use strand::chain::state::{ChainOptions, ChainState};
use strand::wire::{encode_message, read_message, WireError};

const MAGIC: Magic = Magic::REGTEST;

const FULL: (u64, u32, usize) = (1, 2_000, 100); // seed, blocks, txs per block
const COINBASE_ONLY: (u64, u32, usize) = (2, 10_000, 0);
/// Coinbase-only blocks on top of [`FULL`] for the assumevalid run: Core
/// skips scripts only more than two weeks of work (2,016 regtest blocks)
/// below the best header.
const ASSUMEVALID_TOP: u32 = 2_100;
const HEADERS: (u64, u32, usize) = (3, 100_000, 0);

const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
const HEADERS_TIMEOUT: Duration = Duration::from_secs(30);
const PARALLEL_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes per second each throttled peer sends unless
/// `STRAND_BENCH_PEER_RATE` says otherwise: slow enough that one peer, not
/// validation (about 3 MB/s here), is the bottleneck.
const DEFAULT_PEER_RATE: u64 = 400_000;
const IN_PROCESS_BUDGET: Duration = Duration::from_secs(30);
/// Seconds between block times unless `STRAND_BENCH_SPACING` says otherwise.
const DEFAULT_SPACING: u32 = 60;
const POLL: Duration = Duration::from_millis(50);
const LOG_TAIL: usize = 200;

/// Block spacing: 60 s as the tests use, or `STRAND_BENCH_SPACING`. Over
/// 1,200 s (twice regtest's target spacing) every header takes the
/// min-difficulty shortcut of `next_work_required` instead of walking back
/// to the last retarget boundary; see the report in the commit message.
fn spacing() -> u32 {
    std::env::var("STRAND_BENCH_SPACING")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_SPACING)
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

// ---------------------------------------------------------------- chains

/// A chain from genesis (index = height), as consensus-encoded blocks.
struct Chain {
    raw: Vec<Vec<u8>>,
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
    by_hash: HashMap<BlockHash, usize>,
    /// Transactions in blocks 1..=tip (coinbases included).
    txs: u64,
    /// Bytes of blocks 1..=tip.
    bytes: u64,
}

impl Chain {
    fn height(&self) -> u32 {
        (self.raw.len() - 1) as u32
    }

    fn from_raw(raw: Vec<Vec<u8>>) -> Result<Chain, String> {
        let mut headers = Vec::with_capacity(raw.len());
        let (mut txs, mut bytes) = (0u64, 0u64);
        for (h, b) in raw.iter().enumerate() {
            let mut r = b.as_slice();
            let header = Header::consensus_decode(&mut r).map_err(|e| format!("block {h}: {e}"))?;
            let n =
                encode::VarInt::consensus_decode(&mut r).map_err(|e| format!("block {h}: {e}"))?;
            if h > 0 {
                txs += n.0;
                bytes += b.len() as u64;
            }
            headers.push(header);
        }
        for w in headers.windows(2) {
            if w[1].prev_blockhash != w[0].block_hash() {
                return Err("blocks do not chain".into());
            }
        }
        let hashes: Vec<BlockHash> = headers.iter().map(|h| h.block_hash()).collect();
        let by_hash = hashes.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        Ok(Chain {
            raw,
            headers,
            hashes,
            by_hash,
            txs,
            bytes,
        })
    }

    /// Loads `bench-chain-<seed>-<n>-<txs>.bin` from the target directory,
    /// or builds the chain (last block about now, [`spacing`] apart) and
    /// saves it. A non-default spacing gets a `-s<spacing>` suffix.
    fn build_or_load(spec: (u64, u32, usize)) -> Chain {
        Chain::build_or_load_with_top(spec, 0)
    }

    /// [`Chain::build_or_load`] with `top` coinbase-only blocks on top of
    /// the `n` (file suffix `-top<top>`).
    fn build_or_load_with_top((seed, n, txs): (u64, u32, usize), top: u32) -> Chain {
        let spacing = spacing();
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("target"));
        let mut suffix = if spacing == DEFAULT_SPACING {
            String::new()
        } else {
            format!("-s{spacing}")
        };
        if top > 0 {
            suffix.push_str(&format!("-top{top}"));
        }
        let n_all = n + top;
        let path = target.join(format!("bench-chain-{seed}-{n}-{txs}{suffix}.bin"));
        let started = Instant::now();
        if let Ok(data) = std::fs::read(&path) {
            match split_raw(&data).and_then(Chain::from_raw) {
                Ok(c) if c.height() == n_all => {
                    println!(
                        "chain {seed}-{n}-{txs}: loaded {} in {:.1} s (spacing {spacing} s)",
                        path.display(),
                        started.elapsed().as_secs_f64()
                    );
                    return c;
                }
                Ok(c) => eprintln!(
                    "{}: height {} != {n_all}; rebuilding",
                    path.display(),
                    c.height()
                ),
                Err(e) => eprintln!("{}: {e}; rebuilding", path.display()),
            }
        }
        let first = now_secs() - n_all * spacing - 3600;
        let mut b = strand::testdata::ChainBuilder::with_times(seed, first, spacing);
        for _ in 0..n {
            b.next_block(txs);
        }
        for _ in 0..top {
            b.next_block(0);
        }
        let raw: Vec<Vec<u8>> = b.blocks().iter().map(encode::serialize).collect();
        drop(b);
        let mut out = Vec::with_capacity(raw.iter().map(|r| r.len() + 4).sum());
        for r in &raw {
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
        }
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, &out).and_then(|_| std::fs::rename(&tmp, &path)) {
            eprintln!("cannot cache the chain in {}: {e}", path.display());
        }
        let chain = Chain::from_raw(raw).expect("built chain decodes");
        println!(
            "chain {seed}-{n}-{txs}: built in {:.1} s (spacing {spacing} s), cached in {}",
            started.elapsed().as_secs_f64(),
            path.display()
        );
        chain
    }
}

fn split_raw(mut data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut raw = Vec::new();
    while !data.is_empty() {
        if data.len() < 4 {
            return Err("truncated length".into());
        }
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if data.len() < 4 + len || len < 81 {
            return Err("truncated block".into());
        }
        raw.push(data[4..4 + len].to_vec());
        data = &data[4 + len..];
    }
    if raw.is_empty() {
        return Err("empty file".into());
    }
    Ok(raw)
}

/// A complete `block` frame around already-encoded block bytes.
fn block_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(24 + payload.len());
    f.extend_from_slice(&MAGIC.to_bytes());
    let mut cmd = [0u8; 12];
    cmd[..5].copy_from_slice(b"block");
    f.extend_from_slice(&cmd);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&sha256d::Hash::hash(payload).as_byte_array()[..4]);
    f.extend_from_slice(payload);
    f
}

// ---------------------------------------------------------------- peers

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// The height a node reports in its `version` message.
fn probe_height(node: SocketAddr) -> Option<i32> {
    let s = TcpStream::connect_timeout(&node, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_nodelay(true).ok()?;
    linger_zero(&s);
    (&s).write_all(&encode_message(
        MAGIC,
        version(0, ServiceFlags::NONE, nonce()),
    ))
    .ok()?;
    let mut r = BufReader::new(&s);
    for _ in 0..10 {
        if let NetworkMessage::Version(v) = read_message(&mut r, MAGIC).ok()?.0 {
            return Some(v.start_height);
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Serve {
    /// Answers `getheaders`, `getdata` (blocks) and `ping`.
    Everything,
    /// Like `Everything`, sending blocks at most this many bytes per
    /// second (a link of that bandwidth).
    Throttled(u64),
    /// Answers `getheaders` and `ping`, never `getdata`.
    HeadersOnly,
}

#[derive(Default)]
struct ServerStats {
    first_getheaders: Option<Instant>,
    /// When a `getheaders` whose locator starts with the tip arrived.
    past_end: Option<Instant>,
    getheaders: usize,
    blocks_served: usize,
    getdata_ignored: usize,
}

/// A fake peer serving `chain` to a node from its own thread.
struct ChainServer {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<ServerStats>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl ChainServer {
    fn start(node: SocketAddr, chain: Arc<Chain>, mode: Serve) -> Result<ChainServer, String> {
        let s = TcpStream::connect_timeout(&node, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut r = BufReader::with_capacity(1 << 16, s.try_clone().map_err(|e| e.to_string())?);
        let mut w = BufWriter::with_capacity(1 << 20, s);
        let send = |w: &mut BufWriter<TcpStream>, m: NetworkMessage| -> Result<(), String> {
            w.write_all(&encode_message(MAGIC, m))
                .and_then(|_| w.flush())
                .map_err(|e| format!("send: {e}"))
        };
        send(
            &mut w,
            version(chain.height() as i32, ServiceFlags::NETWORK, nonce()),
        )?;
        let (mut got_version, mut got_verack) = (false, false);
        while !(got_version && got_verack) {
            match read_message(&mut r, MAGIC)
                .map_err(|e| format!("handshake: {e}"))?
                .0
            {
                NetworkMessage::Version(_) => got_version = true,
                NetworkMessage::Verack => got_verack = true,
                _ => {}
            }
        }
        send(&mut w, NetworkMessage::Verack)?;
        r.get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;

        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(ServerStats::default()));
        let (stop2, stats2) = (Arc::clone(&stop), Arc::clone(&stats));
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let tip = chain.hashes[chain.hashes.len() - 1];
            let mut link_free = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                let msg = match read_message(&mut r, MAGIC) {
                    Ok((m, _)) => m,
                    Err(e) if e.is_timeout() => continue,
                    Err(WireError::Closed) => return Ok(()),
                    Err(WireError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return Ok(())
                    }
                    Err(e) => return Err(format!("server read: {e}")),
                };
                let now = Instant::now();
                let result = match msg {
                    NetworkMessage::GetHeaders(gh) => {
                        {
                            let mut st = stats2.lock().unwrap();
                            st.getheaders += 1;
                            st.first_getheaders.get_or_insert(now);
                            if gh.locator_hashes.first() == Some(&tip) {
                                st.past_end.get_or_insert(now);
                            }
                        }
                        let start = gh
                            .locator_hashes
                            .iter()
                            .find_map(|h| chain.by_hash.get(h).copied())
                            .unwrap_or(0);
                        let headers = chain.headers.iter().skip(start + 1).take(2000).copied();
                        send(&mut w, NetworkMessage::Headers(headers.collect()))
                    }
                    NetworkMessage::GetData(items) if mode != Serve::HeadersOnly => {
                        let mut n = 0;
                        let mut res = Ok(());
                        for i in &items {
                            if let Inventory::Block(h) | Inventory::WitnessBlock(h) = i {
                                if let Some(&k) = chain.by_hash.get(h) {
                                    let frame = block_frame(&chain.raw[k]);
                                    if let Err(e) = w.write_all(&frame) {
                                        res = Err(format!("send block: {e}"));
                                        break;
                                    }
                                    n += 1;
                                    if let Serve::Throttled(rate) = mode {
                                        // The block leaves when the link is
                                        // free and takes len / rate on it.
                                        if let Err(e) = w.flush() {
                                            res = Err(format!("send block: {e}"));
                                            break;
                                        }
                                        let now = Instant::now();
                                        link_free = link_free.max(now)
                                            + Duration::from_secs_f64(
                                                frame.len() as f64 / rate as f64,
                                            );
                                        std::thread::sleep(link_free - now);
                                    }
                                }
                            }
                        }
                        stats2.lock().unwrap().blocks_served += n;
                        res.and_then(|_| w.flush().map_err(|e| format!("send: {e}")))
                    }
                    NetworkMessage::GetData(_) => {
                        stats2.lock().unwrap().getdata_ignored += 1;
                        Ok(())
                    }
                    NetworkMessage::Ping(n) => send(&mut w, NetworkMessage::Pong(n)),
                    _ => Ok(()),
                };
                if let Err(e) = result {
                    if e.contains("Broken pipe") || e.contains("reset") {
                        return Ok(());
                    }
                    return Err(e);
                }
            }
            Ok(())
        });
        Ok(ChainServer {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(Ok(()), |t| {
            t.join().unwrap_or(Err("server thread panicked".into()))
        })
    }
}

impl Drop for ChainServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- nodes

/// The real `strand` binary as a child process; killed on drop.
struct NodeProc {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
    dir: tempfile::TempDir,
}

impl NodeProc {
    fn start(name: &'static str, extra: &[&str]) -> NodeProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        cmd.args([
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
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the child dies with this
        // process even if the benchmark is killed before its drops run.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start strand");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(a) = line.split("listening for peers on ").nth(1) {
                        let _ = tx.send(a.trim().parse::<SocketAddr>().ok());
                    }
                    let mut l = log.lock().unwrap();
                    if l.len() == LOG_TAIL {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        }
        let addr = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let l: Vec<String> = log.lock().unwrap().iter().cloned().collect();
            panic!(
                "node {name} did not start listening; log:\n{}",
                l.join("\n")
            );
        };
        NodeProc {
            name,
            child,
            addr,
            log,
            dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `msg` with the node's last log lines: why a benchmark is aborted.
    fn err(&self, msg: &str) -> String {
        let l = self.log.lock().unwrap();
        let tail: Vec<&String> = l.iter().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().map(String::as_str).collect();
        format!(
            "node {}: {msg}\n--- last log lines of node {} ---\n{}",
            self.name,
            self.name,
            tail.join("\n")
        )
    }

    /// A `/proc/<pid>/status` field in kB.
    fn status_kb(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Resident kB of the mappings of files whose name ends with `suffix`
    /// (`/proc/PID/smaps`), e.g. the LMDB file `data.mdb`.
    fn mapped_rss_kb(&self, suffix: &str) -> u64 {
        let Ok(smaps) = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid())) else {
            return 0;
        };
        let mut in_file = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("Rss:") if in_file => {
                    kb += words
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                }
                Some(w) if w.contains('-') && !w.ends_with(':') => {
                    in_file = line.trim_end().ends_with(suffix)
                }
                _ => {}
            }
        }
        kb
    }

    /// User + system CPU seconds used so far.
    fn cpu_secs(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return 0.0;
        };
        // Fields after the ")" closing the command name: state is field 3,
        // utime and stime are fields 14 and 15.
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 / hz
    }

    /// Polls the reported height every `POLL` until it is `n`; returns when
    /// it was first seen, or an error after `timeout` (measured from
    /// `since`) saying how far the node got.
    fn wait_height(
        &mut self,
        n: u32,
        since: Instant,
        timeout: Duration,
    ) -> Result<Instant, String> {
        let deadline = since + timeout;
        let mut last = None;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.err(&format!("exited with {status} at height {last:?}")));
            }
            last = probe_height(self.addr).or(last);
            if last == Some(n as i32) {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                let h = last.unwrap_or(0).max(0);
                return Err(self.err(&format!(
                    "TIMEOUT: height {h} of {n} after {timeout:?} ({:.1} blocks/s)",
                    f64::from(h) / timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(&mut self, timeout: Duration) -> bool {
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Disk usage of a directory tree (what `du` counts), in bytes.
fn du(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                total += if m.is_dir() {
                    du(&e.path())
                } else {
                    m.blocks() * 512
                };
            }
        }
    }
    total
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

// ---------------------------------------------------------------- benchmarks

/// Loads `chain` into node A from a fake peer, then times node B syncing
/// from A. Prints one figure per line, prefixed with `label`.
fn node_to_node_sync(label: &str, chain: Arc<Chain>, full: bool) -> Result<(), String> {
    let mut a = load_node_a(label, &chain)?;
    sync_node_b(label, &chain, &mut a, &[], full)
}

/// Starts node A and loads `chain` into it from a fake peer.
fn load_node_a(label: &str, chain: &Arc<Chain>) -> Result<NodeProc, String> {
    let n = chain.height();
    println!(
        "{label:<13} chain: {n} blocks, {} transactions, {:.1} MB",
        chain.txs,
        mb(chain.bytes)
    );
    let mut a = NodeProc::start("A", &[]);
    let t = Instant::now();
    let server = ChainServer::start(a.addr, Arc::clone(chain), Serve::Everything)
        .map_err(|e| a.err(&format!("chain server: {e}")))?;
    a.wait_height(n, t, LOAD_TIMEOUT)
        .map_err(|e| format!("loading node A from the fake peer: {e}"))?;
    let load = t.elapsed().as_secs_f64();
    let served = server.stats.lock().unwrap().blocks_served;
    server
        .finish()
        .map_err(|e| a.err(&format!("chain server: {e}")))?;
    println!("{label:<13} setup:         node A loaded from the fake peer in {load:.1} s ({served} blocks served; not a figure)");
    Ok(a)
}

/// Times a fresh node B (with `extra` options) syncing `chain` from node A
/// and prints the figures.
fn sync_node_b(
    label: &str,
    chain: &Arc<Chain>,
    a: &mut NodeProc,
    extra: &[&str],
    full: bool,
) -> Result<(), String> {
    let n = chain.height();
    let a_cpu0 = a.cpu_secs();
    let connect = a.addr.to_string();
    let started = Instant::now();
    let mut args = vec!["--connect", connect.as_str()];
    args.extend_from_slice(extra);
    let env_args = std::env::var("STRAND_BENCH_B_ARGS").unwrap_or_default();
    args.extend(env_args.split_whitespace());
    let mut b = NodeProc::start("B", &args);
    let done = b
        .wait_height(n, started, SYNC_TIMEOUT)
        .map_err(|e| format!("node B syncing from node A: {e}"))?;
    let secs = (done - started).as_secs_f64();
    let hwm = b.status_kb("VmHWM:");
    let (anon, file) = (b.status_kb("RssAnon:"), b.status_kb("RssFile:"));
    let lmdb = b.mapped_rss_kb("data.mdb");
    let b_cpu = b.cpu_secs();
    let a_cpu = a.cpu_secs() - a_cpu0;
    let clean = b.terminate(Duration::from_secs(30));
    let size = du(b.dir.path());
    drop(b);

    let (t_target, b_target, r_target) = if full {
        (
            "  (target <= 9 s, issue 12; Core 12.6 s, btcd 98 s)",
            "",
            "  (target <= 56 MB, <= 32 MB with --dbcache 4 --maxmempool 5; Core 56 MB, btcd 223 MB)",
        )
    } else {
        ("", "  (target >= 10,000)", "")
    };
    println!("{label:<13} time:          {secs:.2} s{t_target}");
    println!(
        "{label:<13} blocks/s:      {:.0}{b_target}",
        f64::from(n) / secs
    );
    println!("{label:<13} tx/s:          {:.0}", chain.txs as f64 / secs);
    println!("{label:<13} MB/s:          {:.2}", mb(chain.bytes) / secs);
    println!(
        "{label:<13} B peak RSS:    {:.1} MB{r_target}; at the end anon {:.1} MB, file/mmap {:.1} MB (LMDB map {:.1} MB)",
        hwm as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        lmdb as f64 / 1024.0
    );
    println!(
        "{label:<13} B datadir:     {:.1} MB  (du after {} shutdown)",
        mb(size),
        if clean { "clean" } else { "UNCLEAN" }
    );
    println!("{label:<13} CPU:           B {b_cpu:.2} s, A (serving) {a_cpu:.2} s");
    Ok(())
}

/// The [`FULL`] chain with [`ASSUMEVALID_TOP`] coinbase-only blocks on
/// top, synced by node B from node A twice: scripts checked
/// (`--assumevalid=0`), then `--assumevalid=<tip>` (every block of
/// [`FULL`] is buried deeply enough to skip its scripts).
fn assumevalid_sync(label: &str, chain: Arc<Chain>) -> Result<(), String> {
    let mut a = load_node_a(label, &chain)?;
    let tip = chain
        .hashes
        .last()
        .map(|h| h.to_string())
        .ok_or("empty chain")?;
    println!("{label:<13} -- scripts checked (--assumevalid=0):");
    sync_node_b(label, &chain, &mut a, &["--assumevalid=0"], true)?;
    println!("{label:<13} -- --assumevalid=<tip>:");
    let arg = format!("--assumevalid={tip}");
    sync_node_b(label, &chain, &mut a, &[arg.as_str()], true)
}

/// Times a fresh node downloading `chain` from `peers` fake peers, each
/// sending at most `rate` bytes per second, from the first connection until
/// the node reports the chain's height. Returns the seconds, the node's
/// CPU seconds and the blocks each peer served.
fn throttled_download(
    chain: &Arc<Chain>,
    peers: usize,
    rate: u64,
) -> Result<(f64, f64, Vec<usize>), String> {
    let n = chain.height();
    let mut node = NodeProc::start("P", &[]);
    let started = Instant::now();
    let mut servers = Vec::new();
    for _ in 0..peers {
        servers.push(
            ChainServer::start(node.addr, Arc::clone(chain), Serve::Throttled(rate))
                .map_err(|e| node.err(&format!("chain server: {e}")))?,
        );
    }
    let done = node.wait_height(n, started, PARALLEL_TIMEOUT)?;
    let secs = (done - started).as_secs_f64();
    let cpu = node.cpu_secs();
    let served = servers
        .iter()
        .map(|s| s.stats.lock().unwrap().blocks_served)
        .collect();
    for s in servers {
        s.finish()
            .map_err(|e| node.err(&format!("chain server: {e}")))?;
    }
    Ok((secs, cpu, served))
}

/// Parallel block download: four peers each limited to a quarter of the
/// bandwidth against one such peer alone.
fn parallel_download(label: &str, chain: Arc<Chain>) -> Result<(), String> {
    let rate = std::env::var("STRAND_BENCH_PEER_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r: &u64| r > 0)
        .unwrap_or(DEFAULT_PEER_RATE);
    println!(
        "{label:<13} chain: {} blocks, {:.1} MB; every peer sends at most {:.2} MB/s",
        chain.height(),
        mb(chain.bytes),
        mb(rate)
    );
    let (one, cpu1, served1) = throttled_download(&chain, 1, rate)?;
    println!(
        "{label:<13} 1 peer:        {one:.2} s, node CPU {cpu1:.2} s (blocks served {served1:?})"
    );
    println!("{label:<13} load average:  {}", load());
    let (four, cpu4, served4) = throttled_download(&chain, 4, rate)?;
    println!(
        "{label:<13} 4 peers:       {four:.2} s, node CPU {cpu4:.2} s (blocks served {served4:?})"
    );
    println!(
        "{label:<13} speedup:       {:.2}x  (target >= 3x)",
        one / four
    );
    Ok(())
}

fn headers_over_p2p(label: &str, chain: Arc<Chain>) -> Result<(), String> {
    let n = chain.height();
    let node = NodeProc::start("H", &[]);
    let server = ChainServer::start(node.addr, Arc::clone(&chain), Serve::HeadersOnly)
        .map_err(|e| node.err(&format!("headers server: {e}")))?;
    let started = Instant::now();
    let (first, end, getheaders) = loop {
        {
            let st = server.stats.lock().unwrap();
            if let (Some(f), Some(e)) = (st.first_getheaders, st.past_end) {
                break (f, e, st.getheaders);
            }
            if started.elapsed() >= HEADERS_TIMEOUT {
                // Every getheaders after the first acknowledges 2,000 headers.
                let got = st.getheaders.saturating_sub(1) * 2000;
                let since = st
                    .first_getheaders
                    .map_or(0.0, |f| f.elapsed().as_secs_f64());
                let msg = format!(
                    "TIMEOUT: {got} of {n} headers taken in {since:.1} s ({:.0} headers/s)",
                    got as f64 / since.max(1e-9)
                );
                drop(st);
                return Err(node.err(&msg));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = (end - first).as_secs_f64();
    let hwm = node.status_kb("VmHWM:");
    let (anon, file) = (node.status_kb("RssAnon:"), node.status_kb("RssFile:"));
    let cpu = node.cpu_secs();
    let _ = server.finish();
    drop(node);
    println!("{label:<13} p2p time:      {secs:.3} s for {n} headers, {getheaders} getheaders  (target < 0.5 s)");
    println!("{label:<13} p2p headers/s: {:.0}", f64::from(n) / secs);
    println!(
        "{label:<13} p2p node:      peak RSS {:.1} MB (at the end anon {:.1} MB, file/mmap {:.1} MB), CPU {cpu:.2} s",
        hwm as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    Ok(())
}

fn headers_in_process(label: &str, chain: &Chain) -> Result<(), String> {
    let n = chain.height();
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let mut cs = ChainState::open(
        &dir.path().join("chainstate"),
        strand::Network::Regtest,
        ChainOptions {
            script_threads: 0,
            ..Default::default()
        },
    )
    .map_err(|e| format!("open chain state: {e}"))?;
    let open = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut chunks = Vec::new();
    for chunk in chain.headers[1..].chunks(2000) {
        let c = Instant::now();
        cs.process_headers(chunk)
            .map_err(|e| format!("process_headers failed: {e:?}"))?;
        chunks.push(c.elapsed().as_secs_f64());
        if t.elapsed() > IN_PROCESS_BUDGET && chunks.len() * 2000 < n as usize {
            let done = chunks.len() * 2000;
            return Err(format!(
                "in-process TIMEOUT: {done} of {n} headers in {:.1} s ({:.0} headers/s); chunk times {}",
                t.elapsed().as_secs_f64(),
                done as f64 / t.elapsed().as_secs_f64(),
                chunks.iter().map(|c| format!("{:.2} s", c)).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if cs.best_header_height() != n {
        return Err(format!(
            "in-process best header height {} != {n}",
            cs.best_header_height()
        ));
    }
    let t = Instant::now();
    cs.flush().map_err(|e| format!("flush: {e}"))?;
    let flush = t.elapsed().as_secs_f64();
    drop(cs);
    let slowest = chunks.iter().copied().fold(0.0, f64::max);
    println!(
        "{label:<13} in-process:    {secs:.3} s for {n} headers ({:.0}/s)",
        f64::from(n) / secs
    );
    println!(
        "{label:<13} in-process:    chunk of 2,000 first {:.1} ms, slowest {:.1} ms; open {:.1} ms, flush {:.1} ms",
        chunks[0] * 1e3,
        slowest * 1e3,
        open * 1e3,
        flush * 1e3
    );
    Ok(())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` lists nothing.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench --bench sync -- full coinbase headers` picks benchmarks.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let started = Instant::now();
    let mut aborted = Vec::new();
    let mut report = |name: &str, r: Result<(), String>| {
        if let Err(e) = r {
            println!("{name:<13} ABORTED: {e}");
            aborted.push(name.to_string());
        }
    };
    println!("load average before: {}", load());

    if run("full") {
        let chain = Arc::new(Chain::build_or_load(FULL));
        println!("load average: {}", load());
        report("full-sync", node_to_node_sync("full-sync", chain, true));
    }
    if run("assumevalid") {
        let chain = Arc::new(Chain::build_or_load_with_top(FULL, ASSUMEVALID_TOP));
        println!("load average: {}", load());
        report("assumevalid", assumevalid_sync("assumevalid", chain));
    }
    if run("coinbase") {
        let chain = Arc::new(Chain::build_or_load(COINBASE_ONLY));
        println!("load average: {}", load());
        report(
            "coinbase-only",
            node_to_node_sync("coinbase-only", chain, false),
        );
    }
    if run("parallel") {
        let chain = Arc::new(Chain::build_or_load(FULL));
        println!("load average: {}", load());
        report("parallel", parallel_download("parallel", chain));
    }
    if run("headers") {
        let chain = Arc::new(Chain::build_or_load(HEADERS));
        println!("load average: {}", load());
        report("headers", headers_over_p2p("headers", Arc::clone(&chain)));
        report("headers", headers_in_process("headers", &chain));
    }
    println!(
        "load average after: {}  (total {:.0} s)",
        load(),
        started.elapsed().as_secs_f64()
    );
    if !aborted.is_empty() {
        println!("aborted: {}", aborted.join(", "));
        std::process::exit(1);
    }
}
