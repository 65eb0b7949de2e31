//! The address manager through the node (issue 11): Core's address RPCs
//! (`getnodeaddresses`, `getaddrmaninfo`, `addpeeraddress`) with Core's
//! shapes and errors, `peers.dat` kept across restarts (a corrupt one set
//! aside, never fatal), address relay to two peers, and `getaddr` answered
//! only to inbound peers.

mod common;

use std::time::{Duration, Instant};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::ServiceFlags;
use common::rules::{Profile, RulePeer};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::{call, ClientAuth, ClientError};

fn try_rpc(
    node: &NodeProcess,
    cookie: &std::path::Path,
    method: &str,
    params: Value,
) -> Result<Value, ClientError> {
    let params = params.as_array().cloned().unwrap_or_default();
    call(
        node.rpc_addr(),
        &ClientAuth::Cookie(cookie.to_path_buf()),
        method,
        params,
    )
}

fn rpc(node: &NodeProcess, cookie: &std::path::Path, method: &str, params: Value) -> Value {
    try_rpc(node, cookie, method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn rpc_error(
    node: &NodeProcess,
    cookie: &std::path::Path,
    method: &str,
    params: Value,
) -> (i32, String) {
    match try_rpc(node, cookie, method, params) {
        Err(ClientError::Rpc(f)) => (f.code, f.message),
        other => panic!("{method}: expected an RPC error, got {other:?}"),
    }
}

const ONION: &str = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";

#[test]
fn address_rpcs_have_cores_shapes_and_errors() {
    let node = NodeProcess::start(&[]);
    let cookie = node.cookie();
    let info = rpc(&node, &cookie, "getaddrmaninfo", json!([]));
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["ipv4", "ipv6", "onion", "i2p", "cjdns", "all_networks"]
    );
    assert_eq!(
        info["all_networks"],
        json!({"new": 0, "tried": 0, "total": 0})
    );
    assert_eq!(
        rpc(&node, &cookie, "getnodeaddresses", json!([0])),
        json!([])
    );

    assert_eq!(
        rpc(&node, &cookie, "addpeeraddress", json!(["1.2.3.4", 8333])),
        json!({"success": true})
    );
    assert_eq!(
        rpc(&node, &cookie, "addpeeraddress", json!(["1.2.3.4", 8333])),
        json!({"error": "failed-adding-to-new", "success": false})
    );
    assert_eq!(
        rpc(
            &node,
            &cookie,
            "addpeeraddress",
            json!(["2a01:4f8::1", 8333, true])
        ),
        json!({"success": true})
    );
    assert_eq!(
        rpc(&node, &cookie, "addpeeraddress", json!([ONION, 8333])),
        json!({"success": true})
    );
    // Unroutable: refused (loopback is routable on regtest, see below).
    assert_eq!(
        rpc(&node, &cookie, "addpeeraddress", json!(["10.0.0.1", 8333]))["success"],
        json!(false)
    );
    assert_eq!(
        rpc(
            &node,
            &cookie,
            "addpeeraddress",
            json!(["127.0.0.2", 18444])
        )["success"],
        json!(true)
    );
    assert_eq!(
        rpc_error(&node, &cookie, "addpeeraddress", json!(["not-an-ip", 8333])),
        (-30, "Invalid IP address".to_string())
    );

    let info = rpc(&node, &cookie, "getaddrmaninfo", json!([]));
    assert_eq!(info["ipv4"], json!({"new": 2, "tried": 0, "total": 2}));
    assert_eq!(info["ipv6"], json!({"new": 0, "tried": 1, "total": 1}));
    assert_eq!(info["onion"], json!({"new": 1, "tried": 0, "total": 1}));
    assert_eq!(
        info["all_networks"],
        json!({"new": 3, "tried": 1, "total": 4})
    );

    // Default count is 1; 0 means all.
    assert_eq!(
        rpc(&node, &cookie, "getnodeaddresses", json!([]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let all = rpc(&node, &cookie, "getnodeaddresses", json!([0]));
    assert_eq!(all.as_array().unwrap().len(), 4);
    for e in all.as_array().unwrap() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["time", "services", "address", "port", "network"]);
        // NODE_NETWORK | NODE_WITNESS, as Core's addpeeraddress sets.
        assert_eq!(e["services"], json!(9));
        assert!(e["time"].as_u64().unwrap() > 1_700_000_000);
    }
    let onion = rpc(&node, &cookie, "getnodeaddresses", json!([0, "onion"]));
    assert_eq!(
        onion,
        json!([{"time": onion[0]["time"], "services": 9, "address": ONION, "port": 8333, "network": "onion"}])
    );
    let v6 = rpc(&node, &cookie, "getnodeaddresses", json!([5, "IPv6"]));
    assert_eq!(v6[0]["address"], json!("2a01:4f8::1"));
    assert_eq!(v6[0]["network"], json!("ipv6"));
    assert_eq!(
        rpc_error(&node, &cookie, "getnodeaddresses", json!([1, "ipv5"])),
        (-8, "Network not recognized: ipv5".to_string())
    );
    assert_eq!(
        rpc_error(&node, &cookie, "getnodeaddresses", json!([-1])),
        (-8, "Address count out of range".to_string())
    );
}

#[test]
fn peers_dat_survives_a_restart_and_a_corrupt_one_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().to_str().unwrap();
    let cookie = dir.path().join("regtest").join(".cookie");
    let peers_dat = dir.path().join("regtest").join("peers.dat");

    let mut node = NodeProcess::start_in(datadir, &[]);
    for i in 1..=20 {
        let r = rpc(
            &node,
            &cookie,
            "addpeeraddress",
            json!([format!("11.{i}.0.1"), 8333, i % 4 == 0]),
        );
        assert_eq!(r["success"], json!(true), "{r}");
    }
    let before = rpc(&node, &cookie, "getaddrmaninfo", json!([]));
    assert_eq!(before["all_networks"]["total"], json!(20));
    assert!(node
        .terminate(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    assert!(peers_dat.exists(), "written at shutdown");

    let mut node = NodeProcess::start_in(datadir, &[]);
    assert_eq!(rpc(&node, &cookie, "getaddrmaninfo", json!([])), before);
    assert!(node
        .terminate(Duration::from_secs(20))
        .is_some_and(|s| s.success()));

    // Damaged: the node starts anyway with an empty address manager and
    // keeps the damaged file beside it.
    let mut bytes = std::fs::read(&peers_dat).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&peers_dat, &bytes).unwrap();
    let node = NodeProcess::start_in(datadir, &[]);
    let after = rpc(&node, &cookie, "getaddrmaninfo", json!([]));
    assert_eq!(after["all_networks"]["total"], json!(0));
    assert_eq!(
        std::fs::read(dir.path().join("regtest").join("peers.dat.bad")).unwrap(),
        bytes
    );
    assert!(node.log_contains("peers.dat"), "{:?}", node.log_lines());
}

/// Reads what `p` was sent up to a pong, keeping the addresses of
/// `addr`/`addrv2` messages.
fn addresses_before_pong(p: &mut RulePeer, nonce: u64) -> Vec<std::net::SocketAddr> {
    p.fence(nonce)
        .unwrap()
        .into_iter()
        .flat_map(|m| match m {
            NetworkMessage::AddrV2(l) => l.iter().filter_map(|a| a.socket_addr().ok()).collect(),
            NetworkMessage::Addr(l) => l.iter().filter_map(|(_, a)| a.socket_addr().ok()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_fresh_address_is_relayed_to_two_peers() {
    let node = TestNode::start(|c| c.addr_broadcast_interval = Duration::from_millis(100));
    // Three listeners with address relay on (an inbound peer turns it on
    // with getaddr, as in Core); btcd's rules flag an empty address message.
    let mut listeners: Vec<RulePeer> = (0..3)
        .map(|_| {
            let mut p = RulePeer::connect(
                node.addr,
                Profile::Btcd,
                70016,
                ServiceFlags::NETWORK | ServiceFlags::WITNESS,
                0,
            )
            .unwrap();
            p.send(NetworkMessage::GetAddr).unwrap();
            p
        })
        .collect();
    let mut teller = FakePeer::connect(node.addr).unwrap();
    teller.handshake(0, SERVES).unwrap();
    let fresh: std::net::SocketAddr = "11.22.33.44:8333".parse().unwrap();
    let now = strand::unix_time() as u32;
    teller
        .send(NetworkMessage::Addr(vec![(
            now - 30,
            Address::new(&fresh, SERVES),
        )]))
        .unwrap();
    teller.ping(1).unwrap();

    // Poll each listener (bounded: 50 rounds of 100 ms) until two have it.
    let mut got = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    for round in 0..50u64 {
        for (i, p) in listeners.iter_mut().enumerate() {
            if addresses_before_pong(p, 100 + round).contains(&fresh) {
                got[i] = true;
            }
        }
        if got.iter().filter(|g| **g).count() >= 2 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few more flush intervals: the third never gets it.
    std::thread::sleep(Duration::from_millis(500));
    for (i, p) in listeners.iter_mut().enumerate() {
        if addresses_before_pong(p, 900).contains(&fresh) {
            got[i] = true;
        }
    }
    assert_eq!(got.iter().filter(|g| **g).count(), 2, "{got:?}");
    for p in &listeners {
        p.assert_clean();
    }
    assert_eq!(node.handle.addrman().unwrap().size(), 1);
}

#[test]
fn getaddr_from_an_outbound_peer_is_ignored_and_strand_asks_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let node = NodeProcess::start(&["--connect", &target]);
    let cookie = node.cookie();
    for i in 1..=20 {
        rpc(
            &node,
            &cookie,
            "addpeeraddress",
            json!([format!("11.{i}.0.1"), 8333]),
        );
    }
    let stream = accept_within(&listener, Duration::from_secs(15));
    let mut p = RulePeer::accept(
        stream,
        Profile::Core,
        70016,
        ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        0,
    )
    .unwrap();
    p.send(NetworkMessage::GetAddr).unwrap();
    let before = p.fence(3).unwrap();
    assert!(
        before.contains(&NetworkMessage::GetAddr),
        "strand asks an outbound peer for addresses: {before:?}"
    );
    assert!(
        !before
            .iter()
            .any(|m| matches!(m, NetworkMessage::Addr(_) | NetworkMessage::AddrV2(_))),
        "answered an outbound peer's getaddr: {before:?}"
    );
    p.assert_clean();
    // The reached peer is moved to tried (Core's Good after the handshake)
    // only if it was known; --connect targets are not added.
    let info = rpc(&node, &cookie, "getaddrmaninfo", json!([]));
    assert_eq!(info["all_networks"]["total"], json!(20));
}
