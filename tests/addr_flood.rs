//! Address floods (issue 10): a peer sending `addr` messages as fast as it
//! can gets Core's budget (one address, then 0.1 per second) into the
//! address manager, the rest is dropped, and the node keeps answering.

mod common;

use std::time::{Duration, Instant};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use common::*;

#[test]
fn addr_flood_is_rate_limited_and_node_stays_responsive() {
    let node = TestNode::start(|_| {});
    let mut flooder = FakePeer::connect(node.addr).unwrap();
    flooder.handshake(0, SERVES).unwrap();
    let start = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    for m in 0..10u32 {
        let addrs: Vec<(u32, Address)> = (0..1_000u32)
            .map(|i| {
                let n = m * 1_000 + i;
                let sa = std::net::SocketAddr::from((
                    [11, (n >> 16) as u8, (n >> 8) as u8, n as u8],
                    8333,
                ));
                (now, Address::new(&sa, SERVES))
            })
            .collect();
        flooder.send(NetworkMessage::Addr(addrs)).unwrap();
    }
    // The flood was read (the pong comes after it) and the flooder is
    // still connected: over-budget addresses are dropped, not punished.
    flooder.ping(1).unwrap();
    let elapsed = start.elapsed().as_secs_f64();

    let mut asker = FakePeer::connect(node.addr).unwrap();
    asker.handshake(0, SERVES).unwrap();
    asker.ping(2).unwrap();
    // Budget: the starting token plus 0.1 per second of the flood.
    let budget = 1 + (elapsed * 0.1).ceil() as usize;
    let got = node.handle.addrman().unwrap().size();
    assert!(
        (1..=budget).contains(&got),
        "{got} addresses kept from a 10,000-address flood (budget {budget})"
    );

    // Still responsive: both peers get pongs, a new peer completes the
    // handshake, and the node's state is intact.
    flooder.ping(3).unwrap();
    let mut late = FakePeer::connect(node.addr).unwrap();
    late.handshake(0, SERVES).unwrap();
    late.ping(4).unwrap();
    assert_eq!(node.snapshot().connections, 3);
    drop((flooder, asker, late));
    let s = node.wait_quiet(Duration::from_secs(10));
    assert_eq!(s.connections, 0);
    node.handle.shutdown();
}
