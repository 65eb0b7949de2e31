//! Reorganisations and following the tip with several strand nodes in one
//! process: B switches from A's branch to C's longer one; B keeps following
//! after its sync peer leaves; a stalling sync peer is replaced. Bitcoin
//! Core's kernel (`common::oracle`) is given the same blocks in the same
//! order and must end on the same tips.

mod common;

use std::time::Duration;

use common::oracle::{Oracle, Verdict};
use common::*;

#[test]
fn follows_a_longer_competing_branch() {
    let prefix = test_chain(5, 110, 6);
    let mut branch_a = prefix.fork_at(110).unwrap();
    for _ in 0..5 {
        branch_a.next_block(6);
    }
    let mut branch_c = prefix.fork_at(110).unwrap();
    for _ in 0..8 {
        branch_c.next_block(6);
    }
    assert_ne!(
        branch_a.block(111).unwrap().block_hash(),
        branch_c.block(111).unwrap().block_hash()
    );

    let a = node_with_blocks(&branch_a.blocks()[1..], |_| {});
    let c = node_with_blocks(&prefix.blocks()[1..], |_| {});
    let b = TestNode::start(|cfg| cfg.connect = vec![a.addr.into(), c.addr.into()]);
    assert!(
        wait_tip(&b, branch_a.tip().block_hash(), Duration::from_secs(60)),
        "B did not follow A: {:?}",
        b.snapshot()
    );

    // Core, given A's branch and then C's blocks, follows the same tips.
    let mut oracle = Oracle::with_chain(branch_a.blocks());
    assert_eq!(
        oracle.tip(),
        b.snapshot().tip,
        "Core and B differ on A's branch"
    );

    let digest_on_a = b.handle.chain_info().unwrap().utxo_digest;
    assert_eq!(digest_on_a, a.handle.chain_info().unwrap().utxo_digest);

    // C mines its longer branch; B hears of it and reorganises.
    for blk in &branch_c.blocks()[111..] {
        c.handle.submit_block(blk.clone()).unwrap();
        let v = oracle.submit(blk).verdict;
        assert!(
            matches!(v, Verdict::Stored | Verdict::Connected),
            "Core rejects C's block: {v:?}"
        );
    }
    assert_eq!(
        oracle.tip(),
        branch_c.tip().block_hash(),
        "Core did not reorganise"
    );
    assert!(
        wait_tip(&b, branch_c.tip().block_hash(), Duration::from_secs(60)),
        "B did not switch to C's branch: {:?}",
        b.snapshot()
    );
    assert_eq!(b.snapshot().best_height, 118);
    assert_eq!(oracle.height(), 118);

    // A fresh node that only ever saw C's branch has the same UTXO set.
    let d = TestNode::start(|cfg| cfg.connect = vec![c.addr.into()]);
    assert!(wait_tip(
        &d,
        branch_c.tip().block_hash(),
        Duration::from_secs(60)
    ));
    let info_b = b.handle.chain_info().unwrap();
    let info_d = d.handle.chain_info().unwrap();
    assert_eq!(info_b.tip, info_d.tip);
    assert_eq!(info_b.utxo_digest, info_d.utxo_digest);
    // The reorganisation really changed the set.
    assert_ne!(digest_on_a, info_b.utxo_digest);
    // B relayed C's branch to A, which reorganised too.
    assert!(wait_tip(
        &a,
        branch_c.tip().block_hash(),
        Duration::from_secs(30)
    ));
}

#[test]
fn follows_announcements_after_sync_peer_leaves() {
    let chain = test_chain(6, 110, 4);
    let a = node_with_blocks(&chain.blocks()[1..], |_| {});
    let c = node_with_blocks(&chain.blocks()[1..], |_| {});
    let b = TestNode::start(|cfg| {
        cfg.connect = vec![a.addr.into(), c.addr.into()];
        cfg.retry_base = Duration::from_secs(3600);
    });
    assert!(wait_tip(
        &b,
        chain.tip().block_hash(),
        Duration::from_secs(60)
    ));
    assert!(wait_until(Duration::from_secs(10), || b
        .snapshot()
        .peers
        .len()
        == 2));
    let before = b.snapshot();
    let sync_peer = before.sync_peer.expect("B has a sync peer");
    let sync_addr = before
        .peers
        .iter()
        .find(|p| p.id == sync_peer)
        .expect("sync peer in the table")
        .addr;
    // Stop whichever node B syncs from; the other one mines.
    let (gone, miner) = if sync_addr == a.addr { (a, c) } else { (c, a) };
    gone.handle.shutdown();
    assert!(wait_until(Duration::from_secs(10), || {
        let s = b.snapshot();
        s.peers.len() == 1 && s.sync_peer.is_none()
    }));
    assert!(!b.snapshot().initial_block_download);

    let mut next = chain.fork_at(110).unwrap();
    let block = next.next_block(3);
    let mut oracle = Oracle::with_chain(chain.blocks());
    assert_eq!(oracle.submit(&block).verdict, Verdict::Connected);
    miner.handle.submit_block(block.clone()).unwrap();
    assert!(
        wait_tip(&b, block.block_hash(), Duration::from_secs(20)),
        "B did not follow the remaining peer's announcement: {:?}",
        b.snapshot()
    );
    let after = b.snapshot();
    assert_eq!(after.tip, oracle.tip(), "B and Core differ");
    assert_eq!(
        after.handler.new_peer_sent, before.handler.new_peer_sent,
        "no new connection"
    );
    assert_eq!(after.peers.len(), 1);
}

#[test]
fn stalling_sync_peer_is_replaced_and_sync_completes() {
    let chain = test_chain(8, 150, 3);
    let b = TestNode::start(|cfg| cfg.stall_timeout = Duration::from_secs(2));
    let staller = ChainServer::start(b.addr, chain.blocks().to_vec(), Serve::HeadersOnly);
    assert!(wait_until(Duration::from_secs(10), || {
        let s = b.snapshot();
        s.sync_peer.is_some() && s.best_header_height == 150
    }));
    let staller_id = b.snapshot().sync_peer.unwrap();
    let good = ChainServer::start(b.addr, chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_tip(&b, chain.tip().block_hash(), Duration::from_secs(60)),
        "sync did not complete: {:?}",
        b.snapshot()
    );
    let s = b.snapshot();
    assert_eq!(
        s.tip,
        Oracle::with_chain(chain.blocks()).tip(),
        "B and Core differ"
    );
    assert!(s.counters.stalls >= 1);
    assert!(
        !s.peers.iter().any(|p| p.id == staller_id),
        "staller still connected"
    );
    assert_eq!(
        staller
            .blocks_served
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        good.blocks_served
            .load(std::sync::atomic::Ordering::Relaxed),
        150
    );
    staller.finish().unwrap();
    good.finish().unwrap();
}
