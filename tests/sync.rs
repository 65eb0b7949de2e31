//! Chain sync over P2P: from a fake peer serving a chain, between two real
//! `strand` processes, through reorganisations, stalls and restarts.

mod common;

use std::time::Duration;

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
    let chain = test_chain(2, 300, 12);
    let tip = chain.tip().block_hash();
    let mut a = NodeProcess::start(&[]);
    let server = ChainServer::start(a.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(a.addr())
            == Some(300)),
        "node A did not reach 300: {:?}",
        a.log_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    server.finish().unwrap();

    let connect = a.addr().to_string();
    let mut b = NodeProcess::start(&["--connect", &connect]);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(b.addr())
            == Some(300)),
        "node B did not sync from A: {:?}",
        b.log_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(a.terminate(Duration::from_secs(20)).unwrap().success());
    assert!(b.terminate(Duration::from_secs(20)).unwrap().success());

    let (tip_a, digest_a) = chain_of(a.dir.path()).utxo_digest().unwrap();
    let (tip_b, digest_b) = chain_of(b.dir.path()).utxo_digest().unwrap();
    assert_eq!(tip_a, tip);
    assert_eq!(tip_b, tip);
    assert_eq!(digest_a, digest_b);
}
