//! Header spam (issue 10): headers pre-sync against a node with
//! `minimum_chain_work` set (Core's `-minimumchainwork`; regtest's own is
//! zero), unconnecting-header floods and invalid headers, through fake
//! peers on loopback.

mod common;

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::BlockHash;
use common::*;
use strand::chain::headers_sync::claimed_chain_work;
use strand::chain::pow;
use strand::chain::ChainParams;

fn genesis() -> Header {
    bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header
}

fn genesis_work() -> Work {
    pow::block_proof(genesis().bits)
}

/// `n` regtest headers on `parent` with valid proof of work, one second
/// apart; `tag` (the merkle root) tells chains apart.
fn headers_on(parent: &Header, n: usize, tag: u8) -> Vec<Header> {
    strand::testdata::headers_on(&ChainParams::regtest(), parent, n, tag)
}

/// Reads until the node's next `getheaders`; returns its locator.
fn next_getheaders(p: &mut FakePeer) -> Vec<BlockHash> {
    match p.recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_))) {
        Ok(NetworkMessage::GetHeaders(g)) => g.locator_hashes,
        other => panic!("no getheaders: {other:?}"),
    }
}

/// How many of `hashes` the node's block index holds, and its chain tips.
fn stored(node: &TestNode, hashes: Vec<BlockHash>) -> (usize, usize) {
    node.handle
        .with_chain(move |c| {
            let held = hashes.iter().filter(|h| c.entry(h).is_some()).count();
            (held, c.chain_tips().len())
        })
        .expect("chain query")
}

fn sync_state(node: &TestNode) -> strand::sync::SyncSnapshot {
    node.handle.sync_snapshot().expect("sync snapshot")
}

/// What a headers pre-sync may hold in this test at most: the state
/// itself plus a few words of commitments and the fork point's locator.
/// Storing the headers instead would take 80 bytes each, and more in the
/// index.
const PRESYNC_BYTES_BOUND: usize = 4_096;

#[test]
fn a_long_low_work_chain_is_checked_but_never_stored() {
    let chain = headers_on(&genesis(), 6_500, 1);
    // 10,000 regtest blocks of work: the peer's 6,500 fall short.
    let per_block = pow::block_proof(ChainParams::regtest().pow_limit_bits());
    let threshold = (0..10_000).fold(genesis_work(), |w, _| w + per_block);
    let node = TestNode::start(|c| c.minimum_chain_work = Some(threshold));
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.handshake(10_000, SERVES).unwrap();
    assert_eq!(
        next_getheaders(&mut p).first(),
        Some(&genesis().block_hash())
    );

    // A header on a parent the node never saw, as a block announcement
    // in the middle of the pre-sync would be.
    let stray = headers_on(&headers_on(&genesis(), 1, 9)[0], 1, 9)[0];
    let mut sent = 0;
    for chunk in chain.chunks(2000) {
        p.send(NetworkMessage::Headers(chunk.to_vec())).unwrap();
        sent += chunk.len();
        if chunk.len() < 2000 {
            break;
        }
        if sent == 2000 {
            // It is handled on its own; the pre-sync goes on.
            p.send(NetworkMessage::Headers(vec![stray])).unwrap();
        }
        // Asked to continue from the last header, which is not stored.
        let locator = next_getheaders(&mut p);
        assert_eq!(
            locator.first(),
            chunk.last().map(|h| h.block_hash()).as_ref()
        );
        let s = sync_state(&node);
        assert_eq!(s.best_header_height, 0, "nothing stored after {sent}");
        let peer = s.peers.first().expect("peer known");
        assert_eq!(peer.presynced_headers, sent as i64);
        assert!(
            peer.headers_sync_bytes > 0 && peer.headers_sync_bytes <= PRESYNC_BYTES_BOUND,
            "{} bytes after {sent} headers",
            peer.headers_sync_bytes
        );
    }
    // The short last message ends the chain below the threshold.
    assert!(wait_until(Duration::from_secs(10), || sync_state(&node)
        .counters
        .low_work_chains
        == 1));
    let s = sync_state(&node);
    assert_eq!(s.counters.presync_headers, 6_500);
    assert_eq!(s.counters.unconnecting_headers, 1);
    assert_eq!(s.counters.presync_aborted, 0);
    assert_eq!(s.best_header_height, 0);
    let peer = s.peers.first().expect("peer still known");
    assert_eq!((peer.presynced_headers, peer.headers_sync_bytes), (-1, 0));
    assert!(!peer.candidate, "a low-work peer is no sync candidate");
    assert_eq!(s.sync_peer, None);
    let hashes = chain.iter().map(|h| h.block_hash()).collect();
    assert_eq!(stored(&node, hashes), (0, 1), "(headers held, chain tips)");
    // Serving a short chain is no misbehaviour: still connected.
    p.ping(1).unwrap();
}

#[test]
fn an_honest_chain_above_the_threshold_is_presynced_then_synced() {
    let b = test_chain(0x9e5_0001, 2_600, 0);
    let blocks = b.blocks().to_vec();
    let headers: Vec<Header> = blocks[1..].iter().map(|b| b.header).collect();
    // The threshold is crossed at height 2,400: the first 2,000 headers
    // alone are below it, so the node must pre-sync before storing any.
    let threshold = claimed_chain_work(genesis_work(), &headers[..2_400]);
    let tip = blocks[2_600].block_hash();
    let node = TestNode::start(|c| c.minimum_chain_work = Some(threshold));
    let server = ChainServer::start(node.addr, blocks, Serve::Everything);
    assert!(wait_tip(&node, tip, Duration::from_secs(120)), "not synced");
    let s = sync_state(&node);
    assert_eq!(s.best_header_height, 2_600);
    assert_eq!(s.best_height, 2_600);
    // Every header went through pre-sync once before being stored.
    assert_eq!(s.counters.presync_headers, 2_600);
    assert_eq!(s.counters.presync_aborted, 0);
    assert_eq!(s.counters.low_work_chains, 0);
    assert!(s.peers.iter().all(|p| p.headers_sync_bytes == 0));
    server.finish().unwrap();
}

#[test]
fn a_peer_serving_another_chain_in_redownload_is_dropped_and_nothing_stored() {
    let a = headers_on(&genesis(), 8_000, 3);
    let b = headers_on(&genesis(), 8_000, 4);
    let threshold = claimed_chain_work(genesis_work(), &a);
    let node = TestNode::start(|c| {
        c.minimum_chain_work = Some(threshold);
        c.max_peers = 13; // 3 inbound slots (10 kept for outbound)
        c.discourage_local = true;
    });
    let switcher: std::net::Ipv4Addr = "127.0.0.4".parse().unwrap();
    let mut p = connect_from(switcher, node.addr).expect("connect from a loopback address");
    p.handshake(8_000, SERVES).unwrap();
    next_getheaders(&mut p);
    let mut locator = Vec::new();
    for chunk in a.chunks(2000) {
        p.send(NetworkMessage::Headers(chunk.to_vec())).unwrap();
        locator = next_getheaders(&mut p);
    }
    // Chain A has the work: the node asks again from the fork point.
    assert_eq!(locator.first(), Some(&genesis().block_hash()));
    assert_eq!(sync_state(&node).best_header_height, 0);

    // The peer now serves chain B. About 25 one-bit commitments are
    // checked before the 7,017-header redownload buffer (Core's regtest
    // number) could release anything: B passes them all with probability
    // 2^-25.
    for chunk in b.chunks(2000) {
        if p.send(NetworkMessage::Headers(chunk.to_vec())).is_err() {
            break;
        }
        if p.recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
            .is_err()
        {
            break;
        }
    }
    assert!(p.closed_within(Duration::from_secs(10)), "not dropped");
    assert!(wait_until(Duration::from_secs(10), || sync_state(&node)
        .counters
        .presync_aborted
        == 1));
    let s = sync_state(&node);
    assert_eq!(s.best_header_height, 0);
    let hashes = a.iter().chain(&b).map(|h| h.block_hash()).collect();
    assert_eq!(stored(&node, hashes), (0, 1), "(headers held, chain tips)");

    // Discouraged: with two of three inbound slots taken it is refused.
    assert!(node.wait_quiet(Duration::from_secs(5)).peers.is_empty());
    let mut honest1 = FakePeer::connect(node.addr).unwrap();
    honest1.handshake(0, SERVES).unwrap();
    let mut honest2 = FakePeer::connect(node.addr).unwrap();
    honest2.handshake(0, SERVES).unwrap();
    let mut again = connect_from(switcher, node.addr).expect("connect from a loopback address");
    assert!(
        again.handshake(0, SERVES).is_err() || again.closed_within(Duration::from_secs(3)),
        "discouraged address accepted with slots scarce"
    );
    honest1.ping(1).unwrap();
    honest2.ping(2).unwrap();
}

#[test]
fn an_unconnecting_headers_flood_costs_one_getheaders_and_honest_peers_are_followed() {
    let chain = test_chain(0x9e5_0002, 1, 0);
    let block = chain.blocks()[1].clone();
    let node = TestNode::start(|_| {});
    let mut flooder = FakePeer::connect(node.addr).unwrap();
    flooder.handshake(0, SERVES).unwrap();
    // 200 messages of one header each, every one on a parent the node
    // never saw.
    let unknown = headers_on(&genesis(), 1, 5)[0];
    let flood = headers_on(&unknown, 200, 6);
    for h in &flood {
        flooder.send(NetworkMessage::Headers(vec![*h])).unwrap();
    }
    assert!(wait_until(Duration::from_secs(20), || sync_state(&node)
        .counters
        .unconnecting_headers
        == 200));
    // Everything the node sent the flooder so far, up to a pong.
    flooder.send(NetworkMessage::Ping(2)).unwrap();
    let mut getheaders = 0;
    for _ in 0..1000 {
        match flooder.recv() {
            Ok(NetworkMessage::GetHeaders(_)) => getheaders += 1,
            Ok(NetworkMessage::Pong(2)) => break,
            Ok(_) => {}
            Err(e) => panic!("flooder dropped: {e}"),
        }
    }
    // One at connection (no sync peer yet), at most one for the whole
    // flood: Core's HEADERS_RESPONSE_TIME keeps the rest back.
    assert!((1..=2).contains(&getheaders), "{getheaders} getheaders");
    let s = sync_state(&node);
    assert_eq!(s.best_header_height, 0);
    assert_eq!(s.peers.len(), 1, "Core v31 does not punish them");

    // An honest peer announcing a block by its header is followed.
    let mut honest = FakePeer::connect(node.addr).unwrap();
    honest.handshake(0, SERVES).unwrap();
    honest.ping(3).unwrap();
    honest
        .send(NetworkMessage::Headers(vec![block.header]))
        .unwrap();
    let want = block.block_hash();
    honest
        .recv_until("getdata for the block", |m| {
            matches!(m, NetworkMessage::GetData(items)
                if items.iter().any(|i| matches!(i, Inventory::WitnessBlock(h) | Inventory::Block(h) if *h == want)))
        })
        .unwrap();
    honest.send(NetworkMessage::Block(block)).unwrap();
    assert!(wait_tip(&node, want, Duration::from_secs(10)));
    flooder.ping(4).unwrap();
}

#[test]
fn invalid_headers_get_the_sender_dropped_and_discouraged() {
    let node = TestNode::start(|c| {
        c.max_peers = 13; // 3 inbound slots (10 kept for outbound)
        c.discourage_local = true;
    });
    let params = ChainParams::regtest();
    // A hash above its own target.
    let mut bad_pow = headers_on(&genesis(), 1, 7)[0];
    while pow::check_proof_of_work(&bad_pow, &params).is_ok() {
        bad_pow.nonce = bad_pow.nonce.wrapping_add(1);
    }
    // Valid work for bits regtest never uses here: bad-diffbits.
    let mut bad_bits = headers_on(&genesis(), 1, 8)[0];
    bad_bits.bits = CompactTarget::from_consensus(0x207f_fffe);
    while pow::check_proof_of_work(&bad_bits, &params).is_err() {
        bad_bits.nonce = bad_bits.nonce.wrapping_add(1);
    }
    let evil: [std::net::Ipv4Addr; 2] =
        ["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    for (ip, header) in evil.iter().zip([bad_pow, bad_bits]) {
        let mut attacker = connect_from(*ip, node.addr).expect("connect from a loopback address");
        attacker.handshake(0, SERVES).unwrap();
        attacker.ping(1).unwrap();
        attacker
            .send(NetworkMessage::Headers(vec![header]))
            .unwrap();
        assert!(
            attacker.closed_within(Duration::from_secs(10)),
            "{ip} not dropped"
        );
    }
    let s = node.wait_quiet(Duration::from_secs(5));
    assert!(s.peers.is_empty());
    assert_eq!(s.best_header_height, 0);
    let reasons: Vec<&str> = s.recent_rejects.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("invalid proof of work")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("bad-diffbits")),
        "{reasons:?}"
    );

    // Two of three inbound slots taken: both addresses are discouraged, so
    // neither gets the last one.
    let mut honest1 = FakePeer::connect(node.addr).unwrap();
    honest1.handshake(0, SERVES).unwrap();
    let mut honest2 = FakePeer::connect(node.addr).unwrap();
    honest2.handshake(0, SERVES).unwrap();
    for ip in evil {
        let mut again = connect_from(ip, node.addr).expect("connect from a loopback address");
        assert!(
            again.handshake(0, SERVES).is_err() || again.closed_within(Duration::from_secs(3)),
            "discouraged {ip} accepted with slots scarce"
        );
    }
    honest1.ping(2).unwrap();
    honest2.ping(3).unwrap();
}
