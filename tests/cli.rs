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

/// Runs `strand cli ARGS` with `stdin` as its standard input.
fn run_cli_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(strand_bin())
        .arg("cli")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strand cli");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_accepted_option() {
    let (code, out, _) = run_strand(&["--help"]);
    assert_eq!(code, 0);
    for name in strand::config::OPTION_NAMES {
        assert!(out.contains(&format!("--{name}")), "--help lacks --{name}");
    }
    let (code, out, _) = run_strand(&["cli", "--help"]);
    assert_eq!(code, 0);
    for name in [
        "rpcwait",
        "rpcwaittimeout",
        "stdin",
        "stdinrpcpass",
        "getinfo",
        "netinfo",
        "rpccookiefile",
        "named",
    ] {
        assert!(
            out.contains(&format!("--{name}")),
            "cli --help lacks --{name}"
        );
    }
    let (code, out, _) = run_strand(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--testnet4               use testnet4"),
        "{out}"
    );
}

#[test]
fn testnet4_node_starts_at_its_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let mut node = Command::new(strand_bin())
        .args(["--testnet4", "--datadir", &d, "--nolisten"])
        .args([
            "--connect",
            "127.0.0.1:1",
            "--dnsseed=0",
            "--rpcport",
            &port,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, out, err) = run_cli_stdin(
        &[
            "-testnet4",
            "-datadir",
            &d,
            "-rpcport",
            &port,
            "-rpcwait",
            "-rpcwaittimeout=60",
            "getblockchaininfo",
        ],
        "",
    );
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    let mut exited = false;
    for _ in 0..300 {
        if node.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !exited {
        let _ = node.kill();
        let _ = node.wait();
    }
    assert_eq!(code, 0, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["chain"], "testnet4");
    assert_eq!(info["blocks"], 0);
    assert_eq!(
        info["bestblockhash"],
        "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"
    );
    // Core's layout: the network's files under DATADIR/testnet4.
    assert!(dir.path().join("testnet4").is_dir());
    assert!(exited, "strand --testnet4 did not stop on SIGTERM");
}

#[test]
fn corrupt_store_error_names_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("regtest").join("chainstate");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("data.mdb"), vec![0xAB; 64 * 1024]).unwrap();
    let d = dir.path().to_str().unwrap();
    assert_usage_error(
        &["--regtest", "--nolisten", "--datadir", d],
        "--reindex-chainstate",
    );
    assert_usage_error(&["--regtest", "--nolisten", "--datadir", d], "--reindex ");
}

#[test]
fn cli_rpcwait_waits_for_a_node_started_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let mut cli = Command::new(strand_bin())
        .args(["cli", "-regtest", "-datadir", &d, "-rpcport", &port])
        .args(["-rpcwait", "-rpcwaittimeout=60", "getblockcount"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Still waiting: no node yet.
    assert!(cli.try_wait().unwrap().is_none());
    let mut node = NodeProcess::start_in(&d, &["--rpcport", &port]);
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = cli.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = cli.kill();
    }
    let out = cli.wait_with_output().unwrap();
    node.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");

    // Nothing ever listens: gives up after the timeout, exit 1.
    let (code, _, err) = run_cli_stdin(
        &[
            "-regtest",
            "-datadir",
            &d,
            "-rpcport",
            &port,
            "-rpcwait",
            "-rpcwaittimeout=1",
            "getblockcount",
        ],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timeout on transient error"), "{err}");
}

#[test]
fn cli_stdin_stdinrpcpass_getinfo_and_netinfo() {
    let mut node = NodeProcess::start(&["--rpcuser", "alice", "--rpcpassword", "s3cret"]);
    let port = node.rpc_addr().port().to_string();
    let base = ["-regtest", "-rpcport", port.as_str(), "-rpcuser", "alice"];
    let call = |extra: &[&str], stdin: &str| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        run_cli_stdin(&args, stdin)
    };

    // The password from the first stdin line, the method and its
    // arguments from the following ones.
    let (code, out, err) = call(&["-stdinrpcpass", "-stdin"], "s3cret\ngetblockhash\n0\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        strand::Network::Regtest.genesis_hash().to_string()
    );
    let (code, _, err) = call(&["-stdinrpcpass", "getblockcount"], "wrong\n");
    assert_eq!(code, 1);
    assert!(err.contains("Incorrect rpcuser or rpcpassword"), "{err}");

    // bitcoin-cli's -getinfo text.
    let (code, out, err) = call(&["-rpcpassword=s3cret", "-getinfo"], "");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Chain: regtest");
    assert_eq!(lines[1], "Blocks: 0");
    assert_eq!(lines[2], "Headers: 0");
    assert!(lines[3].starts_with("Verification progress: "), "{out}");
    assert!(lines[4].starts_with("Difficulty: "), "{out}");
    assert_eq!(lines[6], "Network: in 0, out 0, total 0");
    assert_eq!(lines[7], "Version: 310000");
    assert_eq!(lines[8], "Time offset (s): 0");
    assert_eq!(lines[9], "Proxies: n/a");
    assert!(
        lines[10].starts_with("Min tx relay fee rate (BTC/kvB): 0.000010"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"Warnings: (none)"));

    // -netinfo with one inbound peer: Core's header, columns and counts.
    let mut peer = FakePeer::connect(node.addr()).unwrap();
    peer.handshake(0, bitcoin::p2p::ServiceFlags::NETWORK)
        .unwrap();
    peer.ping(1).unwrap();
    let (code, out, err) = call(&["-rpcpassword=s3cret", "-netinfo", "4"], "");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("strand client v")
            && lines[0].contains(" regtest - server 70016/strand:"),
        "{out}"
    );
    assert!(lines[2].starts_with("<->   type   net "), "{out}");
    assert!(lines[2].ends_with("id address         version"), "{out}");
    assert!(lines[3].starts_with(" in          npr "), "{out}");
    assert!(lines[3].contains(&peer.local_addr().to_string()), "{out}");
    let counts = lines
        .iter()
        .position(|l| l.trim_start().starts_with("ipv4"))
        .unwrap();
    assert_eq!(
        lines[counts],
        "         ipv4    ipv6     npr   total   block"
    );
    assert_eq!(lines[counts + 1], "in          0       0       1       1");
    assert_eq!(
        lines[counts + 2],
        "out         0       0       0       0       0"
    );
    let (code, out, _) = call(&["-rpcpassword=s3cret", "-netinfo"], "");
    assert_eq!(code, 0);
    assert!(out.contains("Local services: network"), "{out}");
    assert!(!out.contains("<->"), "{out}");
    node.terminate(Duration::from_secs(20));
}
