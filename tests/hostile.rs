//! Hostile peers (issue 10): a peer that announces a block and withholds
//! it, pings under back-pressure, misbehaving peers discouraged, inbound
//! floods against outbound slots, address floods. Each test runs a node
//! against scripted fake peers on loopback and asserts what happened to the
//! hostile peer and to the honest ones.

mod common;

use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use common::*;

/// Answers pings and `getdata` for `block` until the node sends it the
/// block back as connected tip or `deadline` passes; returns whether the
/// block was served.
fn serve_block_until(
    p: &mut FakePeer,
    block: &bitcoin::Block,
    deadline: Instant,
) -> Result<bool, String> {
    p.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let hash = block.block_hash();
    while Instant::now() < deadline {
        match p.recv() {
            Ok(NetworkMessage::GetData(items)) => {
                let wanted = items.iter().any(
                    |i| matches!(i, Inventory::Block(h) | Inventory::WitnessBlock(h) if *h == hash),
                );
                if wanted {
                    p.send(NetworkMessage::Block(block.clone()))
                        .map_err(|e| e.to_string())?;
                    return Ok(true);
                }
            }
            Ok(NetworkMessage::Ping(n)) => {
                p.send(NetworkMessage::Pong(n)).map_err(|e| e.to_string())?
            }
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(format!("honest peer read: {e}")),
        }
    }
    Ok(false)
}

#[test]
fn withheld_block_is_fetched_from_another_peer_and_staller_dropped() {
    let chain = test_chain(0x0057_4111, 3, 0);
    let blocks = chain.blocks();
    let node = node_with_blocks(&blocks[1..3], |c| {
        c.block_download_timeout = Duration::from_secs(1);
    });
    let new = &blocks[3];

    // The staller announces block 3 and never delivers it.
    let mut staller = FakePeer::connect(node.addr).unwrap();
    staller.handshake(2, SERVES).unwrap();
    staller
        .send(NetworkMessage::Headers(vec![new.header]))
        .unwrap();
    staller
        .recv_until("getdata for the announced block", |m| {
            matches!(m, NetworkMessage::GetData(items)
                if items.iter().any(|i| matches!(i, Inventory::WitnessBlock(h) if *h == new.block_hash())))
        })
        .unwrap();
    let asked = Instant::now();

    // An honest peer announces the same block while it is in flight.
    let mut honest = FakePeer::connect(node.addr).unwrap();
    honest.handshake(2, SERVES).unwrap();
    honest
        .send(NetworkMessage::Headers(vec![new.header]))
        .unwrap();
    let served = serve_block_until(&mut honest, new, asked + Duration::from_secs(15)).unwrap();
    assert!(served, "the node never asked the honest peer for the block");
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "re-requested before the deadline"
    );
    assert!(wait_tip(&node, new.block_hash(), Duration::from_secs(10)));
    assert!(
        staller.closed_within(Duration::from_secs(5)),
        "staller kept"
    );
    assert!(wait_until(Duration::from_secs(5), || node
        .snapshot()
        .peers
        .len()
        == 1));
    let s = node.snapshot();
    assert_eq!(s.counters.block_timeouts, 1);
    honest.ping(7).unwrap();
}

#[test]
fn busy_sync_manager_does_not_time_out_a_flooding_peer() {
    let node = TestNode::start(|c| c.ping_interval = Duration::from_millis(300));
    let mut busy = FakePeer::connect(node.addr).unwrap();
    busy.handshake(0, SERVES).unwrap();
    busy.ping(1).unwrap();

    // The sync manager is busy for 3 s (ten ping intervals) while this
    // peer fills its inbox (256 messages) and more, so the peer's reader
    // blocks and cannot read the pongs the peer sends.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let handle = &node.handle;
    let pings = std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            handle
                .with_chain(move |_| {
                    let _ = started_tx.send(());
                    std::thread::sleep(Duration::from_secs(3));
                })
                .is_ok()
        });
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        for _ in 0..400 {
            busy.send(NetworkMessage::Inv(vec![])).unwrap();
        }
        let until = Instant::now() + Duration::from_millis(3500);
        let mut pings = 0;
        busy.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while Instant::now() < until {
            match busy.recv() {
                Ok(NetworkMessage::Ping(n)) => {
                    busy.send(NetworkMessage::Pong(n)).unwrap();
                    pings += 1;
                }
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(e) => panic!("peer dropped while the sync manager was busy: {e}"),
            }
        }
        assert!(worker.join().unwrap());
        pings
    });
    assert!(pings >= 1, "no ping sent at all");
    busy.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    busy.ping(2).unwrap();
    let s = node.snapshot();
    assert_eq!(s.peers.len(), 1, "the busy peer is still connected");
}

#[test]
fn invalid_block_sender_is_discouraged_and_evicted_first() {
    let chain = test_chain(0x00d1_5c0a, 1, 0);
    let mut bad = chain.blocks()[1].clone();
    bad.txdata[0].output[0].value += bitcoin::Amount::from_sat(1);
    bad.header.merkle_root = bad.compute_merkle_root().unwrap();
    assert!(strand::mining::mine(&mut bad, 1_000_000));
    let node = TestNode::start(|c| {
        c.max_peers = 13; // 3 inbound slots (10 kept for outbound)
        c.discourage_local = true;
    });
    let evil: std::net::Ipv4Addr = "127.0.0.2".parse().unwrap();

    let mut attacker = connect_from(evil, node.addr).expect("connect from a loopback address");
    attacker.handshake(0, SERVES).unwrap();
    attacker.ping(1).unwrap();
    attacker.send(NetworkMessage::Block(bad)).unwrap();
    assert!(
        attacker.closed_within(Duration::from_secs(10)),
        "not dropped"
    );
    assert!(node.wait_quiet(Duration::from_secs(5)).peers.is_empty());

    // Two of three slots taken: the discouraged address is refused ...
    let mut honest1 = FakePeer::connect(node.addr).unwrap();
    honest1.handshake(0, SERVES).unwrap();
    let mut honest2 = FakePeer::connect(node.addr).unwrap();
    honest2.handshake(0, SERVES).unwrap();
    let mut again = connect_from(evil, node.addr).expect("connect from a loopback address");
    assert!(
        again.handshake(0, SERVES).is_err() || again.closed_within(Duration::from_secs(3)),
        "discouraged address accepted with slots scarce"
    );
    honest1.ping(2).unwrap();
    honest2.ping(3).unwrap();

    // ... accepted when slots are free, and evicted first when full.
    drop(honest2);
    assert!(wait_until(Duration::from_secs(5), || node
        .snapshot()
        .connections
        == 1));
    let mut tolerated = connect_from(evil, node.addr).expect("connect from a loopback address");
    tolerated.handshake(0, SERVES).unwrap();
    tolerated.ping(4).unwrap();
    let mut honest3 = FakePeer::connect(node.addr).unwrap();
    honest3.handshake(0, SERVES).unwrap();
    let mut honest4 = FakePeer::connect(node.addr).unwrap();
    honest4.handshake(0, SERVES).unwrap();
    honest4.ping(5).unwrap();
    assert!(
        tolerated.closed_within(Duration::from_secs(5)),
        "discouraged peer not evicted for an honest one"
    );
    honest1.ping(6).unwrap();
    honest3.ping(7).unwrap();
}
