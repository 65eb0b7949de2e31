//! Blocks on which strand once disagreed with Bitcoin Core, delivered by
//! fake peers to the real binary (issue 8).
//!
//! * A copy of a block with its witness data stripped (or with a duplicated
//!   last transaction, CVE-2012-2459) has the genuine block's hash. Core
//!   treats it as `BLOCK_MUTATED`: the sender is dropped, the hash is not
//!   marked invalid, and the genuine block connects when it arrives — and so
//!   does a block building on it, from a peer that is not punished.
//! * A version -1 (0xffffffff) transaction is subject to BIP68: Core reads
//!   the version as unsigned, so spending a relative-locked coin early is
//!   `bad-txns-nonfinal`.

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};
use common::*;
use strand::mining;
use strand::rpc::client::{call, ClientAuth};
use strand::testdata::{ChainBuilder, OutputKind};

const HEIGHT: u32 = 120;

/// The real binary synced to a 120-block chain with transactions.
struct Synced {
    node: NodeProcess,
    rpc: std::net::SocketAddr,
    auth: ClientAuth,
    chain: ChainBuilder,
}

impl Synced {
    fn start(seed: u64) -> Synced {
        let chain = test_chain(seed, HEIGHT, 6);
        let node = NodeProcess::start(&[]);
        let rpc = node.rpc_addr();
        let auth = ClientAuth::Cookie(node.cookie());
        let s = Synced {
            node,
            rpc,
            auth,
            chain,
        };
        let server =
            ChainServer::start(s.node.addr(), s.chain.blocks().to_vec(), Serve::Everything);
        let tip = s.chain.tip().block_hash();
        assert!(
            s.wait_best(tip, Duration::from_secs(60)),
            "initial sync did not reach height {HEIGHT}"
        );
        server.finish().unwrap();
        s
    }

    fn best(&self) -> Option<BlockHash> {
        let v = call(self.rpc, &self.auth, "getbestblockhash", vec![]).ok()?;
        v.as_str()?.parse().ok()
    }

    fn wait_best(&self, hash: BlockHash, timeout: Duration) -> bool {
        wait_until(timeout, || self.best() == Some(hash))
    }

    /// A fresh inbound fake peer, handshaken and answering pings.
    fn peer(&self) -> FakePeer {
        let mut p = FakePeer::connect(self.node.addr()).unwrap();
        p.handshake(0, SERVES).unwrap();
        p.ping(1).unwrap();
        p
    }

    /// Sends `bad` from a new peer: the peer must be dropped, the tip must
    /// stay, and the log must name `bad`'s hash with Core's `reason`.
    fn refuse(&self, bad: Block, reason: &str) {
        let tip = self.best();
        let hash = bad.block_hash();
        let mut attacker = self.peer();
        attacker.send(NetworkMessage::Block(bad)).unwrap();
        assert!(
            attacker.closed_within(Duration::from_secs(10)),
            "sender of a {reason} block not disconnected"
        );
        assert_eq!(self.best(), tip, "tip moved after a {reason} block");
        let needle = format!("invalid block {hash}");
        assert!(
            wait_until(Duration::from_secs(5), || self
                .node
                .log_lines()
                .iter()
                .any(|l| l.contains(&needle) && l.contains(reason))),
            "no '{needle}: {reason}' in the log: {:#?}",
            self.node
                .log_lines()
                .iter()
                .filter(|l| l.contains("invalid"))
                .collect::<Vec<_>>()
        );
    }

    /// Sends `good` from `peer` and waits until it is the tip; the peer
    /// must still answer a ping afterwards (not punished).
    fn connects(&self, peer: &mut FakePeer, good: &Block, what: &str) {
        peer.send(NetworkMessage::Block(good.clone())).unwrap();
        assert!(
            self.wait_best(good.block_hash(), Duration::from_secs(10)),
            "{what} did not connect; best {:?}; log: {:#?}",
            self.best(),
            self.node
                .log_lines()
                .iter()
                .filter(|l| l.contains("invalid") || l.contains("rejected"))
                .collect::<Vec<_>>()
        );
        peer.ping(7)
            .unwrap_or_else(|e| panic!("peer sending {what} dropped: {e}"));
    }
}

/// A signed spend of the `nth` mature output of `kind`, paying `to` (the
/// builder's payout script when `None`) with a 5,000 sat fee.
fn spend_of(b: &ChainBuilder, kind: OutputKind, nth: usize, to: Option<ScriptBuf>) -> Transaction {
    let (op, value) = b
        .spendable_outputs()
        .into_iter()
        .filter(|(op, _)| {
            b.blocks().iter().any(|blk| {
                blk.txdata.iter().any(|tx| {
                    tx.compute_txid() == op.txid
                        && OutputKind::of(&tx.output[op.vout as usize].script_pubkey) == Some(kind)
                })
            })
        })
        .nth(nth)
        .expect("spendable output of that kind");
    b.sign_spend(
        &[op],
        vec![TxOut {
            value: value - Amount::from_sat(5_000),
            script_pubkey: to.unwrap_or_else(|| payout(b)),
        }],
    )
    .unwrap()
}

/// A mined block on the builder's tip with `txs` (witness commitment when
/// any has a witness).
fn block_of(b: &ChainBuilder, txs: Vec<Transaction>, fees: Amount) -> Block {
    let mut block = mining::build_block(template(b, txs, fees), payout(b)).unwrap();
    assert!(mining::mine(&mut block, 10_000_000));
    block
}

fn strip_witness(block: &Block, txs: impl Fn(usize) -> bool) -> Block {
    let mut stripped = block.clone();
    for (i, tx) in stripped.txdata.iter_mut().enumerate() {
        if txs(i) {
            for input in &mut tx.input {
                input.witness = Witness::new();
            }
        }
    }
    stripped
}

#[test]
fn witness_stripped_copy_does_not_poison_the_block() {
    let s = Synced::start(81);
    let mut b = s.chain.fork_at(HEIGHT).unwrap();
    let txs = vec![
        spend_of(&b, OutputKind::P2wpkh, 0, None),
        spend_of(&b, OutputKind::P2tr, 0, None),
    ];
    let genuine = block_of(&b, txs, Amount::from_sat(10_000));
    assert!(genuine.txdata[1].input[0].witness.len() == 2);
    assert!(genuine.check_witness_commitment());

    // Every witness stripped: the coinbase lost its reserved value.
    let all = strip_witness(&genuine, |_| true);
    assert_eq!(all.block_hash(), genuine.block_hash());
    assert_eq!(all.compute_merkle_root(), Some(genuine.header.merkle_root));
    s.refuse(all, "bad-witness-nonce-size");

    // Only a spend's witness stripped: the commitment no longer matches.
    let one = strip_witness(&genuine, |i| i == 2);
    assert_eq!(one.block_hash(), genuine.block_hash());
    s.refuse(one, "bad-witness-merkle-match");

    // The genuine block connects, from a peer that is not punished, and so
    // does a block built on it.
    let mut honest = s.peer();
    s.connects(
        &mut honest,
        &genuine,
        "the genuine block after stripped copies",
    );
    b.push_block(genuine).unwrap();
    let child = block_of(
        &b,
        vec![spend_of(&b, OutputKind::P2wpkh, 0, None)],
        Amount::from_sat(5_000),
    );
    s.connects(&mut honest, &child, "a child of the once-stripped block");
}

#[test]
fn duplicated_last_transaction_does_not_poison_the_block() {
    let s = Synced::start(82);
    let b = &s.chain;
    // Coinbase + 2 transactions: an odd count, so repeating the last one
    // keeps the merkle root and the hash (CVE-2012-2459).
    let txs = vec![
        spend_of(b, OutputKind::P2wpkh, 0, None),
        spend_of(b, OutputKind::P2pkh, 0, None),
    ];
    let genuine = block_of(b, txs, Amount::from_sat(10_000));
    let mut bad = genuine.clone();
    bad.txdata.push(bad.txdata[2].clone());
    assert_eq!(bad.block_hash(), genuine.block_hash());
    assert_eq!(bad.compute_merkle_root(), genuine.compute_merkle_root());
    s.refuse(bad, "bad-txns-duplicate");

    // A wrong merkle root altogether (transactions dropped) is refused too.
    let mut dropped = genuine.clone();
    dropped.txdata.truncate(2);
    assert_eq!(dropped.block_hash(), genuine.block_hash());
    s.refuse(dropped, "bad-txnmrklroot");

    let mut honest = s.peer();
    s.connects(
        &mut honest,
        &genuine,
        "the genuine block after mutated copies",
    );
}

/// `OP_TRUE`: spendable without a signature, so the only thing wrong with
/// the spends below is their relative lock.
fn op_true() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

fn relative_spend(prev: OutPoint, value: Amount, version: i32, blocks: u16) -> Transaction {
    Transaction {
        version: Version(version),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::from_height(blocks),
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: value - Amount::from_sat(1_000),
            script_pubkey: op_true(),
        }],
    }
}

#[test]
fn negative_version_transaction_obeys_bip68() {
    let s = Synced::start(83);
    let mut b = s.chain.fork_at(HEIGHT).unwrap();

    // Block 121 creates an OP_TRUE coin.
    let fund = spend_of(&b, OutputKind::P2wpkh, 0, Some(op_true()));
    let coin = OutPoint::new(fund.compute_txid(), 0);
    let value = fund.output[0].value;
    let funding = block_of(&b, vec![fund], Amount::from_sat(5_000));
    let mut honest = s.peer();
    s.connects(&mut honest, &funding, "the funding block");
    b.push_block(funding.clone()).unwrap();

    // Block 122 spends it with a 10-block relative lock: too early for
    // version 2 and, read unsigned like Core, for version -1 (0xffffffff).
    for version in [2, -1] {
        let early = relative_spend(coin, value, version, 10);
        let bad = b.block_with_txs(vec![early]).unwrap();
        s.refuse(bad, "bad-txns-nonfinal");
        assert_eq!(s.best(), Some(funding.block_hash()));
    }

    // The same version -1 spend with a 1-block lock is final at 122.
    let ok = relative_spend(coin, value, -1, 1);
    let good = b.block_with_txs(vec![ok]).unwrap();
    s.connects(
        &mut honest,
        &good,
        "a version -1 spend whose lock has passed",
    );
}
