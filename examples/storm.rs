//! Connection storm against a running regtest node, the tool form of
//! `tests/race_storm.rs` (btcd's TestSyncManagerRaceCorruption), used by
//! `scripts/regtest-race.sh`.
//!
//! ```text
//! storm ADDR:PORT [--peers N] [--waves W] [--max-errors E]
//! ```
//!
//! Each wave opens N fake peers at once (one thread each). Peer `i` of wave
//! `w` follows script `(i + w) % 5`:
//!
//! 0. connect and close before `version`;
//! 1. send `version` and close without reading;
//! 2. exchange `version`s, read the node's `verack`, close before ours;
//! 3. complete the handshake and close right after our `verack`;
//! 4. complete the handshake, `ping`, wait for the matching `pong`, close.
//!
//! Peers advertise `NODE_NETWORK` and start height 10, so each fully
//! handshaken one becomes a sync candidate (and maybe the sync peer) just
//! before it disappears: the race the node must survive. Every I/O or
//! protocol error is counted, grouped by message, and reported; the exit
//! code is 0 when at most E errors happened (default 0), 1 otherwise, 2 on
//! a usage error. Give the node a `--maxpeers` above N, or connections over
//! the limit are closed at accept and count as errors.
//!
//!     cargo run --release --example storm -- 127.0.0.1:18444 --peers 200 --waves 10

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use strand::wire::{encode_message, read_message};

/// `println!` that ignores a closed stdout (the reader of a pipe gone after
/// Ctrl-C) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

const MAGIC: Magic = Magic::REGTEST;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages a peer skips while waiting for the one it wants.
const MAX_SKIPPED: usize = 64;
const SCRIPTS: [&str; 5] = [
    "close before version",
    "version, close",
    "versions exchanged, close before verack",
    "handshake, close",
    "handshake, ping/pong, close",
];

struct Options {
    addr: SocketAddr,
    peers: usize,
    waves: usize,
    max_errors: usize,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut addr = None;
    let (mut peers, mut waves, mut max_errors) = (200, 10, 0);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--peers" => peers = number("--peers")?,
            "--waves" => waves = number("--waves")?,
            "--max-errors" => max_errors = number("--max-errors")?,
            s if addr.is_none() && !s.starts_with('-') => {
                addr = Some(s.parse().map_err(|_| format!("bad address {s:?}"))?)
            }
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    let addr = addr.ok_or("missing ADDR:PORT")?;
    if peers == 0 || waves == 0 || peers > 5_000 || waves > 1_000 {
        return Err("--peers must be 1..=5000 and --waves 1..=1000".into());
    }
    Ok(Options {
        addr,
        peers,
        waves,
        max_errors,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("storm: {e}");
            eprintln!("usage: storm ADDR:PORT [--peers N] [--waves W] [--max-errors E]");
            return ExitCode::from(2);
        }
    };
    say!(
        "storm: {} waves of {} concurrent fake peers against {}",
        opts.waves,
        opts.peers,
        opts.addr
    );
    let started = Instant::now();
    let mut done = [0usize; 5];
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut error_count = 0;
    for wave in 0..opts.waves {
        let mut threads = Vec::with_capacity(opts.peers);
        for i in 0..opts.peers {
            let script = (i + wave) % SCRIPTS.len();
            let nonce = peer_nonce(wave, i);
            let addr = opts.addr;
            let spawned = std::thread::Builder::new()
                .name(format!("storm-{wave}-{i}"))
                .stack_size(128 * 1024)
                .spawn(move || run_peer(addr, script, nonce));
            match spawned {
                Ok(t) => threads.push((script, t)),
                Err(e) => {
                    *errors.entry(format!("spawn thread: {e}")).or_default() += 1;
                    error_count += 1;
                }
            }
        }
        let mut wave_errors = 0;
        for (script, t) in threads {
            let outcome = t
                .join()
                .unwrap_or_else(|_| Err("fake peer thread panicked".into()));
            match outcome {
                Ok(()) => done[script] += 1,
                Err(e) => {
                    *errors
                        .entry(format!("{}: {e}", SCRIPTS[script]))
                        .or_default() += 1;
                    wave_errors += 1;
                }
            }
        }
        error_count += wave_errors;
        if wave_errors > 0 {
            say!("storm: wave {wave}: {wave_errors} errors");
        }
    }
    let elapsed = started.elapsed();
    let total: usize = done.iter().sum();
    say!(
        "storm: {} connections in {:.2} s ({:.0}/s), {} ok, {} errors",
        opts.peers * opts.waves,
        elapsed.as_secs_f64(),
        (opts.peers * opts.waves) as f64 / elapsed.as_secs_f64().max(1e-9),
        total,
        error_count
    );
    for (script, n) in SCRIPTS.iter().zip(done) {
        say!("storm:   {n:6} ok  {script}");
    }
    for (e, n) in &errors {
        say!("storm:   {n:6} x   ERROR {e}");
    }
    if error_count > opts.max_errors {
        say!(
            "storm: FAILED: {error_count} errors (at most {} allowed)",
            opts.max_errors
        );
        ExitCode::from(1)
    } else {
        say!("storm: done");
        ExitCode::SUCCESS
    }
}

/// A nonce unique to this process and peer, never the node's own.
fn peer_nonce(wave: usize, i: usize) -> u64 {
    (u64::from(std::process::id()) << 32)
        ^ ((wave as u64) << 16)
        ^ (i as u64)
        ^ 0x5EED_0000_0000_0001
}

fn version_message(nonce: u64) -> NetworkMessage {
    let unspecified: SocketAddr = "0.0.0.0:0".parse().expect("constant address");
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    NetworkMessage::Version(VersionMessage {
        version: 70016,
        services: ServiceFlags::NETWORK,
        timestamp,
        receiver: Address::new(&unspecified, ServiceFlags::NONE),
        sender: Address::new(&unspecified, ServiceFlags::NETWORK),
        nonce,
        user_agent: "/storm:0.1/".into(),
        start_height: 10,
        relay: true,
    })
}

/// One fake peer.
struct Peer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Result<Peer, String> {
        let stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        let setup = |s: &TcpStream| -> std::io::Result<TcpStream> {
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)?;
            s.try_clone()
        };
        let clone = setup(&stream).map_err(|e| format!("socket setup: {e}"))?;
        Ok(Peer {
            stream,
            reader: BufReader::new(clone),
        })
    }

    fn send(&mut self, msg: NetworkMessage) -> Result<(), String> {
        use std::io::Write;
        let command = msg.command();
        self.stream
            .write_all(&encode_message(MAGIC, msg))
            .map_err(|e| format!("send {command}: {e}"))
    }

    /// Reads until a message matching `want`, skipping at most
    /// [`MAX_SKIPPED`] others.
    fn recv_until(
        &mut self,
        what: &str,
        want: impl Fn(&NetworkMessage) -> bool,
    ) -> Result<(), String> {
        for _ in 0..=MAX_SKIPPED {
            match read_message(&mut self.reader, MAGIC) {
                Ok((m, _)) if want(&m) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for {what}: {e}")),
            }
        }
        Err(format!("waiting for {what}: {MAX_SKIPPED} other messages"))
    }

    /// Sends `version`, reads the node's `version` and `verack`.
    fn exchange_versions(&mut self, nonce: u64) -> Result<(), String> {
        self.send(version_message(nonce))?;
        self.recv_until("version", |m| matches!(m, NetworkMessage::Version(_)))?;
        self.recv_until("verack", |m| *m == NetworkMessage::Verack)
    }
}

fn run_peer(addr: SocketAddr, script: usize, nonce: u64) -> Result<(), String> {
    let mut p = Peer::connect(addr)?;
    match script {
        0 => {}
        1 => p.send(version_message(nonce))?,
        2 => p.exchange_versions(nonce)?,
        3 => {
            p.exchange_versions(nonce)?;
            p.send(NetworkMessage::Verack)?;
        }
        _ => {
            p.exchange_versions(nonce)?;
            p.send(NetworkMessage::Verack)?;
            p.send(NetworkMessage::Ping(nonce))?;
            p.recv_until("pong", |m| *m == NetworkMessage::Pong(nonce))?;
        }
    }
    Ok(())
}
