//! Core's automatic outbound connections (issue 11): a restarted node
//! reconnects from its saved `peers.dat` with no seed, anchors are dialled
//! after a restart, a feeler moves an address to *tried*, and `--connect`
//! disables automatic dialling. Every node listens on its own 127.N.0.1
//! (one network group each under the regtest loopback rule) with an
//! OS-chosen port; the policy's timers are shortened through `Config`.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bitcoin::p2p::address::AddrV2Message;
use bitcoin::p2p::ServiceFlags;
use common::wait_until;
use strand::config::OutboundTimers;
use strand::connmgr::anchors::ANCHORS_FILE;
use strand::netaddr::addr_v2;
use strand::peer::ConnectionType;
use strand::{Config, Direction, Network, Node, NodeHandle, PeerState};

const WAIT: Duration = Duration::from_secs(30);

/// Short timers: a round every 50 ms, feelers only when a test wants them.
fn fast_timers() -> OutboundTimers {
    OutboundTimers {
        tick: Duration::from_millis(50),
        feeler_interval: Duration::from_secs(3600),
        next_seednode: Duration::from_secs(1),
        addr_fetch_timeout: Duration::from_secs(5),
        ..OutboundTimers::default()
    }
}

/// A regtest node in `dir` listening on `ip` (port chosen by the OS).
fn start(dir: &Path, ip: [u8; 4], tweak: impl FnOnce(&mut Config)) -> NodeHandle {
    let mut c = Config::new(Network::Regtest);
    c.datadir = dir.to_path_buf();
    c.listen = Some(SocketAddr::from((ip, 0)));
    c.outbound_timers = fast_timers();
    tweak(&mut c);
    Node::start(c).expect("node starts")
}

fn addr_of(h: &NodeHandle) -> SocketAddr {
    h.listen_addr().expect("listening")
}

/// Tells `node`'s address manager about `targets` (as if gossiped).
fn learn(node: &NodeHandle, targets: &[SocketAddr]) {
    let now = strand::unix_time() as u32;
    let msgs: Vec<AddrV2Message> = targets
        .iter()
        .map(|a| AddrV2Message {
            time: now,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            addr: addr_v2(a.ip()),
            port: a.port(),
        })
        .collect();
    let source = addr_v2([127, 99, 0, 1].into());
    let added = node.addrman().expect("running").add(&msgs, &source, 0);
    assert_eq!(added, targets.len(), "all new to the address manager");
}

/// `node`'s open outbound connections of type `ty`, by address.
fn outbound(node: &NodeHandle, ty: ConnectionType) -> BTreeSet<SocketAddr> {
    node.snapshot()
        .expect("snapshot")
        .peers
        .iter()
        .filter(|p| p.conn_type == ty)
        .map(|p| p.addr)
        .collect()
}

fn inbound_count(node: &NodeHandle) -> usize {
    node.snapshot()
        .expect("snapshot")
        .peers
        .iter()
        .filter(|p| p.direction == Direction::Inbound)
        .count()
}

/// Listening nodes with automatic connections off (the regtest default).
fn targets(first: u8, n: u8) -> (Vec<tempfile::TempDir>, Vec<NodeHandle>, Vec<SocketAddr>) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().expect("dir")).collect();
    let nodes: Vec<_> = dirs
        .iter()
        .zip(first..)
        .map(|(d, i)| start(d.path(), [127, i, 0, 1], |_| {}))
        .collect();
    let addrs = nodes.iter().map(addr_of).collect();
    (dirs, nodes, addrs)
}

#[test]
fn restarted_node_reconnects_from_peers_dat_without_seeds() {
    let (_dirs, _nodes, addrs) = targets(21, 3);
    let dir = tempfile::tempdir().expect("dir");
    let auto = |c: &mut Config| c.autoconnect = Some(true);
    let x = start(dir.path(), [127, 20, 0, 1], auto);
    learn(&x, &addrs);
    let all: BTreeSet<_> = addrs.iter().copied().collect();
    assert!(
        wait_until(WAIT, || outbound(&x, ConnectionType::OutboundFullRelay)
            == all),
        "first run: full-relay connections to all three, got {:?}",
        outbound(&x, ConnectionType::OutboundFullRelay)
    );
    x.shutdown();
    let peers_dat = dir.path().join("regtest").join("peers.dat");
    assert!(peers_dat.exists(), "peers.dat written at shutdown");

    // No seed, no --connect/--addnode: only what peers.dat remembers.
    let x = start(dir.path(), [127, 20, 0, 1], auto);
    let (new, tried) = x.addrman().expect("running").size_new_tried();
    assert_eq!((new, tried), (0, 3), "the three were moved to tried");
    assert!(
        wait_until(WAIT, || outbound(&x, ConnectionType::OutboundFullRelay)
            == all),
        "after restart: reconnected to all three, got {:?}",
        outbound(&x, ConnectionType::OutboundFullRelay)
    );
    x.shutdown();
}

#[test]
fn anchors_are_dialled_first_after_a_restart() {
    let (_dirs, _nodes, addrs) = targets(31, 4);
    let dir = tempfile::tempdir().expect("dir");
    // Block-relay-only connections only, so the two are the anchors.
    let blocks_only = |c: &mut Config| {
        c.autoconnect = Some(true);
        c.max_outbound_full_relay = 0;
    };
    let x = start(dir.path(), [127, 30, 0, 1], blocks_only);
    learn(&x, &addrs);
    let mut first = BTreeSet::new();
    assert!(
        wait_until(WAIT, || {
            first = outbound(&x, ConnectionType::BlockRelayOnly);
            first.len() == 2
        }),
        "two block-relay-only peers, got {first:?}"
    );
    assert!(outbound(&x, ConnectionType::OutboundFullRelay).is_empty());
    x.shutdown();
    let net_dir = dir.path().join("regtest");
    let text = std::fs::read_to_string(net_dir.join(ANCHORS_FILE)).expect("anchors.dat written");
    let saved: BTreeSet<SocketAddr> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(saved, first, "the block-relay-only peers are the anchors");

    // Forget every address: only the anchors can bring those peers back.
    std::fs::remove_file(net_dir.join("peers.dat")).expect("peers.dat existed");
    let x = start(dir.path(), [127, 30, 0, 1], blocks_only);
    let mut again = BTreeSet::new();
    assert!(
        wait_until(WAIT, || {
            again = outbound(&x, ConnectionType::BlockRelayOnly);
            again == first
        }),
        "anchors reconnected as block-relay-only: want {first:?}, got {again:?}"
    );
    assert!(
        !net_dir.join(ANCHORS_FILE).exists(),
        "anchors.dat is deleted when read"
    );
    x.shutdown();
}

#[test]
fn a_feeler_moves_a_new_address_to_tried_and_disconnects() {
    let (_dirs, nodes, addrs) = targets(41, 1);
    let dir = tempfile::tempdir().expect("dir");
    // No full-relay or block-relay-only slots: only feelers dial.
    let x = start(dir.path(), [127, 40, 0, 1], |c| {
        c.autoconnect = Some(true);
        c.max_outbound_full_relay = 0;
        c.max_outbound_block_relay = 0;
        c.outbound_timers.feeler_interval = Duration::from_millis(200);
    });
    learn(&x, &addrs);
    let am = x.addrman().expect("running");
    assert_eq!(am.size_new_tried(), (1, 0));
    assert!(
        wait_until(WAIT, || am.size_new_tried() == (0, 1)),
        "the feeler's handshake moved the address to tried: {:?}",
        am.size_new_tried()
    );
    // The feeler is closed once its handshake completed.
    assert!(
        wait_until(WAIT, || x.snapshot().unwrap().connections == 0
            && inbound_count(&nodes[0]) == 0),
        "feeler connection closed"
    );
    let snap = x.snapshot().unwrap();
    assert!(
        snap.peers
            .iter()
            .all(|p| p.conn_type == ConnectionType::Feeler),
        "nothing but feelers was opened: {:?}",
        snap.peers
    );
    x.shutdown();
}

#[test]
fn connect_disables_automatic_connections() {
    let (_dirs, nodes, addrs) = targets(51, 3);
    let dir = tempfile::tempdir().expect("dir");
    // First run: learn two of them and keep them in peers.dat.
    let x = start(dir.path(), [127, 50, 0, 1], |c| c.autoconnect = Some(true));
    learn(&x, &addrs[..2]);
    assert!(wait_until(WAIT, || outbound(
        &x,
        ConnectionType::OutboundFullRelay
    )
    .len()
        == 2));
    x.shutdown();
    assert!(wait_until(WAIT, || inbound_count(&nodes[0]) == 0
        && inbound_count(&nodes[1]) == 0));

    // Second run: --connect the third, with feelers due every 100 ms.
    let x = start(dir.path(), [127, 50, 0, 1], |c| {
        c.connect = vec![addrs[2].into()];
        c.outbound_timers.feeler_interval = Duration::from_millis(100);
    });
    assert_eq!(x.addrman().unwrap().size(), 2, "peers.dat was loaded");
    let manual = BTreeSet::from([addrs[2]]);
    assert!(wait_until(WAIT, || outbound(&x, ConnectionType::Manual) == manual));
    // Give the policy many rounds (50 ms each) to misbehave.
    std::thread::sleep(Duration::from_secs(2));
    let snap = x.snapshot().unwrap();
    assert_eq!(
        snap.connections, 1,
        "only the --connect peer: {:?}",
        snap.peers
    );
    assert_eq!(inbound_count(&nodes[0]), 0);
    assert_eq!(inbound_count(&nodes[1]), 0);
    assert_eq!(inbound_count(&nodes[2]), 1);
    x.shutdown();
}

#[test]
fn getaddednodeinfo_lists_added_nodes_with_cores_shape() {
    use serde_json::{json, Value};
    use strand::rpc::client::{call, ClientAuth, ClientError};
    let b = common::NodeProcess::start(&[]);
    let b_p2p = b.addr().to_string();
    let a = common::NodeProcess::start(&["--addnode", &b_p2p]);
    let (addr, auth) = (a.rpc_addr(), ClientAuth::Cookie(a.cookie()));
    let rpc = |method: &str, params: Vec<Value>| call(addr, &auth, method, params);
    let mut info = Value::Null;
    assert!(
        wait_until(WAIT, || {
            info = rpc("getaddednodeinfo", vec![]).expect("getaddednodeinfo");
            info[0]["connected"] == json!(true)
        }),
        "added node connected: {info}"
    );
    assert_eq!(info.as_array().map(Vec::len), Some(1));
    assert_eq!(info[0]["addednode"], json!(b_p2p));
    assert_eq!(info[0]["addresses"][0]["address"], json!(b_p2p));
    assert_eq!(info[0]["addresses"][0]["connected"], json!("outbound"));
    let one = rpc("getaddednodeinfo", vec![json!(b_p2p)]).expect("one node");
    assert_eq!(one, info);
    // An `addnode onetry` target is not listed (Core).
    rpc("addnode", vec![json!("127.0.0.1:1"), json!("onetry")]).expect("onetry");
    match rpc("getaddednodeinfo", vec![json!("127.0.0.1:1")]) {
        Err(ClientError::Rpc(e)) => {
            assert_eq!(e.code, -24);
            assert_eq!(e.message, "Error: Node has not been added.");
        }
        other => panic!("expected RPC error -24, got {other:?}"),
    }
}

#[test]
fn a_stale_tip_opens_an_extra_full_relay_peer_that_is_evicted_later() {
    let (_dirs, _nodes, addrs) = targets(71, 3);
    let dir = tempfile::tempdir().expect("dir");
    // One full-relay slot; the tip never moves, so it goes stale at once.
    let x = start(dir.path(), [127, 70, 0, 1], |c| {
        c.autoconnect = Some(true);
        c.max_outbound_full_relay = 1;
        c.max_outbound_block_relay = 0;
        let t = &mut c.outbound_timers;
        t.stale_tip_age = Duration::from_millis(300);
        t.stale_check_interval = Duration::from_millis(200);
        t.extra_peer_check_interval = Duration::from_millis(200);
        t.minimum_connect_time = Duration::from_millis(500);
    });
    learn(&x, &addrs);
    // Full-relay connections by peer id (a new connection, a new id).
    let full = || -> BTreeSet<u64> {
        x.snapshot()
            .expect("snapshot")
            .peers
            .iter()
            .filter(|p| {
                p.conn_type == ConnectionType::OutboundFullRelay && p.state != PeerState::Closing
            })
            .map(|p| p.id)
            .collect()
    };
    let mut first = BTreeSet::new();
    assert!(wait_until(WAIT, || {
        first = full();
        first.len() == 1
    }));
    // The tip stays stale: an extra peer is opened, evicted (the younger
    // of two that gave no block) and opened again, while the first stays.
    let mut extras = BTreeSet::new();
    let mut most = 0;
    let seen_two = wait_until(WAIT, || {
        let now = full();
        assert!(
            now.is_superset(&first),
            "the first full-relay peer was dropped: {now:?}"
        );
        most = most.max(now.len());
        extras.extend(now.difference(&first).copied());
        extras.len() >= 2
    });
    assert!(
        seen_two,
        "extra full-relay peers seen: {extras:?}, most at once {most}"
    );
    assert_eq!(most, 2, "never more than one extra peer");
    x.shutdown();
}
