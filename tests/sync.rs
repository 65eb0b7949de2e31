//! Chain sync over P2P: from a fake peer serving a chain, between two real
//! `strand` processes, through reorganisations, stalls and restarts. The
//! chains served are also given to Bitcoin Core's kernel
//! (`common::oracle`), which must accept them and end on the same tip.

mod common;

use std::time::Duration;

use common::oracle::Oracle;
use common::*;

#[test]
fn syncs_a_chain_from_a_serving_peer() {
    let chain = test_chain(1, 150, 10);
    let node = TestNode::start(|_| {});
    let server = ChainServer::start(node.addr, chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_tip(&node, chain.tip().block_hash(), Duration::from_secs(60)),
        "did not reach the tip: {:?}",
        node.snapshot()
    );
    let s = node.snapshot();
    assert_eq!(
        s.tip,
        Oracle::with_chain(chain.blocks()).tip(),
        "strand and Core differ"
    );
    assert_eq!(s.best_height, 150);
    assert!(!s.initial_block_download);
    assert!(s.recent_rejects.is_empty(), "{:?}", s.recent_rejects);
    assert_eq!(
        server
            .blocks_served
            .load(std::sync::atomic::Ordering::Relaxed),
        150
    );
    server.finish().unwrap();
}

#[test]
fn two_strand_processes_reach_the_same_tip_and_utxo_set() {
    let chain = test_chain(2, 500, 12);
    let tip = chain.tip().block_hash();
    let mut a = NodeProcess::start(&[]);
    let server = ChainServer::start(a.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(a.addr())
            == Some(500)),
        "node A did not reach 500: {:?}",
        a.log_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    server.finish().unwrap();

    let connect = a.addr().to_string();
    let mut b = NodeProcess::start(&["--connect", &connect]);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(b.addr())
            == Some(500)),
        "node B did not sync from A: {:?}",
        b.log_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(a.terminate(Duration::from_secs(20)).unwrap().success());
    assert!(b.terminate(Duration::from_secs(20)).unwrap().success());

    let (tip_a, digest_a) = chain_of(a.dir.path()).utxo_digest().unwrap();
    let (tip_b, digest_b) = chain_of(b.dir.path()).utxo_digest().unwrap();
    assert_eq!(tip_a, tip);
    assert_eq!(tip_b, tip);
    assert_eq!(
        Oracle::with_chain(chain.blocks()).tip(),
        tip,
        "Core's tip differs"
    );
    assert_eq!(digest_a, digest_b);
}

#[test]
fn serves_getblocks_with_inv_and_continues_after_500() {
    use bitcoin::p2p::message::NetworkMessage;
    use bitcoin::p2p::message_blockdata::{GetBlocksMessage, Inventory};
    let chain = test_chain(12, 600, 0);
    let node = TestNode::start(|_| {});
    let server = ChainServer::start(node.addr, chain.blocks().to_vec(), Serve::Everything);
    assert!(wait_tip(
        &node,
        chain.tip().block_hash(),
        Duration::from_secs(60)
    ));
    server.finish().unwrap();
    assert_eq!(
        Oracle::with_chain(chain.blocks()).tip(),
        node.snapshot().tip,
        "strand and Core differ"
    );
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.handshake(0, SERVES).unwrap();
    p.send(NetworkMessage::GetBlocks(GetBlocksMessage::new(
        vec![strand::Network::Regtest.genesis_hash()],
        bitcoin::hashes::Hash::all_zeros(),
    )))
    .unwrap();
    let inv = match p
        .recv_until(
            "inv",
            |m| matches!(m, NetworkMessage::Inv(v) if v.len() > 1),
        )
        .unwrap()
    {
        NetworkMessage::Inv(v) => v,
        _ => unreachable!(),
    };
    assert_eq!(inv.len(), 500);
    assert_eq!(inv[0], Inventory::Block(chain.blocks()[1].block_hash()));
    assert_eq!(inv[499], Inventory::Block(chain.blocks()[500].block_hash()));
    // Fetching the last one triggers an inv of the tip (Core's hashContinue).
    p.send(NetworkMessage::GetData(vec![inv[499]])).unwrap();
    p.recv_until("block 500", |m| matches!(m, NetworkMessage::Block(b) if b.block_hash() == chain.blocks()[500].block_hash()))
        .unwrap();
    p.recv_until("inv of the tip", |m| {
        *m == NetworkMessage::Inv(vec![Inventory::Block(chain.tip().block_hash())])
    })
    .unwrap();
}
