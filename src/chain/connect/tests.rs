//! Tests of the connect pipeline (`chain/connect.rs`) through
//! [`ChainState`]: blocks accepted newest first so that, when the oldest
//! arrives, `activate_best_chain` connects them all in one call, each
//! prepared on its parent's staged view while the parent's scripts run.
//! Each case runs with the scripts on the calling thread and on two
//! workers. Run on the test harness's threads.

use std::sync::Arc;

use bitcoin::{Amount, Block, OutPoint, ScriptBuf, TxOut};

use crate::chain::error::ValidationError;
use crate::chain::network::Network;
use crate::chain::state::{ChainOptions, ChainState, RejectError};
use crate::store::BlockStatus;
use crate::testdata::{corrupt_signature, ChainBuilder};

fn open(dir: &std::path::Path, script_threads: usize) -> ChainState {
    ChainState::open(
        dir,
        Network::Regtest,
        ChainOptions {
            script_threads,
            ..Default::default()
        },
    )
    .expect("open chain state")
}

/// The output script of `op`, an output of the builder's chain.
fn script_of(b: &ChainBuilder, op: &OutPoint) -> ScriptBuf {
    b.blocks()
        .iter()
        .flat_map(|blk| &blk.txdata)
        .find(|tx| tx.compute_txid() == op.txid)
        .and_then(|tx| tx.output.get(op.vout as usize))
        .map(|o| o.script_pubkey.clone())
        .expect("output of the chain")
}

/// Pushes onto `b` a block with one transaction spending `op` (worth
/// `value`) to a single output of the same script, 1,000 sat of fee;
/// `corrupt` spoils its signature. Returns the new output.
fn push_spend(
    b: &mut ChainBuilder,
    op: OutPoint,
    value: Amount,
    corrupt: bool,
) -> (OutPoint, Amount) {
    let script = script_of(b, &op);
    let out = value - Amount::from_sat(1_000);
    let mut tx = b
        .sign_spend(
            &[op],
            vec![TxOut {
                value: out,
                script_pubkey: script,
            }],
        )
        .expect("sign");
    if corrupt {
        corrupt_signature(&mut tx, 0).expect("corrupt");
    }
    let txid = tx.compute_txid();
    let block = b.block_with_txs(vec![tx]).expect("block");
    b.push_block(block).expect("push");
    (OutPoint::new(txid, 0), out)
}

/// A chain of `base` ordinary blocks, then `n` blocks each spending the
/// output the block before created (the first spends an older output);
/// block `base + 1 + bad` gets a corrupted signature when `bad` is given.
fn chain(base: u32, n: usize, bad: Option<usize>) -> (Vec<Block>, Vec<OutPoint>) {
    let (mut b, mut op, mut value) = mature(base);
    let mut created = Vec::new();
    for i in 0..n {
        (op, value) = push_spend(&mut b, op, value, Some(i) == bad);
        created.push(op);
    }
    (b.blocks().to_vec(), created)
}

/// [`feed`], which must fail with a validation error: that error.
fn feed_invalid(c: &mut ChainState, blocks: &[Block], upto: usize) -> ValidationError {
    match feed(c, blocks, upto) {
        Err(RejectError::Invalid(e)) => e,
        Err(err) => panic!("not a validation error: {err}"),
        Ok(()) => panic!("the blocks were accepted"),
    }
}

/// A builder with `base` blocks of two transactions, and its first
/// spendable output.
fn mature(base: u32) -> (ChainBuilder, OutPoint, Amount) {
    let mut b = ChainBuilder::new(31);
    for _ in 0..base {
        b.next_block(2);
    }
    let (op, value) = b.spendable_outputs()[0];
    (b, op, value)
}

/// Headers first, blocks `1..=upto` in order, then `rest` newest first.
fn feed(c: &mut ChainState, blocks: &[Block], upto: usize) -> Result<(), RejectError> {
    let headers: Vec<_> = blocks.iter().skip(1).map(|b| b.header).collect();
    c.process_headers(&headers).expect("headers");
    for b in &blocks[1..=upto] {
        c.accept_block(b.clone()).expect("in-order block");
    }
    let mut last = Ok(());
    for b in blocks[upto + 1..].iter().rev() {
        last = c.accept_block(b.clone()).map(|_| ());
    }
    last
}

#[test]
fn staged_views_stack_blocks_spending_their_parents_outputs() {
    const BASE: u32 = 102;
    let (blocks, created) = chain(BASE, 4, None);
    let tip = blocks.len() - 1;
    let reference = {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), 0);
        feed(&mut c, &blocks, tip).expect("in order");
        assert_eq!(c.height() as usize, tip);
        c.utxo_digest().expect("digest")
    };
    for threads in [0, 2] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), threads);
        feed(&mut c, &blocks, BASE as usize).expect("pipelined");
        assert_eq!(c.height() as usize, tip, "threads={threads}");
        assert_eq!(c.tip(), blocks[tip].block_hash());
        assert_eq!(c.pending_usage(), (0, 0));
        // Each block's output was spent by the next; the last one's stays.
        for op in &created[..created.len() - 1] {
            assert_eq!(c.coin(op).expect("coin"), None, "{op}");
        }
        let last = created.last().expect("created");
        assert!(c.coin(last).expect("coin").is_some());
        assert_eq!(c.utxo_digest().expect("digest"), reference);
    }
}

#[test]
fn invalid_block_discards_the_prepared_child() {
    const BASE: u32 = 102;
    // Block BASE+2 (N) has a bad signature; N+1 spends the output N
    // created, valid on top of N; N+2 on top of that.
    let (blocks, _) = chain(BASE, 4, Some(1));
    let n = BASE as usize + 2;
    let reference = {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), 0);
        feed(&mut c, &blocks[..n], n - 1).expect("up to N-1");
        assert_eq!(c.height() as usize, n - 1);
        c.utxo_digest().expect("digest")
    };
    for threads in [0, 2] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), threads);
        // N-1 in order, then N+2, N+1 and N: N's scripts run while N+1 is
        // prepared on N's view.
        let e = feed_invalid(&mut c, &blocks, n - 1);
        assert_eq!(
            e.reason(),
            "mandatory-script-verify-flag-failed (script evaluation failed)",
            "threads={threads}"
        );
        assert_eq!((e.tx_index(), e.input_index()), (Some(1), Some(0)));
        assert_eq!(c.height() as usize, n - 1);
        assert_eq!(c.tip(), blocks[n - 1].block_hash());
        let bad = c.entry(&blocks[n].block_hash()).expect("N indexed");
        assert!(bad.status.contains(BlockStatus::FAILED));
        for child in &blocks[n + 1..] {
            let entry = c.entry(&child.block_hash()).expect("child indexed");
            assert!(entry.status.contains(BlockStatus::FAILED_CHILD));
            assert!(!entry.status.contains(BlockStatus::VALID_SCRIPTS));
            assert!(!c.is_active(&child.block_hash()));
        }
        assert_eq!(c.pending_usage(), (0, 0));
        assert_eq!(c.utxo_digest().expect("digest"), reference);
    }
}

#[test]
fn prepare_on_a_staged_view_then_finish_in_order() {
    const BASE: u32 = 102;
    let (blocks, created) = chain(BASE, 3, None);
    let n = BASE as usize + 1;
    for threads in [0, 2] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), threads);
        feed(&mut c, &blocks[..n], n - 1).expect("up to N-1");
        let headers: Vec<_> = blocks.iter().skip(1).map(|b| b.header).collect();
        c.process_headers(&headers).expect("headers");
        let block = |i: usize| (Arc::new(blocks[i].clone()), blocks[i].block_hash());
        let (b0, h0) = block(n);
        let (b1, h1) = block(n + 1);
        let (b2, h2) = block(n + 2);
        // N+1 spends N's output: missing without N's view, found through it.
        let e = c
            .prepare_block(Arc::clone(&b1), h1, None)
            .err()
            .expect("N+1 alone");
        assert_eq!(e.reason(), "bad-txns-inputs-missingorspent");
        let p0 = c.prepare_block(b0, h0, None).expect("N");
        let p1 = c
            .prepare_block(b1, h1, Some(&p0.view))
            .expect("N+1 on N's view");
        // Not on the tip yet: refused, nothing changed.
        let e = c.finish_block(p1).expect_err("N+1 before N");
        assert_eq!(e.reason(), "not-on-tip");
        assert_eq!(c.height() as usize, n - 1);
        let p1 = c
            .prepare_block(Arc::new(blocks[n + 1].clone()), h1, Some(&p0.view))
            .expect("N+1 again");
        c.finish_block(p0).expect("finish N");
        // N+2 on N+1's view while N+1 is still unfinished.
        let p2 = c.prepare_block(b2, h2, Some(&p1.view)).expect("N+2");
        c.finish_block(p1).expect("finish N+1");
        c.finish_block(p2).expect("finish N+2");
        assert_eq!(c.height() as usize, n + 2);
        assert_eq!(c.tip(), h2);
        assert_eq!(c.coin(&created[0]).expect("coin"), None);
        assert_eq!(c.coin(&created[1]).expect("coin"), None);
        assert!(c.coin(&created[2]).expect("coin").is_some());
    }
}

#[test]
fn an_input_error_after_a_queued_script_failure_wins_like_core() {
    // Block N: tx 1 has a bad signature (its scripts are queued while the
    // walk goes on), tx 2 spends tx 1's input again. Core's ConnectBlock
    // returns tx 2's input error before waiting for the scripts.
    let (mut b, op, value) = mature(102);
    let script = script_of(&b, &op);
    let mut tx1 = b
        .sign_spend(
            &[op],
            vec![TxOut {
                value: value - Amount::from_sat(1_000),
                script_pubkey: script,
            }],
        )
        .expect("sign");
    let tx2 = b.double_spend(&tx1).expect("double spend");
    corrupt_signature(&mut tx1, 0).expect("corrupt");
    let block = b.block_with_txs(vec![tx1, tx2]).expect("block");
    b.push_block(block).expect("push");
    let blocks = b.blocks().to_vec();
    let n = blocks.len() - 1;
    for threads in [0, 2] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), threads);
        let e = feed_invalid(&mut c, &blocks, n - 1);
        assert_eq!(e.reason(), "bad-txns-inputs-missingorspent");
        assert_eq!((e.tx_index(), e.input_index()), (Some(2), Some(0)));
        assert_eq!(c.height() as usize, n - 1, "threads={threads}");
    }
}

#[test]
fn bip30_refuses_a_repeated_transaction_before_its_inputs() {
    // Block N+1 repeats block N's transaction, whose output is unspent:
    // BIP30 (checked first, as Core) and not the missing input.
    let (mut b, op, value) = mature(102);
    push_spend(&mut b, op, value, false);
    let repeated = b.tip().txdata[1].clone();
    let block = b.block_with_txs(vec![repeated]).expect("block");
    b.push_block(block).expect("push");
    let blocks = b.blocks().to_vec();
    let n = blocks.len() - 1;
    for threads in [0, 2] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = open(dir.path(), threads);
        // N+1 then N: N+1 is tried on N's staged view, then again on the
        // tip; `accept_block(N)` succeeds, N+1 is marked.
        feed(&mut c, &blocks, n - 2).expect("N is valid");
        let entry = c.entry(&blocks[n].block_hash()).expect("indexed");
        assert!(entry.status.contains(BlockStatus::FAILED));
        let reason = entry.invalid_reason.unwrap_or_default();
        assert!(
            reason.contains("bad-txns-BIP30"),
            "threads={threads}: {reason}"
        );
        assert_eq!(c.height() as usize, n - 1);
    }
}
