//! Serving blocks and the mempool to peers (issue 10): `getdata` gets only
//! validated blocks, `MSG_BLOCK` gets them without witnesses and
//! `MSG_WITNESS_BLOCK` with them, and `mempool` is refused as Core refuses
//! it without bloom filters. Each test runs an in-process node against a
//! fake peer on loopback.

mod common;

use std::time::Duration;

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::Block;
use common::*;

fn has_witness(b: &Block) -> bool {
    b.txdata
        .iter()
        .any(|t| t.input.iter().any(|i| !i.witness.is_empty()))
}

/// Sends `getdata` for `item`, returns the block or `notfound` answer.
fn request(p: &mut FakePeer, item: Inventory) -> NetworkMessage {
    p.send(NetworkMessage::GetData(vec![item])).unwrap();
    p.recv_until("block or notfound", |m| {
        matches!(m, NetworkMessage::Block(_) | NetworkMessage::NotFound(_))
    })
    .unwrap()
}

#[test]
fn msg_block_is_served_without_witness_and_side_branches_only_when_validated() {
    let chain = test_chain(41, 110, 3);
    let node = node_with_blocks(chain.blocks(), |_| {});
    let witnessed = chain
        .blocks()
        .iter()
        .rev()
        .find(|b| has_witness(b))
        .expect("the test chain has segwit spends")
        .clone();
    let hash = witnessed.block_hash();
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.handshake(0, SERVES).unwrap();

    // MSG_BLOCK: same header, no witness, a valid merkle root, and exactly
    // the bytes of the block with its witnesses removed.
    let NetworkMessage::Block(stripped) = request(&mut p, Inventory::Block(hash)) else {
        panic!("active block not served to MSG_BLOCK");
    };
    assert_eq!(stripped.block_hash(), hash);
    assert!(!has_witness(&stripped));
    assert!(stripped.check_merkle_root());
    let mut expected = witnessed.clone();
    for tx in &mut expected.txdata {
        for i in &mut tx.input {
            i.witness.clear();
        }
    }
    assert_eq!(serialize(&stripped), serialize(&expected));
    assert!(serialize(&stripped).len() < serialize(&witnessed).len());

    // MSG_WITNESS_BLOCK: the block as mined.
    let NetworkMessage::Block(full) = request(&mut p, Inventory::WitnessBlock(hash)) else {
        panic!("active block not served to MSG_WITNESS_BLOCK");
    };
    assert_eq!(serialize(&full), serialize(&witnessed));

    // A side-branch block with less work than the tip: stored (checked
    // context-free, kept for later) but never connected, so its scripts
    // were never checked. It is answered with notfound.
    let mut fork = chain.fork_at(108).unwrap();
    let side = fork.next_block(2);
    let side_hash = side.block_hash();
    node.handle.submit_block(side).expect("side block accepted");
    assert_eq!(node.snapshot().tip, chain.tip().block_hash());
    for item in [
        Inventory::Block(side_hash),
        Inventory::WitnessBlock(side_hash),
    ] {
        match request(&mut p, item) {
            NetworkMessage::NotFound(list) => assert_eq!(list, vec![item]),
            other => panic!("side-branch block served: {}", other.command()),
        }
    }
    // An unknown block too.
    let unknown = Inventory::Block(bitcoin::BlockHash::from_byte_array([7; 32]));
    assert!(matches!(
        request(&mut p, unknown),
        NetworkMessage::NotFound(_)
    ));

    // The side branch overtakes: its blocks, now connected, are served.
    let more = fork.next_block(0);
    let more2 = fork.next_block(0);
    node.handle.submit_block(more).unwrap();
    node.handle.submit_block(more2.clone()).unwrap();
    assert!(wait_tip(&node, more2.block_hash(), Duration::from_secs(10)));
    match request(&mut p, Inventory::Block(side_hash)) {
        NetworkMessage::Block(b) => assert_eq!(b.block_hash(), side_hash),
        other => panic!("connected block not served: {}", other.command()),
    }
    // The block reorged out was validated when it was active: still served
    // (Core's BlockRequestAllowed, within a month of the best header).
    let old_tip = chain.tip().block_hash();
    match request(&mut p, Inventory::Block(old_tip)) {
        NetworkMessage::Block(b) => assert_eq!(b.block_hash(), old_tip),
        other => panic!("validated stale block not served: {}", other.command()),
    }
    drop(p);
    node.handle.shutdown();
}

#[test]
fn mempool_request_disconnects_like_core_without_bloom() {
    let node = TestNode::start(|_| {});
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.handshake(0, SERVES).unwrap();
    p.ping(1).unwrap();
    p.send(NetworkMessage::MemPool).unwrap();
    assert!(
        p.closed_within(Duration::from_secs(10)),
        "mempool request answered"
    );
    // Disconnected, not discouraged: the same address connects again.
    let mut again = FakePeer::connect(node.addr).unwrap();
    again.handshake(0, SERVES).unwrap();
    again.ping(2).unwrap();
    drop(again);
    node.handle.shutdown();
}
