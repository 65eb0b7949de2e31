//! `--blocksonly` (Core's `-blocksonly`, `RejectIncomingTxs`): the node
//! announces `relay=false` in its `version` and disconnects a peer that
//! sends a transaction or announces one anyway; without the option the
//! same peer stays connected.

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::ServiceFlags;
use common::{rand_nonce, version_message, FakePeer, TestNode};

/// Handshakes with `node` as an inbound peer; returns the peer and the
/// `relay` flag of the node's `version`.
fn connect(node: &TestNode) -> (FakePeer, bool) {
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.send(version_message(0, ServiceFlags::NETWORK, rand_nonce()))
        .unwrap();
    let relay = match p.recv().unwrap() {
        NetworkMessage::Version(v) => v.relay,
        other => panic!("expected version, got {}", other.command()),
    };
    p.recv_until("verack", |m| *m == NetworkMessage::Verack)
        .unwrap();
    p.send(NetworkMessage::Verack).unwrap();
    p.ping(1).unwrap();
    (p, relay)
}

fn a_transaction() -> bitcoin::Transaction {
    let b = common::test_chain(5, 101, 0);
    common::spend(&b, 0)
}

#[test]
fn blocksonly_announces_no_relay_and_drops_transaction_senders() {
    let tx = a_transaction();
    let inv = Inventory::WTx(tx.compute_wtxid());
    for blocksonly in [false, true] {
        let node = TestNode::start(|c| c.blocksonly = blocksonly);
        let (mut p, relay) = connect(&node);
        assert_eq!(relay, !blocksonly, "version relay flag");
        p.send(NetworkMessage::Tx(tx.clone())).unwrap();
        if blocksonly {
            assert!(
                p.closed_within(Duration::from_secs(10)),
                "tx: not disconnected"
            );
        } else {
            // Messages are handled in order: a pong proves the peer stayed.
            p.ping(2).expect("tx: still connected");
        }
        let (mut p, _) = connect(&node);
        p.send(NetworkMessage::Inv(vec![inv])).unwrap();
        if blocksonly {
            assert!(
                p.closed_within(Duration::from_secs(10)),
                "tx inv: not disconnected"
            );
        } else {
            // Messages are handled in order: a pong proves the peer stayed.
            p.ping(2).expect("tx inv: still connected");
        }
        node.handle.shutdown();
    }
}
