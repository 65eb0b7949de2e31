//! Header-spam benchmark (not a test): one peer serves a long chain of
//! valid regtest headers to an in-process node, once with the node's
//! minimum chain work above the chain (headers pre-sync: checked, not
//! stored) and once with regtest's zero (every header stored). Prints the
//! time, the headers stored, the peak per-peer pre-sync state and the
//! growth of this process's resident memory, read from /proc.
//!
//!     cargo bench --bench presync
//!
//! Loopback only, OS-chosen port, temporary data directory.

mod common;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::pow::Work;
use bitcoin::BlockHash;
use strand::chain::pow;
use strand::chain::ChainParams;
use strand::wire::{encode_message, read_message};
use strand::{Config, Network, Node};

const MAGIC: Magic = Magic::REGTEST;
/// Not a multiple of 2,000: the last `headers` message is short.
const HEADERS: usize = 100_001;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn chain(n: usize) -> Vec<Header> {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    strand::testdata::headers_on(&ChainParams::regtest(), &genesis, n, 0)
}

struct Outcome {
    secs: f64,
    stored: u32,
    peak_state: usize,
    rss_growth_kib: i64,
}

/// Serves `headers` to a fresh node until it stops asking; returns what
/// it cost.
fn run(headers: &[Header], minimum_chain_work: Option<Work>) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(Network::Regtest);
    config.datadir = dir.path().to_path_buf();
    config.listen = Some("127.0.0.1:0".parse().expect("address"));
    config.minimum_chain_work = minimum_chain_work;
    config.script_threads = Some(0);
    let node = Node::start(config).expect("node starts");
    let addr = node.listen_addr().expect("listening");
    let index: std::collections::HashMap<BlockHash, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.block_hash(), i + 1))
        .collect();

    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut out = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let send = |out: &mut TcpStream, m: NetworkMessage| {
        use std::io::Write;
        out.write_all(&encode_message(MAGIC, m)).expect("send");
    };
    send(
        &mut out,
        common::version(headers.len() as i32, ServiceFlags::NETWORK, 7),
    );
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut peak_state = 0;
    let mut verack_sent = false;
    let mut stored = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let msg = match read_message(&mut reader, MAGIC) {
            Ok((msg, _)) => msg,
            Err(e) if e.is_timeout() => {
                // Quiet: done once the node has handled everything.
                let Ok(s) = node.sync_snapshot() else { break };
                stored = s.best_header_height;
                if s.counters.low_work_chains > 0 || stored as usize == headers.len() {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        match msg {
            NetworkMessage::Verack if !verack_sent => {
                send(&mut out, NetworkMessage::Verack);
                verack_sent = true;
            }
            NetworkMessage::GetHeaders(g) => {
                let from = g
                    .locator_hashes
                    .iter()
                    .find_map(|h| index.get(h).copied())
                    .unwrap_or(0);
                let batch: Vec<Header> = headers.iter().skip(from).take(2000).copied().collect();
                send(&mut out, NetworkMessage::Headers(batch));
                if let Ok(s) = node.sync_snapshot() {
                    let state = s.peers.iter().map(|p| p.headers_sync_bytes).max();
                    peak_state = peak_state.max(state.unwrap_or(0));
                }
            }
            NetworkMessage::Ping(n) => send(&mut out, NetworkMessage::Pong(n)),
            _ => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rss_growth_kib = rss_kib() as i64 - rss_before as i64;
    node.shutdown();
    Outcome {
        secs,
        stored,
        peak_state,
        rss_growth_kib,
    }
}

fn main() {
    let headers = chain(HEADERS);
    let per_block = pow::block_proof(ChainParams::regtest().pow_limit_bits());
    let work_at = |height: usize| (0..height).fold(per_block, |w, _| w + per_block);
    for (label, min_work) in [
        (
            "low work, pre-synced only      ",
            Some(work_at(HEADERS + 1)),
        ),
        (
            "enough work, pre-sync+redownload",
            Some(work_at(HEADERS - 1_000)),
        ),
        ("no minimum work, stored at once ", None),
    ] {
        let o = run(&headers, min_work);
        println!(
            "{label} {} regtest headers: {:.2} s ({:.0} headers/s), stored {}, peak pre-sync state {} bytes, RSS {:+.1} MB",
            headers.len(),
            o.secs,
            headers.len() as f64 / o.secs,
            o.stored,
            o.peak_state,
            o.rss_growth_kib as f64 / 1024.0
        );
    }
}
