//! Header-sync benchmark (not a test): a fake peer serves N valid regtest
//! headers to the real `strand` binary, as a peer answering `getheaders`
//! would. Prints the time until the node holds them all, its peak
//! resident memory split into anonymous (`RssAnon`, the heap: block index
//! and friends) and file-backed (`RssFile`, mostly the mapped LMDB store),
//! sampled from `/proc/PID/status` while it runs, and the store's size on
//! disk after a clean shutdown.
//!
//!     cargo bench --bench headers
//!     STRAND_BENCH_HEADERS=400000 cargo bench --bench headers
//!
//! `STRAND_BENCH_HEADERS` is a comma-separated list of chain lengths
//! (default `400000,900000`). Loopback only, OS-chosen port, temporary
//! data directory; the child is killed if anything goes wrong.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::BlockHash;
use strand::chain::ChainParams;
use strand::wire::{encode_message, read_message};

const MAGIC: Magic = Magic::REGTEST;

/// Kills the child on drop (panics included).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `RssAnon` and `RssFile` of `pid`, in KiB.
fn rss_split(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

/// User plus system CPU seconds of `pid` so far (`/proc/PID/stat` fields
/// 14 and 15, in clock ticks of 1/100 s): a figure that holds up when other
/// processes load the machine.
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Outcome {
    secs: f64,
    cpu_secs: f64,
    peak_total_kib: u64,
    peak_anon_kib: u64,
    peak_file_kib: u64,
    store_bytes: u64,
}

fn run(headers: &[Header]) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    // The node dials us (`--connect`): no inbound-slot or handshake races.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer_addr: SocketAddr = listener.local_addr().expect("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_strand"))
        .arg("--regtest")
        .arg("--datadir")
        .arg(dir.path())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--rpcport")
        .arg("0")
        .arg("--connect")
        .arg(peer_addr.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strand");
    let mut guard = Guard(child);
    let pid = guard.0.id();
    if let Some(stderr) = guard.0.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ERROR") || line.contains("WARN") {
                    eprintln!("node: {line}");
                }
            }
        });
    }

    // Sample the child's memory while it runs.
    let stop = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let sampler = {
        let (stop, peaks) = (Arc::clone(&stop), Arc::clone(&peaks));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some((anon, file)) = rss_split(pid) {
                    peaks[0].fetch_max(anon + file, Ordering::SeqCst);
                    peaks[1].fetch_max(anon, Ordering::SeqCst);
                    peaks[2].fetch_max(file, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream: TcpStream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("node never connected: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut out = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let send = |out: &mut TcpStream, m: NetworkMessage| {
        let _ = out.write_all(&encode_message(MAGIC, m));
    };
    let index: HashMap<BlockHash, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.block_hash(), i + 1))
        .collect();
    let last = headers.last().map(Header::block_hash);
    send(
        &mut out,
        common::version(headers.len() as i32, ServiceFlags::NETWORK, 7),
    );
    let mut start = Instant::now();
    let mut cpu_start = 0.0;
    let mut done = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while done.is_none() && Instant::now() < deadline {
        let Ok((msg, _)) = read_message(&mut reader, MAGIC) else {
            break;
        };
        match msg {
            NetworkMessage::Version(_) => {
                send(&mut out, NetworkMessage::Verack);
                start = Instant::now();
                cpu_start = cpu_secs(pid).unwrap_or(0.0);
            }
            NetworkMessage::GetHeaders(g) => {
                // Done once the node's locator starts at our last header.
                if g.locator_hashes.first().copied() == last {
                    done = Some((start.elapsed(), cpu_secs(pid).unwrap_or(0.0) - cpu_start));
                    break;
                }
                let from = g
                    .locator_hashes
                    .iter()
                    .find_map(|h| index.get(h).copied())
                    .unwrap_or(0);
                let batch: Vec<Header> = headers.iter().skip(from).take(2000).copied().collect();
                send(&mut out, NetworkMessage::Headers(batch));
            }
            NetworkMessage::Ping(n) => send(&mut out, NetworkMessage::Pong(n)),
            _ => {}
        }
    }
    let (elapsed, cpu) = done.expect("the node synced every header");
    let secs = elapsed.as_secs_f64();
    // A moment for the last flush, then a clean shutdown (SIGTERM).
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = guard.0.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Outcome {
        secs,
        cpu_secs: cpu,
        peak_total_kib: peaks[0].load(Ordering::SeqCst),
        peak_anon_kib: peaks[1].load(Ordering::SeqCst),
        peak_file_kib: peaks[2].load(Ordering::SeqCst),
        store_bytes: dir_size(dir.path()),
    }
}

fn main() {
    let counts: Vec<usize> = std::env::var("STRAND_BENCH_HEADERS")
        .unwrap_or_else(|_| "400000,900000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let Some(&max) = counts.iter().max() else {
        eprintln!("STRAND_BENCH_HEADERS lists no counts");
        return;
    };
    let all = strand::testdata::headers_on(&ChainParams::regtest(), &genesis, max, 0);
    for n in counts {
        let Some(headers) = all.get(..n) else {
            continue;
        };
        let o = run(headers);
        let mb = |kib: u64| kib as f64 / 1024.0;
        println!(
            "{n} regtest headers from one peer: {:.2} s ({:.0} headers/s; node CPU {:.2} s), peak RSS {:.0} MB (RssAnon {:.0} MB, RssFile {:.0} MB), store {:.0} MB",
            o.secs,
            n as f64 / o.secs,
            o.cpu_secs,
            mb(o.peak_total_kib),
            mb(o.peak_anon_kib),
            mb(o.peak_file_kib),
            o.store_bytes as f64 / (1 << 20) as f64
        );
    }
}
