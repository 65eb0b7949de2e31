//! Invalid blocks delivered by a fake peer, one test each. Each is rejected
//! with Bitcoin Core's reason, the sender is disconnected, the tip does not
//! move, and a valid block on the old tip is accepted afterwards. Bitcoin
//! Core's kernel (`common::oracle`) gets the same chain and blocks: it must
//! reject the same block for the same reason and follow the same tip.

mod common;

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::{Amount, Block, OutPoint, ScriptBuf, Transaction, TxOut};
use common::oracle::{assert_core_rejects_like, Oracle, Verdict};
use common::*;
use strand::mining;
use strand::testdata::{corrupt_signature, ChainBuilder, OutputKind};

const HEIGHT: u32 = 120;

/// A node synced to a 120-block chain with transactions, and its builder.
fn synced() -> (TestNode, ChainBuilder) {
    let chain = test_chain(42, HEIGHT, 6);
    let node = TestNode::start(|_| {});
    let server = ChainServer::start(node.addr, chain.blocks().to_vec(), Serve::Everything);
    assert!(wait_tip(
        &node,
        chain.tip().block_hash(),
        Duration::from_secs(60)
    ));
    server.finish().unwrap();
    assert!(wait_until(Duration::from_secs(5), || node
        .snapshot()
        .peers
        .is_empty()));
    (node, chain)
}

/// The next valid block on the builder's tip (not adopted by the builder).
fn next_valid(b: &ChainBuilder) -> Block {
    let mut fork = b.fork_at(b.height()).unwrap();
    fork.next_block(2)
}

fn remine(block: &mut Block) {
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    assert!(mining::mine(block, 1_000_000));
}

/// A signed spend of one mature output of `kind`.
fn spend_of(b: &ChainBuilder, kind: OutputKind) -> Transaction {
    let (op, value) = b
        .spendable_outputs()
        .into_iter()
        .find(|(op, _)| {
            b.blocks().iter().any(|blk| {
                blk.txdata.iter().any(|tx| {
                    tx.compute_txid() == op.txid
                        && OutputKind::of(&tx.output[op.vout as usize].script_pubkey) == Some(kind)
                })
            })
        })
        .expect("spendable output of that kind");
    b.sign_spend(
        &[op],
        vec![TxOut {
            value: value - Amount::from_sat(5_000),
            script_pubkey: payout(b),
        }],
    )
    .unwrap()
}

/// Delivers `bad` from a fresh peer and checks every consequence.
fn check_rejected(
    node: &TestNode,
    b: &ChainBuilder,
    bad: Block,
    reason: &str,
    good: Option<Block>,
) {
    let tip = node.snapshot().tip;
    let mut oracle = Oracle::with_chain(b.blocks());
    assert_eq!(oracle.tip(), tip, "Core's tip differs before the test");
    let core = oracle.submit(&bad).verdict;
    let bad_hash = bad.block_hash();
    let mut attacker = FakePeer::connect(node.addr).unwrap();
    attacker.handshake(0, SERVES).unwrap();
    attacker.ping(1).unwrap();
    attacker.send(NetworkMessage::Block(bad)).unwrap();
    assert!(
        attacker.closed_within(Duration::from_secs(10)),
        "sender of an invalid block ({reason}) not disconnected"
    );
    let s = node.snapshot();
    assert_eq!(s.tip, tip, "tip moved");
    let rejects: Vec<_> = s
        .recent_rejects
        .iter()
        .filter(|(h, _)| *h == bad_hash)
        .collect();
    assert!(
        rejects.iter().any(|(_, r)| r.starts_with(reason)),
        "expected reason {reason}, got {:?}",
        s.recent_rejects
    );
    for (_, r) in &rejects {
        assert_core_rejects_like(&core, r, reason);
    }
    assert_eq!(oracle.tip(), tip, "Core's tip moved");

    let good = good.unwrap_or_else(|| next_valid(b));
    assert_eq!(
        oracle.submit(&good).verdict,
        Verdict::Connected,
        "Core does not connect the valid block after {reason}"
    );
    let mut honest = FakePeer::connect(node.addr).unwrap();
    honest.handshake(0, SERVES).unwrap();
    honest.ping(2).unwrap();
    honest.send(NetworkMessage::Block(good.clone())).unwrap();
    assert!(
        wait_tip(node, good.block_hash(), Duration::from_secs(10)),
        "valid block after {reason} not accepted: {:?}",
        node.snapshot().recent_rejects
    );
    honest.ping(3).unwrap();
    assert_eq!(oracle.tip(), node.snapshot().tip, "tips differ");
}

#[test]
fn bad_proof_of_work() {
    let (node, b) = synced();
    let mut bad = next_valid(&b);
    let target = bad.header.target();
    while bad.header.validate_pow(target).is_ok() {
        bad.header.nonce = bad.header.nonce.wrapping_add(1);
    }
    check_rejected(&node, &b, bad, "high-hash", None);
}

#[test]
fn bad_merkle_root() {
    let (node, b) = synced();
    let mut bad = next_valid(&b);
    bad.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
    assert!(mining::mine(&mut bad, 1_000_000));
    check_rejected(&node, &b, bad, "bad-txnmrklroot", None);
}

#[test]
fn duplicate_transaction_merkle_mutation() {
    let (node, b) = synced();
    // Coinbase + 2 transactions: an odd count, so duplicating the last one
    // keeps the merkle root and the block hash (CVE-2012-2459).
    let txs = vec![
        spend_of(&b, OutputKind::P2wpkh),
        spend_of(&b, OutputKind::P2pkh),
    ];
    let mut good =
        mining::build_block(template(&b, txs, Amount::from_sat(10_000)), payout(&b)).unwrap();
    assert!(mining::mine(&mut good, 1_000_000));
    let mut bad = good.clone();
    bad.txdata.push(bad.txdata[2].clone());
    assert_eq!(bad.block_hash(), good.block_hash());
    assert_eq!(bad.compute_merkle_root(), good.compute_merkle_root());
    // The mutated copy must not poison the hash: the real block is accepted.
    check_rejected(&node, &b, bad, "bad-txns-duplicate", Some(good));
}

#[test]
fn oversize_block() {
    let (node, b) = synced();
    let mut big = spend_of(&b, OutputKind::P2wpkh);
    big.output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(vec![0x6a; 1_100_000]),
    });
    let mut bad = mining::build_block(template(&b, vec![big], Amount::ZERO), payout(&b)).unwrap();
    assert!(mining::mine(&mut bad, 1_000_000));
    check_rejected(&node, &b, bad, "bad-blk-length", None);
}

#[test]
fn second_coinbase() {
    let (node, b) = synced();
    let mut bad = next_valid(&b);
    let extra =
        mining::coinbase_tx(b.height() + 1, payout(&b), Amount::from_sat(1), None, 7).unwrap();
    bad.txdata.insert(1, extra);
    remine(&mut bad);
    check_rejected(&node, &b, bad, "bad-cb-multiple", None);
}

#[test]
fn bip34_height_wrong() {
    let (node, b) = synced();
    let mut t = template(&b, vec![], Amount::ZERO);
    t.height += 5;
    let mut bad = mining::build_block(t, payout(&b)).unwrap();
    assert!(mining::mine(&mut bad, 1_000_000));
    check_rejected(&node, &b, bad, "bad-cb-height", None);
}

#[test]
fn coinbase_pays_too_much() {
    let (node, b) = synced();
    let mut bad =
        mining::build_block(template(&b, vec![], Amount::from_sat(1)), payout(&b)).unwrap();
    assert!(mining::mine(&mut bad, 1_000_000));
    check_rejected(&node, &b, bad, "bad-cb-amount", None);
}

#[test]
fn double_spend_within_block() {
    let (node, b) = synced();
    let first = spend_of(&b, OutputKind::P2tr);
    let second = b.double_spend(&first).unwrap();
    let bad = b.block_with_txs(vec![first, second]).unwrap();
    check_rejected(&node, &b, bad, "bad-txns-inputs-missingorspent", None);
}

#[test]
fn spend_of_missing_output() {
    let (node, b) = synced();
    let mut tx = spend_of(&b, OutputKind::P2wpkh);
    tx.input[0].previous_output = OutPoint::new(bitcoin::Txid::all_zeros(), 5);
    let bad = b.block_with_txs(vec![tx]).unwrap();
    check_rejected(&node, &b, bad, "bad-txns-inputs-missingorspent", None);
}

#[test]
fn immature_coinbase_spend() {
    let (node, b) = synced();
    let young = b.blocks()[(HEIGHT - 10) as usize].txdata[0].clone();
    let op = OutPoint::new(young.compute_txid(), 0);
    let tx = b
        .sign_spend(
            &[op],
            vec![TxOut {
                value: young.output[0].value - Amount::from_sat(5_000),
                script_pubkey: payout(&b),
            }],
        )
        .unwrap();
    let bad = b.block_with_txs(vec![tx]).unwrap();
    check_rejected(&node, &b, bad, "bad-txns-premature-spend-of-coinbase", None);
}

fn bad_signature(kind: OutputKind) {
    let (node, b) = synced();
    let mut tx = spend_of(&b, kind);
    corrupt_signature(&mut tx, 0).unwrap();
    let bad = b.block_with_txs(vec![tx]).unwrap();
    check_rejected(&node, &b, bad, "mandatory-script-verify-flag-failed", None);
}

#[test]
fn bad_signature_p2pkh() {
    bad_signature(OutputKind::P2pkh);
}

#[test]
fn bad_signature_p2wpkh() {
    bad_signature(OutputKind::P2wpkh);
}

#[test]
fn bad_signature_p2tr() {
    bad_signature(OutputKind::P2tr);
}

#[test]
fn timestamp_too_old() {
    let (node, b) = synced();
    let mut bad = next_valid(&b);
    let times: Vec<u32> = b.blocks()[b.blocks().len() - 11..]
        .iter()
        .map(|x| x.header.time)
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    bad.header.time = sorted[5]; // equal to the median time past: too old
    assert!(mining::mine(&mut bad, 1_000_000));
    let _: &Header = &bad.header;
    check_rejected(&node, &b, bad, "time-too-old", None);
}
