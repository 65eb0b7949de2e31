//! assumevalid (Core's `-assumevalid`): a regtest chain with a block whose
//! signature is invalid, buried under 2,020 blocks (more than two weeks of
//! regtest work), is accepted only when the assumed-valid block is its
//! descendant on the best header chain and the best header has the minimum
//! chain work; `--assumevalid=0`, a hash not in the headers, or too little
//! work make the node check the scripts and reject it. Driven through the
//! chain state (headers first, then blocks) and through a node syncing from
//! a fake peer.

mod common;

use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::{Block, BlockHash};
use common::{wait_until, ChainServer, Serve, TestNode};
use strand::chain::assumevalid::AssumeValid;
use strand::chain::pow::block_proof;
use strand::chain::state::{ChainOptions, ChainState, RejectError};
use strand::testdata::{corrupt_signature, ChainBuilder};
use strand::Network;

/// Height of the block with the bad signature.
const BAD: u32 = 102;
/// Blocks on top of it: more than the 2,016 regtest blocks of two weeks.
const BURIED: u32 = 2_020;
const SCRIPT_FAILURE: &str = "mandatory-script-verify-flag-failed";

/// Genesis, 101 coinbase-only blocks, the bad block, `BURIED` more.
fn chain() -> Vec<Block> {
    let mut b = ChainBuilder::new(21);
    for _ in 1..BAD {
        b.next_block(0);
    }
    let mut tx = common::spend(&b, 0);
    corrupt_signature(&mut tx, 0).unwrap();
    let bad = b.block_with_txs(vec![tx]).unwrap();
    b.push_block(bad).unwrap();
    for _ in 0..BURIED {
        b.next_block(0);
    }
    b.blocks().to_vec()
}

fn total_work(blocks: &[Block]) -> Work {
    blocks
        .iter()
        .map(|b| block_proof(b.header.bits))
        .fold(Work::from_be_bytes([0; 32]), |a, w| a + w)
}

fn plus_one(w: Work) -> Work {
    let mut one = [0u8; 32];
    one[31] = 1;
    w + Work::from_be_bytes(one)
}

/// Feeds the headers, then the blocks, to a fresh chain state; returns its
/// height and the first rejection reason.
fn sync(blocks: &[Block], assume_valid: AssumeValid, min_work: Work) -> (u32, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = ChainState::open(
        dir.path(),
        Network::Regtest,
        ChainOptions {
            script_threads: 1,
            assume_valid,
            minimum_chain_work: Some(min_work),
            ..Default::default()
        },
    )
    .unwrap();
    let headers: Vec<_> = blocks[1..].iter().map(|b| b.header).collect();
    for chunk in headers.chunks(2_000) {
        chain.process_headers(chunk).expect("headers accepted");
    }
    assert_eq!(chain.best_header_height(), BAD + BURIED);
    let mut rejected = None;
    for b in &blocks[1..] {
        match chain.accept_block(b.clone()) {
            Ok(_) => {}
            Err(RejectError::Invalid(e)) => {
                rejected = Some(e.to_string());
                break;
            }
            Err(e) => panic!("chain error: {e}"),
        }
    }
    (chain.height(), rejected)
}

fn assert_rejected((height, rejected): (u32, Option<String>), case: &str) {
    assert_eq!(height, BAD - 1, "{case}: tip stays below the bad block");
    let reason = rejected.unwrap_or_default();
    assert!(reason.starts_with(SCRIPT_FAILURE), "{case}: {reason}");
}

#[test]
fn scripts_are_skipped_only_under_an_assumed_valid_block_with_enough_work() {
    let blocks = chain();
    let tip = blocks.last().unwrap().block_hash();
    let work = total_work(&blocks);

    assert_eq!(
        sync(&blocks, AssumeValid::Block(tip), work),
        (BAD + BURIED, None),
        "assumevalid at the tip, minimum chain work met: accepted"
    );
    assert_rejected(sync(&blocks, AssumeValid::Off, work), "assumevalid=0");
    assert_rejected(
        sync(&blocks, AssumeValid::Block(BlockHash::all_zeros()), work),
        "assumevalid hash not in the headers",
    );
    assert_rejected(
        sync(&blocks, AssumeValid::Block(tip), plus_one(work)),
        "best header below the minimum chain work",
    );
    // The assumed-valid block is the bad block's parent: the bad block is
    // above it and is checked.
    let parent = blocks[BAD as usize - 1].block_hash();
    assert_rejected(
        sync(&blocks, AssumeValid::Block(parent), work),
        "block above the assumed-valid height",
    );
    // Assumed valid just above the bad block, which is still buried deeply
    // enough under the best header: skipped.
    let child = blocks[BAD as usize + 1].block_hash();
    assert_eq!(
        sync(&blocks, AssumeValid::Block(child), work),
        (BAD + BURIED, None)
    );
}

/// The node's `--assumevalid` reaches the chain state: syncing from a fake
/// peer, the node with assumevalid at the tip reaches it; with
/// `--assumevalid=0` it rejects the bad block and stays below it.
#[test]
fn node_option_reaches_the_chain_state() {
    let blocks = chain();
    let tip = blocks.last().unwrap().block_hash();
    let bad = blocks[BAD as usize].block_hash();
    let work = total_work(&blocks);
    for (assume_valid, accepted) in [(AssumeValid::Block(tip), true), (AssumeValid::Off, false)] {
        let node = TestNode::start(|c| {
            c.assume_valid = assume_valid;
            c.minimum_chain_work = Some(work);
        });
        let server = ChainServer::start(node.addr, blocks.clone(), Serve::Everything);
        let done = wait_until(Duration::from_secs(120), || {
            let s = node.snapshot();
            s.tip == tip || s.recent_rejects.iter().any(|(h, _)| *h == bad)
        });
        assert!(done, "{assume_valid:?}: neither synced nor rejected");
        let s = node.snapshot();
        if accepted {
            assert_eq!(s.tip, tip);
        } else {
            assert_eq!(s.tip, blocks[BAD as usize - 1].block_hash());
            let reason = s.recent_rejects.iter().find(|(h, _)| *h == bad).unwrap();
            assert!(reason.1.starts_with(SCRIPT_FAILURE), "{}", reason.1);
        }
        drop(server);
        node.handle.shutdown();
    }
}
