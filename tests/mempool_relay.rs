//! Transactions over P2P: relay along a line of nodes, orphan resolution
//! (child first), orphan eviction when the sending peer leaves.

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::{Amount, OutPoint, Transaction, TxOut};
use common::*;
use strand::testdata::ChainBuilder;

/// `parent`'s first output spent by a new transaction (signed by a fork
/// of the builder that has seen `parent` confirmed; the signature does not
/// depend on the block).
fn child_of(b: &ChainBuilder, parent: &Transaction) -> Transaction {
    let mut fork = b.fork_at(b.height()).unwrap();
    let blk = fork.block_with_txs(vec![parent.clone()]).unwrap();
    fork.push_block(blk).unwrap();
    let op = OutPoint::new(parent.compute_txid(), 0);
    fork.sign_spend(
        &[op],
        vec![TxOut {
            value: parent.output[0].value - Amount::from_sat(10_000),
            script_pubkey: parent.output[0].script_pubkey.clone(),
        }],
    )
    .unwrap()
}

fn in_mempool(node: &TestNode, tx: &Transaction) -> bool {
    node.handle
        .mempool()
        .unwrap()
        .lock()
        .contains(&tx.compute_txid())
}

fn orphan_count(node: &TestNode) -> usize {
    node.handle.mempool().unwrap().lock().orphans().len()
}

#[test]
fn transaction_relays_along_a_line_of_nodes() {
    let chain = test_chain(31, 110, 3);
    let a = node_with_blocks(&chain.blocks()[1..], |_| {});
    let b = TestNode::start(|c| c.connect = vec![a.addr.into()]);
    let c = TestNode::start(|cfg| cfg.connect = vec![b.addr.into()]);
    for n in [&b, &c] {
        assert!(wait_tip(
            n,
            chain.tip().block_hash(),
            Duration::from_secs(60)
        ));
    }
    let tx = spend(&chain, 0);
    let txid = a.handle.send_transaction(tx.clone()).unwrap();
    assert_eq!(txid, tx.compute_txid());
    assert!(
        wait_until(Duration::from_secs(20), || in_mempool(&c, &tx)),
        "transaction did not reach C via B"
    );
    assert!(in_mempool(&b, &tx));

    // A double spend is refused with Core's reason and RPC code.
    let mut conflict = strand::testdata::ChainBuilder::double_spend(&chain, &tx).unwrap();
    conflict.output[0].value = tx.output[0].value; // same fee: no replacement
    match a.handle.send_transaction(conflict) {
        Err(strand::SendTxError::Rejected(e)) => {
            assert_eq!(e.rpc_code(), -26, "{e}");
        }
        other => panic!("double spend accepted: {other:?}"),
    }

    // A block mined on A with the transaction empties every mempool.
    let script = chain.tip().txdata[0].output[0].script_pubkey.clone();
    let hashes = a.handle.generate(1, script, vec![tx.clone()]).unwrap();
    for n in [&a, &b, &c] {
        assert!(wait_tip(n, hashes[0], Duration::from_secs(20)));
        assert!(wait_until(Duration::from_secs(5), || !in_mempool(n, &tx)));
    }
}

#[test]
fn orphans_resolve_child_first_and_leave_with_their_peer() {
    let chain = test_chain(32, 110, 3);
    let node = node_with_blocks(&chain.blocks()[1..], |_| {});
    assert!(wait_until(Duration::from_secs(10), || !node
        .snapshot()
        .initial_block_download));

    let parent = spend(&chain, 0);
    let child = child_of(&chain, &parent);
    let grandchild = child_of(&chain, &child);

    let mut p1 = FakePeer::connect(node.addr).unwrap();
    p1.handshake(0, SERVES).unwrap();
    let mut p2 = FakePeer::connect(node.addr).unwrap();
    p2.handshake(0, SERVES).unwrap();

    // Child first: both wait as orphans.
    p1.send(NetworkMessage::Tx(grandchild.clone())).unwrap();
    p1.send(NetworkMessage::Tx(child.clone())).unwrap();
    p1.ping(1).unwrap();
    assert!(wait_until(Duration::from_secs(5), || orphan_count(&node) == 2));
    assert!(!in_mempool(&node, &child));

    // The parent arrives: all three are accepted.
    p2.send(NetworkMessage::Tx(parent.clone())).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        in_mempool(&node, &parent) && in_mempool(&node, &child) && in_mempool(&node, &grandchild)
    }));
    assert_eq!(orphan_count(&node), 0);

    // Orphans of a peer that leaves are evicted; another peer's stay.
    let other = spend(&chain, 1);
    let orphan1 = child_of(&chain, &other);
    let orphan2 = child_of(&chain, &spend(&chain, 2));
    p1.send(NetworkMessage::Tx(orphan1.clone())).unwrap();
    p2.send(NetworkMessage::Tx(orphan2.clone())).unwrap();
    p1.ping(2).unwrap();
    p2.ping(3).unwrap();
    assert!(wait_until(Duration::from_secs(5), || orphan_count(&node) == 2));
    drop(p1);
    assert!(wait_until(Duration::from_secs(5), || orphan_count(&node) == 1));
    let pool = node.handle.mempool().unwrap();
    assert!(pool.lock().orphans().contains(&orphan2.compute_txid()));
    assert!(!pool.lock().orphans().contains(&orphan1.compute_txid()));
    p2.ping(4).unwrap();
}
