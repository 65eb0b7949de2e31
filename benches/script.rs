//! Script-verification benchmark (not a test): how the cost of checking one
//! transaction's scripts grows with its input count.
//!
//!     cargo bench --bench script
//!
//! Builds, with `strand::testdata::ChainBuilder`, a regtest chain whose
//! block 102 fans two coinbases out into 4,000 P2WPKH and 4,000 P2TR
//! outputs, then transactions spending the first 500, 1,000, 2,000 and
//! 4,000 of each kind (signed by the builder: BIP143 ECDSA, BIP341 Schnorr
//! key path). Each is verified through `ScriptCheckPool::verify_block`, the
//! call the chain makes when it connects a block, both on the calling thread
//! (a pool of 0 workers: the engine's cost alone) and with a pool of one
//! worker per CPU (as the node runs). Prints, for each size, the best total
//! time of several runs (`STRAND_BENCH_RUNS`, default 5) and the time per
//! input, then the ratio of 4,000 to 1,000 inputs: about 4 when the cost is
//! linear, about 16 when quadratic. `STRAND_BENCH_P2WPKH_ONLY=1` skips the
//! P2TR series.

use std::time::{Duration, Instant};

use bitcoin::{Amount, Block, OutPoint, TxOut};
use strand::chain::params::ChainParams;
use strand::chain::script::{script_flags_for_height, ScriptCheckPool};
use strand::testdata::ChainBuilder;

const SIZES: [usize; 4] = [500, 1_000, 2_000, 4_000];
/// Runs per size and pool unless `STRAND_BENCH_RUNS` says otherwise; the
/// best is reported (the machine is shared).
const DEFAULT_RUNS: usize = 5;
const FAN_OUT_FEE: u64 = 1_000_000;
const SPEND_FEE: u64 = 100_000;

/// The chain with the fan-out block at its tip, and the outputs of its two
/// fan-out transactions: P2WPKH ones (from coinbase 1) and P2TR ones (from
/// coinbase 2; the builder's coinbases rotate P2PKH, P2WPKH, P2TR).
type Outs = Vec<(OutPoint, TxOut)>;
fn fan_out_chain() -> (ChainBuilder, Outs, Outs) {
    let max = SIZES[SIZES.len() - 1];
    let mut chain = ChainBuilder::new(7);
    while chain.height() < 101 {
        chain.next_block(0); // coinbases 1 and 2 mature at height 102
    }
    let fan_out = |height: usize| {
        let coinbase = &chain.blocks()[height].txdata[0];
        let funding = OutPoint::new(coinbase.compute_txid(), 0);
        let each = (coinbase.output[0].value.to_sat() - FAN_OUT_FEE) / max as u64;
        let out = TxOut {
            value: Amount::from_sat(each),
            script_pubkey: coinbase.output[0].script_pubkey.clone(),
        };
        chain
            .sign_spend(&[funding], vec![out; max])
            .expect("the coinbase is the builder's")
    };
    let txs = vec![fan_out(1), fan_out(2)];
    let outs = |i: usize| -> Outs {
        let txid = txs[i].compute_txid();
        txs[i]
            .output
            .iter()
            .enumerate()
            .map(|(n, o)| (OutPoint::new(txid, n as u32), o.clone()))
            .collect()
    };
    let (p2wpkh, p2tr) = (outs(0), outs(1));
    assert!(
        p2wpkh[0].1.script_pubkey.is_p2wpkh(),
        "coinbase 1 pays P2WPKH"
    );
    assert!(p2tr[0].1.script_pubkey.is_p2tr(), "coinbase 2 pays P2TR");
    let block = chain.block_with_txs(txs).expect("no coinbase");
    chain.push_block(block).expect("built on the tip");
    (chain, p2wpkh, p2tr)
}

/// A block at the tip + 1 holding one transaction that spends `spent`, and
/// the spent outputs as `verify_block` takes them.
fn spending_block(chain: &ChainBuilder, spent: &[(OutPoint, TxOut)]) -> (Block, Vec<Vec<TxOut>>) {
    let prevouts: Vec<OutPoint> = spent.iter().map(|(op, _)| *op).collect();
    let total: u64 = spent.iter().map(|(_, o)| o.value.to_sat()).sum();
    let out = TxOut {
        value: Amount::from_sat(total - SPEND_FEE),
        script_pubkey: spent[0].1.script_pubkey.clone(),
    };
    let tx = chain
        .sign_spend(&prevouts, vec![out])
        .expect("fan-out outputs are the builder's");
    let block = chain.block_with_txs(vec![tx]).expect("no coinbase");
    let outputs = spent.iter().map(|(_, o)| o.clone()).collect();
    (block, vec![outputs])
}

fn runs() -> usize {
    std::env::var("STRAND_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_RUNS)
}

fn best_of(pool: &ScriptCheckPool, block: &Block, spent: &[Vec<TxOut>], flags: u32) -> Duration {
    (0..runs())
        .map(|_| {
            let t = Instant::now();
            let result = pool.verify_block(block, spent, flags);
            let elapsed = t.elapsed();
            assert_eq!(result, Ok(()), "the spend must verify");
            elapsed
        })
        .min()
        .unwrap_or_default()
}

/// Times one transaction per size spending `outs`; returns (caller,
/// workers) times per size.
#[allow(clippy::type_complexity)]
fn series(
    name: &str,
    chain: &ChainBuilder,
    outs: &[(OutPoint, TxOut)],
    caller: &ScriptCheckPool,
    workers: &ScriptCheckPool,
) -> (Vec<(usize, Duration)>, Vec<(usize, Duration)>) {
    let flags = script_flags_for_height(chain.height() + 1, &ChainParams::regtest());
    println!(
        "one transaction of N signed {name} inputs, ScriptCheckPool::verify_block, best of {}",
        runs()
    );
    println!(
        "{:>6}  {:>14} {:>12}  {:>14} {:>12}",
        "inputs",
        "caller total",
        "per input",
        format!("{} workers", workers.threads()),
        "per input"
    );
    let mut caller_times = Vec::new();
    let mut worker_times = Vec::new();
    for n in SIZES {
        let (block, spent) = spending_block(chain, &outs[..n]);
        let a = best_of(caller, &block, &spent, flags);
        let b = best_of(workers, &block, &spent, flags);
        println!(
            "{:>6}  {:>11.1} ms {:>9.1} µs  {:>11.1} ms {:>9.1} µs",
            n,
            a.as_secs_f64() * 1e3,
            a.as_secs_f64() * 1e6 / n as f64,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e6 / n as f64,
        );
        caller_times.push((n, a));
        worker_times.push((n, b));
    }
    (caller_times, worker_times)
}

fn ratio(times: &[(usize, Duration)]) -> f64 {
    let of = |n| {
        times
            .iter()
            .find(|(m, _)| *m == n)
            .map_or(f64::NAN, |(_, d)| d.as_secs_f64())
    };
    of(4_000) / of(1_000)
}

fn main() {
    let t = Instant::now();
    let (chain, p2wpkh, p2tr) = fan_out_chain();
    println!("built the chain in {:.1} s", t.elapsed().as_secs_f64());
    let caller = ScriptCheckPool::new(0).expect("no threads to start");
    let workers = ScriptCheckPool::with_default_threads().expect("start script workers");

    let (c, w) = series("P2WPKH", &chain, &p2wpkh, &caller, &workers);
    println!(
        "P2WPKH 4,000 / 1,000 inputs: {:.2}x on the caller, {:.2}x with workers (target <= 4.5x)",
        ratio(&c),
        ratio(&w)
    );
    if std::env::var_os("STRAND_BENCH_P2WPKH_ONLY").is_some() {
        return;
    }
    let (c, w) = series("P2TR (key path)", &chain, &p2tr, &caller, &workers);
    println!(
        "P2TR 4,000 / 1,000 inputs: {:.2}x on the caller, {:.2}x with workers",
        ratio(&c),
        ratio(&w)
    );
}
