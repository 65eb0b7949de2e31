//! Unit tests of the mempool and the orphan pool, on a deterministic regtest
//! chain from [`crate::testdata::ChainBuilder`] and an in-memory UTXO view
//! built from its blocks. Runs on the test harness's threads.

use std::collections::HashMap;
use std::sync::OnceLock;

use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    absolute, transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Txid, Witness,
};

use super::policy::{self, dust_threshold, solve, standard_output_type, OutputType};
use super::OrphanEvictor;
use super::*;
use crate::chain::script::script_flags_for_height;
use crate::testdata::{corrupt_signature, ChainBuilder, OutputKind};

const NOW: u64 = 1_700_000_000;

/// 112 blocks: coinbases of heights 1..=12 are mature for the next block;
/// blocks 111 and 112 carry builder transactions.
fn chain() -> &'static ChainBuilder {
    static CHAIN: OnceLock<ChainBuilder> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut b = ChainBuilder::new(7);
        for _ in 0..110 {
            b.next_block(0);
        }
        b.next_block(2);
        b.next_block(2);
        b
    })
}

fn params() -> &'static ChainParams {
    static P: OnceLock<ChainParams> = OnceLock::new();
    P.get_or_init(ChainParams::regtest)
}

/// The UTXO set after `blocks`.
fn view_of(blocks: &[Block]) -> HashMap<OutPoint, Coin> {
    let mut view = HashMap::new();
    for (h, block) in blocks.iter().enumerate() {
        for tx in &block.txdata {
            if !tx.is_coinbase() {
                for i in &tx.input {
                    view.remove(&i.previous_output);
                }
            }
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                view.insert(
                    OutPoint::new(txid, vout as u32),
                    Coin {
                        amount: out.value,
                        height: h as u32,
                        is_coinbase: tx.is_coinbase(),
                        script_pubkey: out.script_pubkey.clone(),
                    },
                );
            }
        }
    }
    view
}

fn ctx_for(blocks: &[Block]) -> AcceptContext<'static> {
    let height = blocks.len() as u32;
    let times: Vec<u32> = blocks.iter().map(|b| b.header.time).collect();
    AcceptContext {
        height,
        median_time_past: i64::from(crate::chain::pow::median_time_past(&times)),
        script_flags: script_flags_for_height(height, params()),
        params: params(),
        time: NOW,
    }
}

struct Fx {
    b: &'static ChainBuilder,
    view: HashMap<OutPoint, Coin>,
    ctx: AcceptContext<'static>,
    pool: Mempool,
}

fn fx() -> Fx {
    fx_with(MempoolConfig::default())
}

fn fx_with(config: MempoolConfig) -> Fx {
    let b = chain();
    Fx {
        b,
        view: view_of(b.blocks()),
        ctx: ctx_for(b.blocks()),
        pool: Mempool::new(config),
    }
}

impl Fx {
    fn accept(&mut self, tx: &Transaction) -> Result<Accepted, MempoolReject> {
        self.pool.accept(tx.clone(), &mut self.view, &self.ctx)
    }
}

/// A builder-owned output script of `kind` (coinbase kinds rotate with the
/// height: P2PKH, P2WPKH, P2TR for heights 0, 1, 2 mod 3).
fn script(kind: OutputKind) -> ScriptBuf {
    let b = chain();
    (1..=3)
        .filter_map(|h| {
            b.block(h)
                .map(|bl| bl.txdata[0].output[0].script_pubkey.clone())
        })
        .find(|s| b.owns(s) == Some(kind))
        .unwrap_or_default()
}

/// The mature coinbase outputs, in height order (value 50 BTC each).
fn coinbases() -> Vec<(OutPoint, Amount)> {
    let b = chain();
    let cb: Vec<Txid> = b
        .blocks()
        .iter()
        .map(|bl| bl.txdata[0].compute_txid())
        .collect();
    b.spendable_outputs()
        .into_iter()
        .filter(|(op, _)| cb.contains(&op.txid))
        .collect()
}

/// Mature coinbase `i`, and its kind.
fn coinbase(i: usize) -> (OutPoint, Amount, OutputKind) {
    let (op, v) = coinbases()[i];
    let b = chain();
    let h = b
        .blocks()
        .iter()
        .position(|bl| bl.txdata[0].compute_txid() == op.txid)
        .unwrap_or(0);
    let kind = b.owns(&b.blocks()[h].txdata[0].output[0].script_pubkey);
    (op, v, kind.unwrap_or(OutputKind::P2pkh))
}

/// The first mature coinbase of `kind`.
fn coinbase_of(kind: OutputKind) -> (OutPoint, Amount, OutputKind) {
    (0..coinbases().len())
        .map(coinbase)
        .find(|c| c.2 == kind)
        .unwrap_or_else(|| coinbase(0))
}

fn out(value: u64, kind: OutputKind) -> TxOut {
    TxOut {
        value: Amount::from_sat(value),
        script_pubkey: script(kind),
    }
}

/// Signs a spend of `prevouts` into `outputs` with `signer`.
fn spend_with(signer: &ChainBuilder, prevouts: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    signer
        .sign_spend(prevouts, outputs)
        .expect("builder output")
}

/// Spends mature coinbase `i` into one P2WPKH output paying `fee`.
fn spend_coinbase(i: usize, fee: u64) -> Transaction {
    let (op, v, _) = coinbase(i);
    spend_with(
        chain(),
        &[op],
        vec![out(v.to_sat() - fee, OutputKind::P2wpkh)],
    )
}

/// A builder that also knows `txs` (mined in a block that is never shown
/// to the mempool), so it can sign spends of their outputs.
fn signer_with(txs: &[Transaction]) -> ChainBuilder {
    let b = chain();
    let mut f = b.fork_at(b.height()).expect("fork at tip");
    let block = f.block_with_txs(txs.to_vec()).expect("no coinbase");
    f.push_block(block).expect("on tip");
    f
}

/// Spends output 0 of `parent` (value `v`) into one P2WPKH output.
fn child_of(parent: &Transaction, ancestors: &[Transaction], fee: u64) -> Transaction {
    let mut known = ancestors.to_vec();
    known.push(parent.clone());
    let signer = signer_with(&known);
    let v = parent.output[0].value.to_sat();
    spend_with(
        &signer,
        &[OutPoint::new(parent.compute_txid(), 0)],
        vec![out(v - fee, OutputKind::P2wpkh)],
    )
}

fn reason(r: &Result<Accepted, MempoolReject>) -> String {
    match r {
        Ok(a) => format!("accepted {}", a.txid),
        Err(e) => e.reason().to_string(),
    }
}

// ---------------------------------------------------------------------
// Acceptance
// ---------------------------------------------------------------------

#[test]
fn accepts_p2pkh_p2wpkh_p2tr_spends() {
    let mut f = fx();
    let mut kinds = Vec::new();
    for i in 0..3 {
        let (op, v, kind) = coinbase(i);
        kinds.push(kind);
        let tx = spend_with(f.b, &[op], vec![out(v.to_sat() - 10_000, OutputKind::P2tr)]);
        let a = f.accept(&tx).expect("valid spend");
        assert_eq!(a.txid, tx.compute_txid());
        assert_eq!(a.wtxid, tx.compute_wtxid());
        assert_eq!(a.fee, Amount::from_sat(10_000));
        assert_eq!(a.vsize, tx.vsize() as u64);
        assert!(a.replaced.is_empty());
        assert_eq!(f.pool.spender_of(&op), Some(a.txid));
        let e = f.pool.entry(&a.txid).expect("entry");
        assert_eq!((e.ancestor_count, e.descendant_count), (1, 1));
        assert_eq!(e.time, NOW);
        assert_eq!(e.height, f.ctx.height);
        assert!(e.bip125_replaceable);
        assert_eq!(f.pool.get_by_wtxid(&a.wtxid), Some(&tx));
    }
    kinds.sort_by_key(|k| *k as u8);
    assert_eq!(
        kinds,
        vec![OutputKind::P2pkh, OutputKind::P2wpkh, OutputKind::P2tr]
    );
    let info = f.pool.info();
    assert_eq!(info.size, 3);
    assert_eq!(info.total_fee, Amount::from_sat(30_000));
    assert!(info.fullrbf);
    assert_eq!(info.mempoolminfee, FeeRate::from_sat_per_vb(1));
    assert_eq!(f.pool.txids().len(), 3);
}

#[test]
fn standardness_rejects() {
    let mut f = fx();
    let (op, v, _) = coinbase(0);
    let v = v.to_sat();
    let base = spend_with(f.b, &[op], vec![out(v - 10_000, OutputKind::P2wpkh)]);

    let mut t = base.clone();
    t.version = transaction::Version(4);
    assert_eq!(reason(&f.accept(&t)), "version");

    let mut t = base.clone();
    t.output = (0..3300)
        .map(|_| out(1_000_000, OutputKind::P2wpkh))
        .collect();
    assert!(t.weight().to_wu() > 400_000);
    assert_eq!(reason(&f.accept(&t)), "tx-size");

    let mut t = base.clone();
    let big = PushBytesBuf::try_from(vec![7u8; 1650]).expect("push");
    t.input[0].script_sig = Builder::new().push_slice(big).into_script();
    assert_eq!(reason(&f.accept(&t)), "scriptsig-size");

    let mut t = base.clone();
    t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x61]); // OP_NOP
    assert_eq!(reason(&f.accept(&t)), "scriptsig-not-pushonly");

    let mut t = base.clone();
    t.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x51]); // OP_TRUE
    assert_eq!(reason(&f.accept(&t)), "scriptpubkey");

    let mut t = base.clone();
    let mut big_data = vec![0x6a, 0x4c, 82];
    big_data.extend([0u8; 82]);
    t.output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(big_data),
    });
    assert_eq!(reason(&f.accept(&t)), "scriptpubkey");

    let mut t = base.clone();
    t.output.push(out(545, OutputKind::P2pkh));
    assert_eq!(reason(&f.accept(&t)), "dust");

    let mut t = base.clone();
    let op_return = ScriptBuf::from_bytes(vec![0x6a, 0x01, 0x01]);
    for _ in 0..2 {
        t.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: op_return.clone(),
        });
    }
    assert_eq!(reason(&f.accept(&t)), "multi-op-return");

    let (wop, wv, kind) = coinbase_of(OutputKind::P2wpkh);
    assert_eq!(kind, OutputKind::P2wpkh);
    let mut t = spend_with(
        f.b,
        &[wop],
        vec![out(wv.to_sat() - 10_000, OutputKind::P2wpkh)],
    );
    t.output = vec![TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(vec![0x6a]),
    }];
    assert!(t.base_size() < 65);
    assert_eq!(reason(&f.accept(&t)), "tx-size-small");

    let mut t = base.clone();
    t.lock_time = absolute::LockTime::from_height(f.ctx.height).expect("height");
    assert_eq!(reason(&f.accept(&t)), "non-final");

    let e = f.accept(&t).unwrap_err();
    assert_eq!(e.code(), RejectCode::PrematureSpend);
    assert_eq!(e.rpc_code(), -26);
    assert!(f.pool.is_empty());
    // The unmodified transaction is fine.
    assert!(f.accept(&base).is_ok());
}

#[test]
fn policy_helpers() {
    let p2pkh = script(OutputKind::P2pkh);
    let p2wpkh = script(OutputKind::P2wpkh);
    let p2tr = script(OutputKind::P2tr);
    assert_eq!(solve(&p2pkh), OutputType::PubKeyHash);
    assert_eq!(solve(&p2wpkh), OutputType::WitnessV0KeyHash);
    assert_eq!(solve(&p2tr), OutputType::WitnessV1Taproot);
    let dust = FeeRate::from_sat_per_vb(3);
    let t = |s: &ScriptBuf| {
        dust_threshold(
            &TxOut {
                value: Amount::ZERO,
                script_pubkey: s.clone(),
            },
            dust,
        )
    };
    assert_eq!(t(&p2pkh), 546);
    assert_eq!(t(&p2wpkh), 294);
    assert_eq!(t(&p2tr), 330);
    // 1-of-2 bare multisig is standard, 1-of-4 is not.
    let key = [2u8; 33];
    let ms = |m: u8, n: u8| {
        let mut b = vec![0x50 + m];
        for _ in 0..n {
            b.push(33);
            b.extend(key);
        }
        b.extend([0x50 + n, 0xae]);
        ScriptBuf::from_bytes(b)
    };
    assert_eq!(
        standard_output_type(&ms(1, 2)),
        Some(OutputType::Multisig { m: 1, n: 2 })
    );
    assert_eq!(standard_output_type(&ms(1, 4)), None);
    assert_eq!(FeeRate::from_sat_per_vb(1).fee(141), 141);
    assert_eq!(FeeRate(1500).fee(3), 5); // rounded up
    assert_eq!(FeeRate(1000).to_string(), "0.00001000 BTC/kvB");
    assert_eq!(policy::virtual_size(401, 0), 101);
    assert_eq!(policy::virtual_size(400, 100), 500);
}

#[test]
fn missing_inputs_is_orphan() {
    let mut f = fx();
    let parent = spend_coinbase(0, 10_000);
    let child = child_of(&parent, &[], 10_000);
    let e = f.accept(&child).unwrap_err();
    assert_eq!(e, MempoolReject::MissingInputs(vec![parent.compute_txid()]));
    assert_eq!(e.reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(e.rpc_code(), -25);
    assert!(!e.punish_peer());
    assert!(f.pool.is_empty());
}

#[test]
fn orphan_chain_resolves_when_root_arrives() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    let b = child_of(&a, &[], 10_000);
    let c = child_of(&b, std::slice::from_ref(&a), 10_000);
    let peer = 9;
    for tx in [&c, &b] {
        let r = f
            .pool
            .accept_with_orphans(tx.clone(), peer, &mut f.view, &f.ctx);
        assert_eq!(r.len(), 1);
        assert!(matches!(r[0].1, Err(MempoolReject::MissingInputs(_))));
    }
    assert_eq!(f.pool.orphans().len(), 2);
    assert_eq!(
        f.pool.orphans().children_of(&b.compute_txid()),
        vec![c.clone()]
    );

    let r = f
        .pool
        .accept_with_orphans(a.clone(), peer, &mut f.view, &f.ctx);
    let ids: Vec<Txid> = r.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        ids,
        vec![a.compute_txid(), b.compute_txid(), c.compute_txid()]
    );
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    assert!(f.pool.orphans().is_empty());
    assert_eq!(f.pool.len(), 3);
    let e = f.pool.entry(&c.compute_txid()).expect("c");
    assert_eq!(e.ancestor_count, 3);
    assert_eq!(e.ancestor_fees, Amount::from_sat(30_000));
    assert_eq!(e.depends, vec![b.compute_txid()]);
    let ea = f.pool.entry(&a.compute_txid()).expect("a");
    assert_eq!(ea.descendant_count, 3);
    assert_eq!(ea.spent_by, vec![b.compute_txid()]);

    // Inventory lists parents before children.
    let inv = f.pool.inventory(false, FeeRate::ZERO);
    use bitcoin::p2p::message_blockdata::Inventory;
    assert_eq!(
        inv,
        vec![
            Inventory::Transaction(a.compute_txid()),
            Inventory::Transaction(b.compute_txid()),
            Inventory::Transaction(c.compute_txid()),
        ]
    );
    assert_eq!(
        f.pool.inventory(true, FeeRate::ZERO)[0],
        Inventory::WTx(a.compute_wtxid())
    );
    assert!(f
        .pool
        .inventory(false, FeeRate::from_sat_per_vb(1000))
        .is_empty());
}

#[test]
fn invalid_orphan_is_dropped_when_parent_arrives() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    let mut b = child_of(&a, &[], 10_000);
    corrupt_signature(&mut b, 0).expect("signature");
    let r = f
        .pool
        .accept_with_orphans(b.clone(), 1, &mut f.view, &f.ctx);
    assert!(matches!(r[0].1, Err(MempoolReject::MissingInputs(_))));
    let r = f
        .pool
        .accept_with_orphans(a.clone(), 2, &mut f.view, &f.ctx);
    assert_eq!(r.len(), 2);
    assert!(r[0].1.is_ok());
    assert!(reason(&r[1].1).starts_with("mandatory-script-verify-flag-failed"));
    assert!(f.pool.orphans().is_empty());
    assert_eq!(f.pool.len(), 1);
}

#[test]
fn double_spend_with_lower_fee_is_rejected() {
    let mut f = fx();
    let (op, v, _) = coinbase(0);
    let a = spend_with(
        f.b,
        &[op],
        vec![out(v.to_sat() - 20_000, OutputKind::P2wpkh)],
    );
    f.accept(&a).expect("a");
    let b = f.b.double_spend(&a).expect("double spend"); // fee 10,000
    let e = f.accept(&b).unwrap_err();
    assert_eq!(e.reason(), "insufficient fee");
    assert!(e.detail().contains("new feerate"), "{e}");
    assert_eq!(e.rpc_code(), -26);
    assert!(e
        .rpc_message()
        .starts_with("insufficient fee, rejecting replacement"));
    assert!(f.pool.contains(&a.compute_txid()));
    assert!(!f.pool.contains(&b.compute_txid()));
}

#[test]
fn replacement_must_pay_for_evicted_descendants_and_its_relay() {
    let mut f = fx();
    let (op, v, _) = coinbase(0);
    let v = v.to_sat();
    let a = spend_with(f.b, &[op], vec![out(v - 10_000, OutputKind::P2wpkh)]);
    let a1 = child_of(&a, &[], 10_000);
    f.accept(&a).expect("a");
    f.accept(&a1).expect("a1");

    // Higher fee rate than `a` but less than a + a1 together.
    let low = spend_with(f.b, &[op], vec![out(v - 15_000, OutputKind::P2pkh)]);
    let e = f.accept(&low).unwrap_err();
    assert_eq!(e.reason(), "insufficient fee");
    assert!(e.detail().contains("less fees than conflicting txs"), "{e}");

    // Exactly their fees plus 50 sat: not enough to pay for its own relay.
    let stingy = spend_with(f.b, &[op], vec![out(v - 20_050, OutputKind::P2pkh)]);
    let e = f.accept(&stingy).unwrap_err();
    assert_eq!(e.reason(), "insufficient fee");
    assert!(
        e.detail().contains("not enough additional fees to relay"),
        "{e}"
    );

    let good = spend_with(f.b, &[op], vec![out(v - 50_000, OutputKind::P2pkh)]);
    let acc = f.accept(&good).expect("replacement");
    let mut replaced: Vec<Txid> = acc.replaced.iter().map(|t| t.compute_txid()).collect();
    replaced.sort();
    let mut want = vec![a.compute_txid(), a1.compute_txid()];
    want.sort();
    assert_eq!(replaced, want);
    assert!(!f.pool.contains(&a.compute_txid()));
    assert!(!f.pool.contains(&a1.compute_txid()));
    assert_eq!(f.pool.spender_of(&op), Some(good.compute_txid()));
    assert_eq!(f.pool.len(), 1);
    assert_eq!(f.pool.info().total_fee, Amount::from_sat(50_000));
}

#[test]
fn replacement_may_not_add_unconfirmed_inputs() {
    let mut f = fx();
    let (op0, v0, _) = coinbase(0);
    let a = spend_with(
        f.b,
        &[op0],
        vec![out(v0.to_sat() - 10_000, OutputKind::P2wpkh)],
    );
    let other = spend_coinbase(1, 10_000);
    f.accept(&a).expect("a");
    f.accept(&other).expect("other");
    let signer = signer_with(std::slice::from_ref(&other));
    let total = v0.to_sat() + other.output[0].value.to_sat();
    let r = spend_with(
        &signer,
        &[op0, OutPoint::new(other.compute_txid(), 0)],
        vec![out(total - 100_000, OutputKind::P2wpkh)],
    );
    assert_eq!(reason(&f.accept(&r)), "replacement-adds-unconfirmed");
}

#[test]
fn min_relay_fee() {
    let mut f = fx();
    let tx = spend_coinbase(0, 50);
    let e = f.accept(&tx).unwrap_err();
    assert_eq!(e.reason(), "min relay fee not met");
    assert_eq!(e.detail(), format!("50 < {}", tx.vsize()));
    assert_eq!(e.code(), RejectCode::Reconsiderable);
    // Paying exactly 1 sat/vB is enough.
    let tx = spend_coinbase(0, tx.vsize() as u64);
    assert!(f.accept(&tx).is_ok());
}

#[test]
fn inputs_below_outputs() {
    let mut f = fx();
    let (op, v, _) = coinbase(0);
    let tx = spend_with(f.b, &[op], vec![out(v.to_sat() + 1, OutputKind::P2wpkh)]);
    let e = f.accept(&tx).unwrap_err();
    assert_eq!(e.reason(), "bad-txns-in-belowout");
    assert!(e.punish_peer());
}

#[test]
fn immature_coinbase_spend() {
    let mut f = fx();
    let b = f.b;
    let h = b.height() - 50;
    let cb = &b.blocks()[h as usize].txdata[0];
    let tx = spend_with(
        b,
        &[OutPoint::new(cb.compute_txid(), 0)],
        vec![out(
            cb.output[0].value.to_sat() - 10_000,
            OutputKind::P2wpkh,
        )],
    );
    let e = f.accept(&tx).unwrap_err();
    assert_eq!(e.reason(), "bad-txns-premature-spend-of-coinbase");
    assert_eq!(e.code(), RejectCode::PrematureSpend);
}

#[test]
fn bad_signature() {
    let mut f = fx();
    for i in 0..3 {
        let mut tx = spend_coinbase(i, 10_000);
        corrupt_signature(&mut tx, 0).expect("has signature");
        let e = f.accept(&tx).unwrap_err();
        assert_eq!(
            e.reason(),
            "mandatory-script-verify-flag-failed (script evaluation failed)"
        );
        assert_eq!(e.code(), RejectCode::Consensus);
        assert!(e.punish_peer());
    }
    assert!(f.pool.is_empty());
}

#[test]
fn already_in_pool_and_already_known() {
    let mut f = fx();
    let tx = spend_coinbase(0, 10_000);
    f.accept(&tx).expect("first");
    let e = f.accept(&tx).unwrap_err();
    assert_eq!(e.reason(), "txn-already-in-mempool");
    assert_eq!(e.code(), RejectCode::Conflict);

    // A transaction confirmed at the tip, its outputs unspent.
    let confirmed = f.b.tip().txdata[1].clone();
    let e = f.accept(&confirmed).unwrap_err();
    assert_eq!(e.reason(), "txn-already-known");
    assert_eq!(e.rpc_code(), -27);
    assert_eq!(e.rpc_message(), "Transaction outputs already in utxo set");
}

#[test]
fn chain_limits() {
    let mut f = fx_with(MempoolConfig {
        ancestor_count: 2,
        ..MempoolConfig::default()
    });
    let a = spend_coinbase(0, 10_000);
    let b = child_of(&a, &[], 10_000);
    let c = child_of(&b, std::slice::from_ref(&a), 10_000);
    f.accept(&a).expect("a");
    f.accept(&b).expect("b");
    let e = f.accept(&c).unwrap_err();
    assert_eq!(e.reason(), "too-long-mempool-chain");
    assert_eq!(e.code(), RejectCode::MempoolPolicy);
}

// ---------------------------------------------------------------------
// Blocks and reorganisations
// ---------------------------------------------------------------------

#[test]
fn remove_for_block_removes_mined_and_conflicts() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    let a1 = child_of(&a, &[], 10_000);
    let b = spend_coinbase(1, 20_000);
    let b1 = child_of(&b, &[], 10_000);
    let c = spend_coinbase(2, 10_000);
    for tx in [&a, &a1, &b, &b1, &c] {
        f.accept(tx).expect("accepted");
    }
    // The block mines `a` and a double spend of `b`'s input.
    let b_conflict = f.b.double_spend(&b).expect("ds");
    let block =
        f.b.block_with_txs(vec![a.clone(), b_conflict])
            .expect("block");
    let removed = f.pool.remove_for_block(&block);
    let mut removed: Vec<Txid> = removed.iter().map(|t| t.compute_txid()).collect();
    removed.sort();
    let mut want = vec![b.compute_txid(), b1.compute_txid()];
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(f.pool.txids(), {
        let mut v = vec![a1.compute_txid(), c.compute_txid()];
        v.sort();
        v
    });
    // `a1` no longer has an in-mempool parent.
    let e = f.pool.entry(&a1.compute_txid()).expect("a1");
    assert!(e.depends.is_empty());
    assert_eq!(e.ancestor_count, 1);
}

#[test]
fn remove_for_block_erases_conflicting_orphans() {
    let mut f = fx();
    let c = spend_coinbase(2, 10_000);
    let mut orphan = f.b.double_spend(&c).expect("ds");
    orphan.input.push(TxIn {
        previous_output: OutPoint::new(Txid::from_byte_array([1; 32]), 0),
        ..TxIn::default()
    });
    f.pool
        .orphans_mut()
        .add_orphan(orphan, 1, NOW)
        .expect("orphan");
    let keep = fake_tx(5);
    f.pool
        .orphans_mut()
        .add_orphan(keep.clone(), 1, NOW)
        .expect("orphan");
    let block = f.b.block_with_txs(vec![c]).expect("block");
    f.pool.remove_for_block(&block);
    assert_eq!(f.pool.orphans().txids(), vec![keep.compute_txid()]);
}

#[test]
fn readd_after_reorg() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    let a1 = child_of(&a, &[], 10_000);
    let x = spend_coinbase(1, 10_000);
    f.accept(&a).expect("a");
    f.accept(&a1).expect("a1");
    // `a` and `x` get mined; `a1` stays.
    let block =
        f.b.block_with_txs(vec![a.clone(), x.clone()])
            .expect("block");
    f.pool.remove_for_block(&block);
    assert_eq!(f.pool.txids(), vec![a1.compute_txid()]);

    // The block is disconnected: the view is back to the old tip.
    let readd = f
        .pool
        .readd_for_reorg(block.txdata.clone(), &mut f.view, &f.ctx);
    assert_eq!(readd.len(), 2, "coinbase skipped");
    assert!(readd.iter().all(|(_, r)| r.is_ok()), "{readd:?}");
    assert_eq!(f.pool.len(), 3);
    let ea = f.pool.entry(&a.compute_txid()).expect("a");
    assert_eq!(ea.spent_by, vec![a1.compute_txid()]);
    let e1 = f.pool.entry(&a1.compute_txid()).expect("a1");
    assert_eq!(e1.depends, vec![a.compute_txid()]);
    assert_eq!(e1.ancestor_count, 2);
}

#[test]
fn reorg_removes_transactions_whose_inputs_vanished() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    let a1 = child_of(&a, &[], 10_000);
    let a2 = child_of(&a1, std::slice::from_ref(&a), 10_000);
    f.accept(&a).expect("a");
    f.accept(&a1).expect("a1");
    f.accept(&a2).expect("a2");
    let block = f.b.block_with_txs(vec![a.clone()]).expect("block");
    f.pool.remove_for_block(&block);
    assert_eq!(f.pool.len(), 2);
    // Reorg to a chain where `a` is not confirmed and not offered back.
    let r = f.pool.readd_for_reorg(Vec::new(), &mut f.view, &f.ctx);
    assert!(r.is_empty());
    assert!(f.pool.is_empty());
}

// ---------------------------------------------------------------------
// Size limit
// ---------------------------------------------------------------------

#[test]
fn size_limit_evicts_lowest_feerate_package() {
    // Measure the usage of one entry.
    let mut probe = fx();
    let low = spend_coinbase(0, 1_000);
    probe.accept(&low).expect("low");
    let one = probe.pool.info().usage;

    let mut f = fx_with(MempoolConfig {
        max_size_bytes: 2 * one + one / 2,
        ..MempoolConfig::default()
    });
    let mid = spend_coinbase(1, 5_000);
    let high = spend_coinbase(2, 50_000);
    let lowest = spend_coinbase(4, 300);
    f.accept(&low).expect("low");
    f.accept(&mid).expect("mid");
    // Over the limit, and the newcomer itself has the lowest score.
    let e = f.accept(&lowest).unwrap_err();
    assert_eq!(e.reason(), "mempool full");
    assert_eq!(f.pool.len(), 2);
    // The pool now asks for more than the evicted package paid.
    assert!(f.pool.info().mempoolminfee > FeeRate::from_sat_per_vb(1));
    let a = f.accept(&high).expect("high");
    assert!(a.replaced.is_empty());
    assert!(!f.pool.contains(&low.compute_txid()), "lowest evicted");
    assert!(f.pool.contains(&mid.compute_txid()));
    assert!(f.pool.contains(&high.compute_txid()));
    assert!(f.pool.info().usage <= 2 * one + one / 2);

    // A low-fee transaction is now refused by the rolling minimum fee.
    let cheap = spend_coinbase(3, 200);
    assert_eq!(reason(&f.accept(&cheap)), "mempool min fee not met");
}

#[test]
fn eviction_takes_descendants() {
    let mut probe = fx();
    let low = spend_coinbase(0, 1_000);
    probe.accept(&low).expect("low");
    let one = probe.pool.info().usage;

    let mut f = fx_with(MempoolConfig {
        max_size_bytes: 3 * one + one / 2,
        ..MempoolConfig::default()
    });
    // The child pays well, but the package rate stays below `mid`'s.
    let low_child = child_of(&low, &[], 2_000);
    let mid = spend_coinbase(1, 20_000);
    let high = spend_coinbase(2, 50_000);
    f.accept(&low).expect("low");
    f.accept(&low_child).expect("child");
    f.accept(&mid).expect("mid");
    f.accept(&high).expect("high");
    assert_eq!(f.pool.txids(), {
        let mut v = vec![mid.compute_txid(), high.compute_txid()];
        v.sort();
        v
    });
}

// ---------------------------------------------------------------------
// Orphan pool
// ---------------------------------------------------------------------

/// An unsigned transaction spending an unknown outpoint (orphans are not
/// validated).
fn fake_tx(n: u32) -> Transaction {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&n.to_le_bytes());
    h[31] = 0xee;
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array(h), n),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![out(10_000, OutputKind::P2wpkh)],
    }
}

#[test]
fn orphan_count_limit_evicts_one_at_random() {
    let mut pool = OrphanPool::new(OrphanConfig::default());
    for n in 0..100 {
        let added = pool
            .add_orphan(fake_tx(n), u64::from(n % 3), NOW)
            .expect("add");
        assert_eq!(added, OrphanAdded::default());
    }
    assert_eq!(pool.len(), 100);
    let before = pool.txids();
    let new = fake_tx(100);
    let added = pool.add_orphan(new.clone(), 7, NOW).expect("add");
    let victim = added.evicted.expect("one evicted");
    assert!(before.contains(&victim));
    assert_eq!(pool.len(), 100);
    assert!(pool.contains(&new.compute_txid()));
    assert!(!pool.contains(&victim));

    // Same seed, same victim; another seed picks (here) another.
    let mut again = OrphanPool::new(OrphanConfig::default());
    let mut other = OrphanPool::new(OrphanConfig {
        seed: 42,
        ..OrphanConfig::default()
    });
    for n in 0..100 {
        again.add_orphan(fake_tx(n), 0, NOW).expect("add");
        other.add_orphan(fake_tx(n), 0, NOW).expect("add");
    }
    let v1 = again.add_orphan(fake_tx(100), 0, NOW).expect("add").evicted;
    let v2 = other.add_orphan(fake_tx(100), 0, NOW).expect("add").evicted;
    assert_eq!(v1, Some(victim));
    assert_ne!(v1, v2);
    // Indexes stay consistent after many evictions.
    for n in 101..400 {
        again.add_orphan(fake_tx(n), 0, NOW).expect("add");
    }
    assert_eq!(again.len(), 100);
    assert_eq!(again.txids().len(), 100);
    for t in again.txids() {
        assert!(again.get(&t).is_some());
    }
}

#[test]
fn orphan_size_and_duplicates() {
    let mut pool = OrphanPool::new(OrphanConfig::default());
    let mut big = fake_tx(1);
    big.output = (0..3300).map(|_| out(1_000, OutputKind::P2wpkh)).collect();
    let w = big.weight().to_wu();
    assert!(w > 400_000);
    assert_eq!(
        pool.add_orphan(big, 1, NOW),
        Err(OrphanReject::TooLarge {
            weight: w,
            max: 400_000
        })
    );
    let t = fake_tx(2);
    pool.add_orphan(t.clone(), 1, NOW).expect("add");
    assert_eq!(pool.add_orphan(t, 1, NOW), Err(OrphanReject::AlreadyHave));
    assert_eq!(pool.len(), 1);
}

#[test]
fn orphans_expire_after_15_minutes() {
    let mut pool = OrphanPool::new(OrphanConfig::default());
    pool.add_orphan(fake_tx(1), 1, NOW).expect("add");
    pool.add_orphan(fake_tx(2), 1, NOW + 600).expect("add");
    assert!(pool.expire(NOW + 899).is_empty());
    assert_eq!(pool.expire(NOW + 900), vec![fake_tx(1).compute_txid()]);
    assert_eq!(pool.len(), 1);
    // Adding also sweeps expired orphans.
    let added = pool.add_orphan(fake_tx(3), 1, NOW + 1500).expect("add");
    assert_eq!(added.expired, vec![fake_tx(2).compute_txid()]);
    assert_eq!(pool.txids(), vec![fake_tx(3).compute_txid()]);
}

#[test]
fn erase_for_peer_removes_only_that_peers_orphans() {
    let pool = Mempool::new(MempoolConfig::default());
    let mut shared = SharedMempool::new(pool);
    for n in 0..10 {
        shared
            .lock()
            .orphans_mut()
            .add_orphan(fake_tx(n), u64::from(n % 2), NOW)
            .expect("add");
    }
    // Through the peer handler's trait.
    assert_eq!(shared.evict_orphans_from(1), 5);
    assert_eq!(shared.evict_orphans_from(1), 0);
    assert_eq!(shared.evict_orphans_from(3), 0);
    let guard = shared.lock();
    assert_eq!(guard.orphans().len(), 5);
    for t in guard.orphans().txids() {
        assert_eq!(guard.orphans().get(&t).map(|e| e.peer), Some(0));
    }
    assert_eq!(guard.info().orphans, 5);
}

#[test]
fn reject_codes_and_messages() {
    let e = MempoolReject::new(RejectCode::NotStandard, "dust");
    assert_eq!(e.to_string(), "dust");
    assert_eq!(e.rpc_code(), RPC_VERIFY_REJECTED);
    let e = MempoolReject::new(RejectCode::Reconsiderable, "min relay fee not met")
        .with_detail("100 < 141");
    assert_eq!(e.rpc_message(), "min relay fee not met, 100 < 141");
    assert!(!e.punish_peer());
    let e = MempoolReject::MissingInputs(vec![]);
    assert_eq!(e.rpc_code(), RPC_VERIFY_ERROR);
    assert_eq!(e.rpc_message(), "bad-txns-inputs-missingorspent");
    let e = MempoolReject::new(RejectCode::Conflict, "txn-already-known");
    assert_eq!(e.rpc_code(), RPC_VERIFY_ALREADY_IN_CHAIN);
}

#[test]
fn bip68_relative_lock() {
    let mut f = fx();
    // Builder spends disable BIP68; set a relative height lock after
    // signing. The lock is checked before the scripts, so a satisfied lock
    // gets as far as the (now invalid) signature.
    let mut tx = spend_coinbase(0, 10_000);
    tx.input[0].sequence = Sequence::from_height(200);
    let e = f.accept(&tx).unwrap_err();
    assert_eq!(e.reason(), "non-BIP68-final");
    assert_eq!(e.code(), RejectCode::PrematureSpend);
    tx.input[0].sequence = Sequence::from_height(5);
    let e = f.accept(&tx).unwrap_err();
    assert!(e
        .reason()
        .starts_with("mandatory-script-verify-flag-failed"));

    // A time lock on a confirmed coin needs the view's median time past,
    // which a plain map does not know: refused.
    tx.input[0].sequence = Sequence::from_512_second_intervals(1);
    assert_eq!(reason(&f.accept(&tx)), "non-BIP68-final");

    // Locks on an unconfirmed parent count from the next block.
    let parent = spend_coinbase(1, 10_000);
    f.accept(&parent).expect("parent");
    let mut child = child_of(&parent, &[], 10_000);
    child.input[0].sequence = Sequence::from_height(1);
    assert_eq!(reason(&f.accept(&child)), "non-BIP68-final");
}

#[test]
fn witness_malleated_duplicate() {
    let mut f = fx();
    let (op, v, _) = coinbase_of(OutputKind::P2wpkh);
    let tx = spend_with(f.b, &[op], vec![out(v.to_sat() - 10_000, OutputKind::P2tr)]);
    f.accept(&tx).expect("tx");
    let mut m = tx.clone();
    corrupt_signature(&mut m, 0).expect("witness");
    assert_eq!(m.compute_txid(), tx.compute_txid());
    assert_ne!(m.compute_wtxid(), tx.compute_wtxid());
    assert_eq!(reason(&f.accept(&m)), "txn-same-nonwitness-data-in-mempool");
    assert!(f.pool.contains_wtxid(&tx.compute_wtxid()));
}

#[test]
fn orphan_sent_again_after_parent_is_cleared() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    let b = child_of(&a, &[], 10_000);
    let r = f
        .pool
        .accept_with_orphans(b.clone(), 1, &mut f.view, &f.ctx);
    assert!(matches!(r[0].1, Err(MempoolReject::MissingInputs(_))));
    // The parent arrives through plain `accept` (e.g. RPC), then another
    // peer sends the child again: accepted and no longer an orphan.
    f.accept(&a).expect("a");
    let r = f
        .pool
        .accept_with_orphans(b.clone(), 2, &mut f.view, &f.ctx);
    assert!(r[0].1.is_ok());
    assert!(f.pool.orphans().is_empty());
}

#[test]
fn long_nonstandard_script_does_not_panic() {
    // 300 pushes of 33 bytes: more keys than a u8 counts.
    let mut b = vec![0x51];
    for _ in 0..300 {
        b.push(33);
        b.extend([2u8; 33]);
    }
    b.extend([0x53, 0xae]);
    assert_eq!(solve(&ScriptBuf::from_bytes(b)), OutputType::NonStandard);
}

#[test]
fn chain_state_as_utxo_view() {
    use crate::chain::state::{ChainOptions, ChainState};
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ChainOptions {
        script_threads: 0,
        ..ChainOptions::default()
    };
    let mut chain =
        ChainState::open(dir.path(), crate::config::Network::Regtest, opts).expect("open chain");
    let b = self::chain();
    for block in b.blocks().iter().skip(1) {
        chain.accept_block(block.clone()).expect("valid block");
    }
    assert_eq!(chain.height(), b.height());
    let ctx = ctx_for(b.blocks());
    let mut pool = Mempool::new(MempoolConfig::default());
    let a = spend_coinbase(0, 10_000);
    let child = child_of(&a, &[], 10_000);
    let r = pool.accept_with_orphans(child.clone(), 3, &mut chain, &ctx);
    assert!(matches!(r[0].1, Err(MempoolReject::MissingInputs(_))));
    let r = pool.accept_with_orphans(a.clone(), 3, &mut chain, &ctx);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    let confirmed = b.tip().txdata[1].clone();
    assert_eq!(
        reason(&pool.accept(confirmed, &mut chain, &ctx)),
        "txn-already-known"
    );
}

// ---------------------------------------------------------------------------
// Block template selection, prioritisation, expiry, persistence
// ---------------------------------------------------------------------------

#[test]
fn template_orders_by_ancestor_feerate_and_prioritisation() {
    let mut f = fx();
    let low = spend_coinbase(0, 1_000);
    let mid = spend_coinbase(1, 5_000);
    // A cheap parent with a rich child: the package outranks `mid`.
    let parent = spend_coinbase(2, 500);
    let child = child_of(&parent, &[], 20_000);
    for t in [&low, &mid, &parent, &child] {
        f.accept(t).expect("accept");
    }
    let ids = |f: &Fx| -> Vec<Txid> {
        f.pool
            .select_for_block(4_000_000, 80_000)
            .into_iter()
            .map(|t| t.txid)
            .collect()
    };
    let order = ids(&f);
    assert_eq!(
        order,
        vec![
            parent.compute_txid(),
            child.compute_txid(),
            mid.compute_txid(),
            low.compute_txid()
        ]
    );
    // The child depends on the parent at position 1.
    let sel = f.pool.select_for_block(4_000_000, 80_000);
    assert_eq!(sel[1].depends, vec![1]);
    assert!(sel[0].depends.is_empty());
    assert_eq!(sel[3].fee, Amount::from_sat(1_000));

    // Prioritising `low` puts it first; fees stay the base fee.
    f.pool.prioritise_transaction(low.compute_txid(), 1_000_000);
    let sel = f.pool.select_for_block(4_000_000, 80_000);
    assert_eq!(sel[0].txid, low.compute_txid());
    assert_eq!(sel[0].fee, Amount::from_sat(1_000));
    assert_eq!(sel[0].modified_fee, 1_001_000);
    assert_eq!(
        f.pool.entry(&low.compute_txid()).map(|e| e.modified_fee),
        Some(1_001_000)
    );
    // A weight budget leaves out what does not fit.
    let one = sel[0].weight;
    assert_eq!(f.pool.select_for_block(one, 80_000).len(), 1);
    assert_eq!(
        f.pool.prioritised(),
        vec![(low.compute_txid(), 1_000_000, true)]
    );
}

#[test]
fn prioritisation_counts_for_eviction_and_fee_floor() {
    // Measure one entry, then allow two.
    let mut probe = fx();
    let a = spend_coinbase(0, 1_000);
    probe.accept(&a).expect("a");
    let one = probe.pool.info().usage;
    let mut f = fx_with(MempoolConfig {
        max_size_bytes: 2 * one + one / 2,
        ..MempoolConfig::default()
    });
    let b = spend_coinbase(1, 2_000);
    let c = spend_coinbase(2, 3_000);
    // `a` pays least but is prioritised: `b` is evicted instead.
    f.pool.prioritise_transaction(a.compute_txid(), 100_000);
    f.accept(&a).expect("a");
    f.accept(&b).expect("b");
    f.accept(&c).expect("c");
    assert!(f.pool.contains(&a.compute_txid()));
    assert!(!f.pool.contains(&b.compute_txid()));
    assert!(f.pool.contains(&c.compute_txid()));

    // A negative delta below the relay fee refuses the transaction.
    let mut g = fx();
    let d = spend_coinbase(3, 1_000);
    g.pool.prioritise_transaction(d.compute_txid(), -900);
    assert_eq!(reason(&g.accept(&d)), "min relay fee not met");
}

#[test]
fn expiry_removes_old_transactions_with_descendants() {
    let mut f = fx_with(MempoolConfig {
        expiry_secs: 3600,
        ..MempoolConfig::default()
    });
    let parent = spend_coinbase(0, 1_000);
    let child = child_of(&parent, &[], 1_000);
    f.accept(&parent).expect("parent");
    f.accept(&child).expect("child");
    let young = spend_coinbase(1, 1_000);
    f.ctx.time = NOW + 1800;
    f.accept(&young).expect("young");
    assert_eq!(f.pool.expire(NOW + 3600), 0);
    // The parent (and its younger child) expire; `young` stays.
    assert_eq!(f.pool.expire(NOW + 3601), 2);
    assert_eq!(f.pool.txids(), vec![young.compute_txid()]);
}

#[test]
fn mempool_dat_round_trip_revalidates() {
    let mut f = fx();
    let parent = spend_coinbase(0, 1_000);
    let child = child_of(&parent, &[], 2_000);
    let other = spend_coinbase(1, 3_000);
    for t in [&parent, &child, &other] {
        f.accept(t).expect("accept");
    }
    f.pool.prioritise_transaction(other.compute_txid(), 777);
    let absent = spend_coinbase(4, 1_000).compute_txid();
    f.pool.prioritise_transaction(absent, -5);
    let bytes = f.pool.to_dat_bytes();

    let mut g = fx();
    let stats = g
        .pool
        .load_dat_bytes(&bytes, &mut g.view, &g.ctx)
        .expect("load");
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.failed, 0);
    assert_eq!(g.pool.txids(), f.pool.txids());
    assert_eq!(g.pool.modified_fee(&other.compute_txid()), 3_777);
    assert_eq!(g.pool.prioritised(), f.pool.prioritised());
    assert_eq!(g.pool.entry_time(&child.compute_txid()), Some(NOW));

    // Loaded against a view where `parent`'s coin is spent: parent and
    // child fail, the rest loads.
    let mut h = fx();
    let spent = parent.input[0].previous_output;
    h.view.remove(&spent);
    let stats = h
        .pool
        .load_dat_bytes(&bytes, &mut h.view, &h.ctx)
        .expect("load");
    assert_eq!((stats.accepted, stats.failed), (1, 2));

    // Expired entries are skipped; a truncated or foreign file is an error.
    let mut e = fx_with(MempoolConfig {
        expiry_secs: 10,
        ..MempoolConfig::default()
    });
    e.ctx.time = NOW + 11;
    let stats = e
        .pool
        .load_dat_bytes(&bytes, &mut e.view, &e.ctx)
        .expect("load");
    assert_eq!((stats.accepted, stats.expired), (0, 3));
    let mut t = fx();
    assert!(t
        .pool
        .load_dat_bytes(&bytes[..bytes.len() - 3], &mut t.view, &t.ctx)
        .is_err());
    assert!(t
        .pool
        .load_dat_bytes(b"garbage!", &mut t.view, &t.ctx)
        .is_err());
}

#[test]
fn connected_blocks_feed_the_fee_estimator() {
    let mut f = fx();
    let a = spend_coinbase(0, 10_000);
    f.accept(&a).expect("a");
    assert_eq!(f.pool.fees().tracked_len(), 1);
    let block = f.b.block_with_txs(vec![a.clone()]).expect("block");
    f.pool.remove_for_block(&block);
    assert_eq!(f.pool.fees().tracked_len(), 0);
    assert_eq!(f.pool.fees().best_height(), f.b.height() + 1);
}
