//! The real binary from outside: `--maxpeers`, bad options (exit code 2,
//! one line, no backtrace), unusable data directories, clean shutdown.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn run_strand(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(strand_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage_error(args: &[&str], needle: &str) {
    let (code, _out, err) = run_strand(args);
    assert_eq!(code, 2, "{args:?}: stderr {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err:?}");
    assert!(err.starts_with("strand: "), "{err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_options_exit_2_with_one_line() {
    assert_usage_error(&["--frobnicate"], "unknown option '--frobnicate'");
    assert_usage_error(&["--regtest", "--maxpeers", "lots"], "--maxpeers");
    assert_usage_error(&["--regtest", "--maxpeers"], "needs a value");
    assert_usage_error(
        &["--regtest", "--connect", "300.1.1.1:5"],
        "cannot parse address",
    );
    assert_usage_error(
        &["--regtest", "--addnode", "example.com:99999"],
        "cannot parse address",
    );
    assert_usage_error(
        &["--regtest", "--listen", "127.0.0.1:99999"],
        "cannot parse address",
    );
    assert_usage_error(&["--regtest", "--signet"], "conflicting networks");
    assert_usage_error(
        &["--debug=chatty"],
        "Unsupported logging category -debug=chatty.",
    );
    assert_usage_error(&["positional"], "unexpected argument");
}

#[test]
fn unusable_data_directory_exits_2() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().join("sub");
    assert_usage_error(
        &[
            "--regtest",
            "--nolisten",
            "--datadir",
            path.to_str().unwrap(),
        ],
        "cannot use data directory",
    );
}

#[test]
fn locked_data_directory_exits_2() {
    let node = NodeProcess::start(&[]);
    let dir = node.dir.path().to_str().unwrap().to_string();
    assert_usage_error(
        &["--regtest", "--nolisten", "--datadir", &dir],
        "another strand process",
    );
}

#[test]
fn listen_address_in_use_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    assert_usage_error(
        &[
            "--regtest",
            "--datadir",
            dir.path().to_str().unwrap(),
            "--listen",
            &addr,
        ],
        "cannot listen on",
    );
}

#[test]
fn help_and_version_exit_0() {
    let (code, out, _) = run_strand(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--maxpeers"));
    let (code, out, _) = run_strand(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("strand "));
}

#[test]
fn maxpeers_is_enforced() {
    // 12 peers, 10 of them kept for outbound: two inbound slots.
    let node = NodeProcess::start(&["--maxpeers", "12"]);
    let mut a = FakePeer::connect(node.addr()).unwrap();
    a.handshake(0, SERVES).unwrap();
    let mut b = FakePeer::connect(node.addr()).unwrap();
    b.handshake(0, SERVES).unwrap();
    a.ping(1).unwrap();
    b.ping(2).unwrap();
    // The third connection is closed at accept, before any handshake.
    let mut c = FakePeer::connect(node.addr()).unwrap();
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "third peer accepted"
    );
    // The first two are unaffected.
    a.ping(3).unwrap();
    b.ping(4).unwrap();
    // Once one leaves, there is room again.
    drop(a);
    let mut d = None;
    assert!(wait_until(Duration::from_secs(5), || {
        let mut p = FakePeer::connect(node.addr()).unwrap();
        if p.handshake(0, SERVES).is_ok() && p.ping(5).is_ok() {
            d = Some(p);
            true
        } else {
            false
        }
    }));
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut node = NodeProcess::start(&[]);
    let mut p = FakePeer::connect(node.addr()).unwrap();
    p.handshake(0, SERVES).unwrap();
    p.ping(1).unwrap();
    let status = node.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(p.closed_within(Duration::from_secs(2)));
    assert!(node.log_contains("shutdown complete"));
    // The data directory is unlocked: a new node can use it.
    let dir = node.dir.path().to_str().unwrap().to_string();
    let mut child = Command::new(strand_bin())
        .args([
            "--regtest",
            "--nolisten",
            "--rpcport",
            "0",
            "--datadir",
            &dir,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("started on regtest") {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    let _ = child.kill();
    assert!(
        started,
        "second node did not start on the released data directory"
    );
    let _ = child.wait();
}

#[test]
fn generate_mines_into_a_stopped_nodes_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // A regtest P2WPKH address (BIP173 test vector program, regtest HRP).
    let addr = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    let out = Command::new(strand_bin())
        .args(["generate", "--regtest", "--datadir", d, "5", "--to", addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hashes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(hashes.len(), 5);
    let chain = chain_of(dir.path());
    assert_eq!(chain.height(), 5);
    assert_eq!(chain.tip().to_string(), hashes[4]);

    // Errors: a mainnet address on regtest, a missing count, a running node.
    assert_usage_error(
        &[
            "generate",
            "--regtest",
            "--datadir",
            d,
            "1",
            "--to",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ],
        "is not for regtest",
    );
    assert_usage_error(
        &["generate", "--regtest", "--datadir", d, "--to", addr],
        "block count",
    );
    drop(chain);
    let node = NodeProcess::start_in(d, &[]);
    assert_usage_error(
        &["generate", "--regtest", "--datadir", d, "1", "--to", addr],
        "another strand process",
    );
    drop(node);
}

#[test]
fn node_handle_generate_mines_and_announces() {
    let a = TestNode::start(|_| {});
    let b = TestNode::start(|c| c.connect = vec![a.addr.into()]);
    assert!(wait_until(Duration::from_secs(10), || a
        .snapshot()
        .peers
        .len()
        == 1));
    let script = bitcoin::ScriptBuf::new_op_return([1u8; 4]);
    let hashes = a.handle.generate(3, script, vec![]).unwrap();
    assert_eq!(hashes.len(), 3);
    assert!(
        wait_tip(&b, hashes[2], Duration::from_secs(20)),
        "{:?}",
        b.snapshot()
    );
}

#[test]
fn corrupt_or_foreign_chain_store_is_a_clear_startup_error() {
    // Garbage where the LMDB file should be.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("regtest").join("chainstate");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("data.mdb"), vec![0xAB; 64 * 1024]).unwrap();
    assert_usage_error(
        &[
            "--regtest",
            "--nolisten",
            "--datadir",
            dir.path().to_str().unwrap(),
        ],
        "chain store",
    );

    // A regtest store moved under testnet's directory.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = Command::new(strand_bin())
        .args([
            "generate",
            "--regtest",
            "--datadir",
            d,
            "1",
            "--to",
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::create_dir_all(dir.path().join("testnet3")).unwrap();
    std::fs::rename(
        dir.path().join("regtest").join("chainstate"),
        dir.path().join("testnet3").join("chainstate"),
    )
    .unwrap();
    assert_usage_error(&["--testnet", "--nolisten", "--datadir", d], "network");
}

#[test]
fn events_report_blocks_peers_and_never_block_the_node() {
    use strand::events::NodeEvent;
    let a = TestNode::start(|_| {});
    let sub = a.handle.subscribe(64).unwrap();
    let tiny = a.handle.subscribe(1).unwrap(); // a subscriber that never reads
    let b = TestNode::start(|c| c.connect = vec![a.addr.into()]);
    assert!(wait_until(Duration::from_secs(10), || a
        .snapshot()
        .sync_known
        .len()
        == 1));
    let script = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let hashes = a.handle.generate(4, script, vec![]).unwrap();
    assert!(wait_tip(&b, hashes[3], Duration::from_secs(20)));
    drop(b);
    let mut seen = Vec::new();
    while let Ok(ev) = sub.events.recv_timeout(Duration::from_secs(5)) {
        let done = matches!(ev, NodeEvent::PeerRemoved { .. });
        seen.push(ev);
        if done {
            break;
        }
    }
    assert!(matches!(seen[0], NodeEvent::PeerAdded { .. }), "{seen:?}");
    let connected: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            NodeEvent::BlockConnected { hash, .. } => Some(*hash),
            _ => None,
        })
        .collect();
    assert_eq!(connected, hashes);
    assert!(matches!(seen.last(), Some(NodeEvent::PeerRemoved { .. })));
    assert_eq!(sub.dropped(), 0);
    assert!(
        tiny.dropped() >= 4,
        "the full subscriber's events were dropped and counted"
    );
}
