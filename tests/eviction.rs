//! Inbound eviction through a real node (Core's `AttemptToEvictConnection`,
//! `peer::eviction`): a node whose inbound slots are all taken accepts one
//! more inbound peer by evicting the youngest peer of the largest network
//! group, and manual (`--addnode`) connections are never touched.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use common::*;
use strand::peer::Direction;

/// `--maxpeers 40`: 30 inbound slots (10 kept for outbound connections).
const MAX_PEERS: usize = 40;
const INBOUND_SLOTS: usize = 30;

fn inbound(src: Ipv4Addr, node: std::net::SocketAddr) -> FakePeer {
    let mut p = connect_from(src, node).unwrap_or_else(|e| panic!("connect from {src}: {e}"));
    p.handshake(0, ServiceFlags::NONE)
        .unwrap_or_else(|e| panic!("handshake from {src}: {e}"));
    // A round trip: the node has registered and announced this peer
    // before the next one connects, so connection times are ordered.
    p.ping(u64::from(u32::from(src))).unwrap();
    p
}

#[test]
fn full_node_evicts_the_youngest_of_the_largest_group_and_keeps_manual_peers() {
    let manual = TestNode::start(|_| {});
    let node = TestNode::start(|c| {
        c.max_peers = MAX_PEERS;
        c.addnode = vec![manual.addr.into()];
    });
    assert!(
        wait_until(Duration::from_secs(10), || node
            .snapshot()
            .peers
            .iter()
            .any(
                |p| p.direction == Direction::Outbound && p.addr == manual.addr
            )),
        "the --addnode peer did not connect"
    );

    // 24 peers in 24 network groups (regtest: one per 127.N /16), then the
    // 6 youngest all in group 127.100.
    let mut singles = Vec::new();
    for n in 1..=24u8 {
        singles.push(inbound(Ipv4Addr::new(127, n, 0, 1), node.addr));
    }
    let mut crowd = Vec::new();
    for n in 1..=6u8 {
        crowd.push(inbound(Ipv4Addr::new(127, 100, 0, n), node.addr));
    }
    assert_eq!(node.snapshot().connections, INBOUND_SLOTS + 1);

    // One more inbound peer: Core's rules protect 20 peers by fixed
    // criteria (4 by keyed group, then the oldest by ping, transaction and
    // block times, none of which these peers have), then half of the rest
    // by uptime. Whatever groups the secret key favours, at least two
    // 127.100 peers are among the 5 youngest left, so that group is the
    // largest and its youngest member, 127.100.0.6, goes.
    let mut newcomer = inbound(Ipv4Addr::new(127, 200, 0, 1), node.addr);
    let mut evicted = crowd.pop().unwrap();
    assert!(
        evicted.closed_within(Duration::from_secs(10)),
        "127.100.0.6 was not evicted"
    );
    for (i, p) in singles.iter_mut().chain(crowd.iter_mut()).enumerate() {
        p.ping(1_000 + i as u64)
            .unwrap_or_else(|e| panic!("inbound peer {i} was dropped: {e}"));
    }
    newcomer.ping(7).unwrap();
    // The evicted peer's threads finish: 30 inbound + the manual one.
    let mut snap = node.snapshot();
    assert!(
        wait_until(Duration::from_secs(10), || {
            snap = node.snapshot();
            snap.connections == INBOUND_SLOTS + 1
                && !snap
                    .peers
                    .iter()
                    .any(|p| p.addr.ip() == Ipv4Addr::new(127, 100, 0, 6))
        }),
        "{} connections; evicted peer still known: {:?}",
        snap.connections,
        snap.peers.iter().map(|p| p.addr).collect::<Vec<_>>()
    );
    assert!(
        snap.peers
            .iter()
            .any(|p| p.direction == Direction::Outbound && p.addr == manual.addr),
        "the manual peer was evicted"
    );
}
