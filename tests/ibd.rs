//! Initial block download as Core's latch (issue 11): it ends when the tip
//! is recent and has the minimum chain work, a restarted synced node is not
//! in it (and relays transactions at once), and a peer announcing a higher
//! start height does not put a synced node back into it.

mod common;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::Transaction;
use common::*;
use strand::{Config, Network, Node};

fn config_in(dir: &std::path::Path) -> Config {
    let mut config = Config::new(Network::Regtest);
    config.datadir = dir.to_path_buf();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config
}

/// Reads until an `inv` announcing `tx` arrives.
fn wait_tx_inv(p: &mut FakePeer, tx: &Transaction) -> Result<(), String> {
    let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
    p.recv_until("inv of the transaction", |m| {
        matches!(m, NetworkMessage::Inv(items) if items.iter().any(|i| match i {
            Inventory::Transaction(t) | Inventory::WitnessTransaction(t) => *t == txid,
            Inventory::WTx(w) => *w == wtxid,
            _ => false,
        }))
    })
    .map(|_| ())
}

#[test]
fn restarted_synced_node_is_not_in_ibd_and_relays_a_transaction_at_once() {
    let chain = test_chain(0x1bd0_0001, 110, 2);
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::start(config_in(dir.path())).expect("node starts");
        // A fresh node starts in initial block download (old genesis tip).
        assert!(node.snapshot().unwrap().initial_block_download);
        for b in &chain.blocks()[1..] {
            node.submit_block(b.clone()).expect("submit block");
        }
        let s = node.snapshot().unwrap();
        assert_eq!(s.best_height, 110);
        assert!(!s.initial_block_download);
        node.shutdown();
    }

    let node = Node::start(config_in(dir.path())).expect("node restarts");
    let s = node.snapshot().unwrap();
    assert_eq!(s.best_height, 110);
    assert!(!s.initial_block_download, "restarted synced node in IBD");
    let addr = node.listen_addr().unwrap();

    let mut listener = FakePeer::connect(addr).unwrap();
    listener.handshake(110, SERVES).unwrap();
    let mut sender = FakePeer::connect(addr).unwrap();
    sender.handshake(110, SERVES).unwrap();
    listener.ping(1).unwrap();
    sender.ping(2).unwrap();
    let tx = spend(&chain, 0);
    sender.send(NetworkMessage::Tx(tx.clone())).unwrap();
    wait_tx_inv(&mut listener, &tx).unwrap();
    assert!(node.mempool().unwrap().lock().contains(&tx.compute_txid()));
    node.shutdown();
}

#[test]
fn synced_node_stays_out_of_ibd_when_a_peer_with_a_higher_start_height_connects() {
    let mut chain = test_chain(0x1bd0_0002, 110, 2);
    let node = node_with_blocks(&chain.blocks()[1..], |_| {});
    assert!(!node.snapshot().initial_block_download);

    // A peer claiming to be far ahead becomes the sync peer...
    let mut ahead = FakePeer::connect(node.addr).unwrap();
    ahead.handshake(10_000, SERVES).unwrap();
    ahead
        .recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
        .unwrap();
    let s = node.snapshot();
    let ahead_id = s.peers.first().map(|p| p.id);
    assert_eq!(s.sync_peer, ahead_id);
    // ...but the node does not go back into initial block download.
    assert!(!s.initial_block_download);

    // While it stays silent, another peer's new block is still followed.
    let next = chain.next_block(0);
    let mut miner = FakePeer::connect(node.addr).unwrap();
    miner.handshake(110, SERVES).unwrap();
    miner
        .send(NetworkMessage::Inv(vec![Inventory::Block(
            next.block_hash(),
        )]))
        .unwrap();
    miner
        .recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
        .unwrap();
    miner
        .send(NetworkMessage::Headers(vec![next.header]))
        .unwrap();
    miner
        .recv_until("getdata", |m| matches!(m, NetworkMessage::GetData(_)))
        .unwrap();
    miner.send(NetworkMessage::Block(next.clone())).unwrap();
    assert!(wait_tip(
        &node,
        next.block_hash(),
        std::time::Duration::from_secs(10)
    ));
    assert!(!node.snapshot().initial_block_download);

    // The silent peer answers with nothing new; still not in IBD.
    ahead.send(NetworkMessage::Headers(vec![])).unwrap();
    ahead.ping(1).unwrap();
    assert!(!node.snapshot().initial_block_download);

    // Transactions are still accepted and relayed.
    let mut sender = FakePeer::connect(node.addr).unwrap();
    sender.handshake(110, SERVES).unwrap();
    sender.ping(2).unwrap();
    let tx = spend(&chain, 0);
    sender.send(NetworkMessage::Tx(tx.clone())).unwrap();
    wait_tx_inv(&mut ahead, &tx).unwrap();
    assert!(!node.snapshot().initial_block_download);
}
