//! Tests of the compact block index through [`ChainState`]: what the
//! store keeps of it across reopening (positions, statuses, invalid
//! reasons, `nChainTx`, the active chain rebuilt from the tip) and the
//! repair of a stored index with a gap. Run on the test harness's threads.

use bitcoin::Block;

use super::network::Network;
use super::state::{ChainOptions, ChainState};
use crate::store::{BlockStatus, Store, WriteBatch};
use crate::testdata::ChainBuilder;

fn open(dir: &std::path::Path) -> ChainState {
    ChainState::open(
        dir,
        Network::Regtest,
        ChainOptions {
            script_threads: 0,
            ..Default::default()
        },
    )
    .expect("open chain state")
}

fn chain(n: u32) -> Vec<Block> {
    let mut b = ChainBuilder::new(12);
    for _ in 0..n {
        b.next_block(2);
    }
    b.blocks().to_vec()
}

#[test]
fn index_survives_reopen_with_chain_tx_and_reasons() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocks = chain(30);
    let connected = 20usize;
    let expect_tx: u64 = blocks
        .iter()
        .take(connected + 1)
        .map(|b| b.txdata.len() as u64)
        .sum();
    let tip;
    {
        let mut c = open(dir.path());
        let headers: Vec<_> = blocks.iter().skip(1).map(|b| b.header).collect();
        c.process_headers(&headers).expect("headers");
        for b in blocks.iter().skip(1).take(connected) {
            c.accept_block(b.clone()).expect("block");
        }
        assert_eq!(c.height(), connected as u32);
        tip = c.tip();
        assert_eq!(c.chain_tx(&tip), expect_tx);
        // A header-only block marked invalid: its reason is kept.
        c.invalidate_block(blocks[25].block_hash())
            .expect("invalidate");
        assert_eq!(c.best_header_height(), 24);
        c.flush().expect("flush");
    }
    let c = open(dir.path());
    assert_eq!(c.index_len(), 31);
    assert_eq!(c.tip(), tip);
    assert_eq!(c.height(), connected as u32);
    assert_eq!(c.active_hash(7), Some(blocks[7].block_hash()));
    assert_eq!(c.chain_tx(&tip), expect_tx);
    assert_eq!(c.chain_tx(&blocks[0].block_hash()), 1);
    assert_eq!(c.best_header_height(), 24);
    let bad = c.entry(&blocks[25].block_hash()).expect("indexed");
    assert!(bad.status.contains(BlockStatus::FAILED));
    assert!(bad
        .invalid_reason
        .as_deref()
        .is_some_and(|r| r.contains("invalidated")));
    let child = c.entry(&blocks[26].block_hash()).expect("indexed");
    assert!(child.status.contains(BlockStatus::FAILED_CHILD));
    assert_eq!(child.header, blocks[26].header);
    assert_eq!(
        c.entry(&blocks[26].block_hash()).map(|e| e.height),
        Some(26)
    );
}

#[test]
fn a_gap_in_the_stored_index_is_repaired_at_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocks = chain(12);
    let headers: Vec<_> = blocks.iter().skip(1).map(|b| b.header).collect();
    {
        let mut c = open(dir.path());
        c.process_headers(&headers).expect("headers");
        c.flush().expect("flush");
    }
    {
        // As after a crash between commits: position 5 lost, 6.. kept.
        let store =
            Store::open(dir.path(), bitcoin::p2p::Magic::REGTEST.to_bytes()).expect("store");
        let mut b = WriteBatch::new();
        b.delete_index_record(5);
        store.commit(&b).expect("commit");
        assert_eq!(store.load_index_records().expect("load").records.len(), 12);
    }
    {
        let c = open(dir.path());
        // Headers 5.. lost their parent: dropped, the rest renumbered.
        assert_eq!(c.index_len(), 5);
        assert_eq!(c.best_header_height(), 4);
    }
    {
        // The store was rewritten to match: dense positions.
        let store =
            Store::open(dir.path(), bitcoin::p2p::Magic::REGTEST.to_bytes()).expect("store");
        let loaded = store.load_index_records().expect("load");
        let positions: Vec<u32> = loaded.records.iter().map(|(p, _)| *p).collect();
        assert_eq!(positions, vec![0, 1, 2, 3, 4]);
    }
    let mut c = open(dir.path());
    c.process_headers(&headers).expect("headers again");
    assert_eq!(c.best_header_height(), 12);
    assert_eq!(c.best_header(), blocks[12].block_hash());
}
