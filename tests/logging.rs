//! The binary's logs and `-blocknotify`, from outside: debug.log in the
//! network's directory with Core's line format, `-debug=net` adding `[net]`
//! lines the default leaves out, `-printtoconsole=0`, `-nodebuglogfile`,
//! `-debuglogfile`, the shrink of an oversized debug.log at start, and a
//! block notification command run with the new tip's hash.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use common::*;

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

fn read(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

/// Whether `line` starts with Core's `YYYY-MM-DDThh:mm:ssZ ` timestamp.
fn has_iso_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21
        && b.iter().take(20).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[20] == b' '
}

/// A handshake and a ping round trip with the node: once the pong is
/// back, the node's reader has logged everything about the handshake.
fn shake_hands(node: &NodeProcess) {
    let mut peer = FakePeer::connect(node.addr()).unwrap();
    peer.handshake(0, ServiceFlags::NETWORK).unwrap();
    peer.ping(7).unwrap();
}

#[test]
fn debug_log_has_core_lines_and_debug_net_adds_net_lines() {
    let mut plain = NodeProcess::start(&[]);
    shake_hands(&plain);
    assert!(plain.terminate(Duration::from_secs(20)).is_some());
    let log = read(&plain.dir.path().join("regtest").join("debug.log"));
    assert!(log.contains("listening for peers on"), "{log}");
    assert!(log.lines().all(has_iso_timestamp), "{log}");
    assert!(!log.contains("handshake complete"), "{log}");
    assert!(!log.contains("[net] "), "{log}");
    // The console has the same lines by default (Core without -daemon).
    assert!(plain.log_contains("listening for peers on"));

    let mut net = NodeProcess::start(&["-debug=net"]);
    shake_hands(&net);
    assert!(net.terminate(Duration::from_secs(20)).is_some());
    let log = read(&net.dir.path().join("regtest").join("debug.log"));
    let line = log
        .lines()
        .find(|l| l.contains("handshake complete"))
        .unwrap_or_else(|| panic!("no handshake line: {log}"));
    assert!(has_iso_timestamp(line), "{line}");
    assert_eq!(&line[21..27], "[net] ", "{line}");
    // Nothing of other categories' debug lines (validation, rpc).
    assert!(!log.contains("[validation] ") && !log.contains("[rpc] "));
}

#[test]
fn printtoconsole_0_and_log_file_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(strand_bin())
        .args(["--regtest", "--listen", "127.0.0.1:0", "--rpcport", "0"])
        .args(["--datadir", dir.path().to_str().unwrap()])
        .args(["-printtoconsole=0", "-debuglogfile=logs/node.log"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let file = dir.path().join("regtest").join("logs").join("node.log");
    let started = wait_until(Duration::from_secs(20), || {
        read(&file).contains("JSON-RPC listening on")
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut exited = false;
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(started, "{}", read(&file));
    assert!(exited);
    assert_eq!(stderr, "", "-printtoconsole=0 printed to the console");
    assert!(!dir.path().join("regtest").join("debug.log").exists());
    assert!(read(&file).contains("stopping"), "{}", read(&file));

    let mut none = NodeProcess::start(&["-nodebuglogfile"]);
    assert!(none.terminate(Duration::from_secs(20)).is_some());
    assert!(none.log_contains("listening for peers on"));
    assert!(!none.dir.path().join("regtest").join("debug.log").exists());
}

#[test]
fn oversized_debug_log_is_shrunk_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("regtest");
    std::fs::create_dir_all(&net).unwrap();
    let p = net.join("debug.log");
    // 2 MB of old lines, then Core's RECENT_DEBUG_HISTORY_SIZE of recent ones.
    let mut text = "old line\n".repeat(2_000_000 / 9);
    text.push_str(&"recent line\n".repeat(10_000_000 / 12 + 1));
    std::fs::write(&p, &text).unwrap();
    let mut node = NodeProcess::start_in(dir.path().to_str().unwrap(), &[]);
    assert!(node.terminate(Duration::from_secs(20)).is_some());
    let after = read(&p);
    assert!(!after.contains("old line"), "the old part was kept");
    assert!(after.contains("recent line\n"));
    assert!(after.contains("listening for peers on"));
    let len = after.len() as u64;
    assert!(
        (10_000_000..10_500_000).contains(&len),
        "debug.log is {len} bytes"
    );

    // Below 11 MB nothing is cut.
    let small = "kept line\n".repeat(1000);
    std::fs::write(&p, &small).unwrap();
    let mut node = NodeProcess::start_in(dir.path().to_str().unwrap(), &[]);
    assert!(node.terminate(Duration::from_secs(20)).is_some());
    assert!(read(&p).starts_with(&small));
}

#[test]
fn blocknotify_runs_with_the_new_tips_hash() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("tips");
    let cmd = format!("-blocknotify=echo %s >> {}", file.display());
    let mut node = NodeProcess::start(&[&cmd]);
    let rpc = node.rpc_addr();
    let auth = strand::rpc::client::ClientAuth::Cookie(node.cookie());
    let hashes = strand::rpc::client::call(
        rpc,
        &auth,
        "generatetoaddress",
        vec![serde_json::json!(1), serde_json::json!(ADDRESS)],
    )
    .unwrap();
    let hash = hashes[0].as_str().unwrap().to_string();
    let seen = wait_until(Duration::from_secs(20), || read(&file).contains(&hash));
    assert!(node.terminate(Duration::from_secs(20)).is_some());
    assert!(seen, "{:?} lacks {hash}", read(&file));
    assert_eq!(read(&file).lines().collect::<Vec<_>>(), vec![hash.as_str()]);
}

/// Core's `UpdateTip` line in debug.log after a block is mined: the new
/// tip's hash and height, `log2_work`, the chain's transaction count from
/// the block index (genesis + one coinbase = 2), an ISO date and progress.
/// Then the `logging` RPC switches the `net` category on at run time.
#[test]
fn update_tip_line_and_logging_rpc_switch_categories() {
    let mut node = NodeProcess::start(&[]);
    let (rpc, auth) = (
        node.rpc_addr(),
        strand::rpc::client::ClientAuth::Cookie(node.cookie()),
    );
    let hashes = rpc_ok(
        rpc,
        &auth,
        "generatetoaddress",
        serde_json::json!([1, ADDRESS]),
    );
    let hash = hashes[0].as_str().unwrap().to_string();
    let on = rpc_ok(rpc, &auth, "logging", serde_json::json!([["net"]]));
    assert_eq!(on["net"], serde_json::json!(true), "{on}");
    assert_eq!(on["mempool"], serde_json::json!(false), "{on}");
    shake_hands(&node);
    assert!(node.terminate(Duration::from_secs(20)).is_some());
    let log = read(&node.dir.path().join("regtest").join("debug.log"));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("UpdateTip: new best={hash} ")))
        .unwrap_or_else(|| panic!("no UpdateTip line for {hash}: {log}"));
    let field = |name: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .to_string()
    };
    assert_eq!(field("height"), "1", "{line}");
    assert!(field("version").starts_with("0x"), "{line}");
    assert!(field("log2_work").parse::<f64>().unwrap() > 1.0, "{line}");
    assert_eq!(field("tx"), "2", "{line}");
    let date = field("date");
    assert!(
        date.starts_with('\'') && date.ends_with("Z'") && date.len() == 22,
        "{line}"
    );
    assert_eq!(field("progress"), "1.000000", "{line}");
    assert!(field("cache").ends_with("txo)"), "{line}");
    // The handshake after `logging ["net"]` is logged in the net category.
    assert!(
        log.lines()
            .any(|l| l.contains("handshake complete") && l.get(21..27) == Some("[net] ")),
        "{log}"
    );
}
