//! The chain state driven directly (no networking): connecting realistic
//! chains, rejecting invalid blocks with Core's reasons, reorganising, and
//! surviving a restart. Every block is also given to Bitcoin Core's kernel
//! (`common::oracle`), whose verdicts and tip must match strand's.

mod common;

use bitcoin::{Amount, Block, TxOut};
use common::oracle::{assert_core_rejects_like, Oracle, Verdict};
use strand::chain::state::{ChainEvent, ChainOptions, ChainState, RejectError};
use strand::testdata::{corrupt_signature, ChainBuilder, OutputKind};
use strand::Network;

fn open(dir: &std::path::Path) -> ChainState {
    ChainState::open(
        dir,
        Network::Regtest,
        ChainOptions {
            script_threads: 2,
            ..Default::default()
        },
    )
    .expect("open chain state")
}

fn feed(chain: &mut ChainState, blocks: &[Block]) {
    for b in blocks {
        chain.accept_block(b.clone()).expect("valid block accepted");
    }
}

#[test]
fn connects_a_chain_with_every_script_type_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = ChainBuilder::new(7);
    for _ in 0..220 {
        builder.next_block(20);
    }
    let blocks = builder.blocks()[1..].to_vec();
    let mut oracle = Oracle::with_chain(builder.blocks());
    assert_eq!(oracle.tip(), builder.tip().block_hash());
    let digest;
    {
        let mut chain = open(dir.path());
        feed(&mut chain, &blocks);
        assert_eq!(chain.height(), 220);
        assert_eq!(chain.tip(), builder.tip().block_hash());
        digest = chain.utxo_digest().unwrap();
    }
    let mut chain = open(dir.path());
    assert_eq!(chain.height(), 220);
    assert_eq!(chain.utxo_digest().unwrap(), digest);
}

/// Builds a chain of `n` blocks, a valid-looking block on top produced by
/// `make`, and checks it is rejected with `reason` while the tip stays, and
/// that a valid block on the old tip is then accepted.
fn rejected(n: usize, make: impl FnOnce(&ChainBuilder) -> Block, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = ChainBuilder::new(11);
    for _ in 0..n {
        builder.next_block(8);
    }
    let mut chain = open(dir.path());
    feed(&mut chain, &builder.blocks()[1..]);
    let mut oracle = Oracle::with_chain(builder.blocks());
    let tip = chain.tip();
    assert_eq!(oracle.tip(), tip);
    let bad = make(&builder);
    let core = oracle.submit(&bad).verdict;
    match chain.accept_block(bad) {
        Err(RejectError::Invalid(e)) => {
            assert!(
                e.to_string().starts_with(reason),
                "expected {reason}, got {e}"
            );
            assert_core_rejects_like(&core, e.reason(), reason);
        }
        other => panic!("expected rejection {reason}, got {other:?} (Core: {core:?})"),
    }
    assert_eq!(chain.tip(), tip, "tip moved");
    assert_eq!(oracle.tip(), tip, "Core's tip moved");
    let good = builder.clone_next();
    assert_eq!(oracle.submit(&good).verdict, Verdict::Connected);
    let events = chain.accept_block(good.clone()).expect("valid block after");
    assert!(events.contains(&ChainEvent::Connected {
        hash: good.block_hash(),
        height: chain.height()
    }));
    assert_eq!(oracle.tip(), chain.tip());
}

trait CloneNext {
    fn clone_next(&self) -> Block;
}

impl CloneNext for ChainBuilder {
    fn clone_next(&self) -> Block {
        let mut b = self.fork_at(self.height()).unwrap();
        b.next_block(3)
    }
}

fn spend_of(builder: &ChainBuilder, kind: OutputKind) -> bitcoin::Transaction {
    let (op, value) = builder
        .spendable_outputs()
        .into_iter()
        .find(|(op, _)| {
            builder.blocks().iter().any(|b| {
                b.txdata.iter().any(|tx| {
                    tx.compute_txid() == op.txid
                        && OutputKind::of(&tx.output[op.vout as usize].script_pubkey) == Some(kind)
                })
            })
        })
        .expect("a spendable output of that kind");
    let out = TxOut {
        value: value - Amount::from_sat(2_000),
        script_pubkey: builder.tip().txdata[0].output[0].script_pubkey.clone(),
    };
    builder.sign_spend(&[op], vec![out]).unwrap()
}

#[test]
fn bad_signature_p2pkh() {
    rejected(
        120,
        |b| {
            let mut tx = spend_of(b, OutputKind::P2pkh);
            corrupt_signature(&mut tx, 0).unwrap();
            b.block_with_txs(vec![tx]).unwrap()
        },
        "mandatory-script-verify-flag-failed",
    );
}

#[test]
fn bad_signature_p2wpkh() {
    rejected(
        120,
        |b| {
            let mut tx = spend_of(b, OutputKind::P2wpkh);
            corrupt_signature(&mut tx, 0).unwrap();
            b.block_with_txs(vec![tx]).unwrap()
        },
        "mandatory-script-verify-flag-failed",
    );
}

#[test]
fn bad_signature_p2tr() {
    rejected(
        120,
        |b| {
            let mut tx = spend_of(b, OutputKind::P2tr);
            corrupt_signature(&mut tx, 0).unwrap();
            b.block_with_txs(vec![tx]).unwrap()
        },
        "mandatory-script-verify-flag-failed",
    );
}

#[test]
fn reorg_to_a_longer_branch_with_an_invalid_block_returns_to_the_best_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut prefix = ChainBuilder::new(21);
    for _ in 0..110 {
        prefix.next_block(4);
    }
    let mut a = prefix.fork_at(110).unwrap();
    for _ in 0..3 {
        a.next_block(4);
    }
    // Branch B: 5 blocks, the second one carries a bad signature.
    let mut b = prefix.fork_at(110).unwrap();
    b.next_block(2);
    let mut bad_tx = spend_of(&b, OutputKind::P2wpkh);
    corrupt_signature(&mut bad_tx, 0).unwrap();
    let bad = b.block_with_txs(vec![bad_tx]).unwrap();
    b.push_block(bad.clone()).unwrap();
    for _ in 0..3 {
        b.next_block(2);
    }

    let mut chain = open(dir.path());
    feed(&mut chain, &prefix.blocks()[1..]);
    feed(&mut chain, &a.blocks()[111..]);
    let digest_a = chain.utxo_digest().unwrap();
    assert_eq!(digest_a.0, a.tip().block_hash());
    let mut oracle = Oracle::with_chain(a.blocks());
    assert_eq!(oracle.tip(), chain.tip());

    // B's blocks: the first is valid but has less work; the rest arrive out
    // of order-free; when B has more work the node switches, meets the bad
    // block, and goes back to A.
    // Core sees the same blocks; per block it must reject exactly what
    // strand rejects (for the same reason), and find the bad block invalid
    // during the same submission.
    let mut saw_invalid = false;
    for blk in &b.blocks()[111..] {
        let core = oracle.submit(blk);
        let core_found_bad = core
            .checked
            .iter()
            .any(|(h, v)| *h == bad.block_hash() && v.is_rejected());
        match chain.accept_block(blk.clone()) {
            Ok(events) => {
                let found = events.iter().any(
                    |e| matches!(e, ChainEvent::Invalid { hash, .. } if *hash == bad.block_hash()),
                );
                assert!(!core.verdict.is_rejected(), "Core rejects: {core:?}");
                assert_eq!(found, core_found_bad, "strand {events:?}, Core {core:?}");
                saw_invalid |= found;
            }
            Err(RejectError::Invalid(e)) if e.reason() == "bad-prevblk" => {
                // A descendant of the known-invalid block.
                assert!(saw_invalid, "bad-prevblk before the bad block was found");
                assert_core_rejects_like(&core.verdict, e.reason(), "descendant");
            }
            Err(RejectError::Invalid(e)) => {
                saw_invalid = true;
                assert!(
                    e.to_string()
                        .starts_with("mandatory-script-verify-flag-failed"),
                    "{e}"
                );
                assert_core_rejects_like(&core.verdict, e.reason(), "bad block");
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(oracle.tip(), a.tip().block_hash(), "Core not back on A");
    assert!(
        oracle
            .verdict_of(&bad.block_hash())
            .is_some_and(|v| v.is_rejected()),
        "Core never found the bad block invalid"
    );
    assert!(saw_invalid, "the bad block was never validated");
    assert_eq!(
        chain.tip(),
        a.tip().block_hash(),
        "not back on the best valid chain"
    );
    assert_eq!(chain.utxo_digest().unwrap(), digest_a);
    let entry = chain.entry(&bad.block_hash()).unwrap();
    assert!(entry.status.is_failed());
    // A known descendant of the invalid block is marked invalid too.
    let child = chain.entry(&b.blocks()[113].block_hash()).unwrap();
    assert!(child.status.is_failed());
    assert!(
        chain.entry(&b.tip().block_hash()).is_none(),
        "descendant indexed after the failure"
    );
}
