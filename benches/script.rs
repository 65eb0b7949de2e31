//! Script-verification benchmark (not a test): how the cost of checking one
//! transaction's scripts grows with its input count.
//!
//!     cargo bench --bench script
//!
//! Builds, with `strand::testdata::ChainBuilder`, a regtest chain whose
//! block 101 fans a coinbase out into 4,000 P2WPKH outputs, then one
//! transaction spending the first 500, 1,000, 2,000 and 4,000 of them
//! (signed by the builder, BIP143 ECDSA). Each is verified through
//! `ScriptCheckPool::verify_block`, the call the chain makes when it
//! connects a block, both on the calling thread (a pool of 0 workers: the
//! engine's cost alone) and with a pool of one worker per CPU (as the node
//! runs). Prints, for each size, the best total time of several runs
//! (`STRAND_BENCH_RUNS`, default 5) and the time per input, then the ratio
//! of 4,000 to 1,000 inputs: about 4 when each transaction is prepared once
//! (linear), about 16 when per-transaction data is recomputed for every
//! input (quadratic).

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

/// The chain with the fan-out block at its tip, and the fan-out's outputs.
fn fan_out_chain() -> (ChainBuilder, Vec<(OutPoint, TxOut)>) {
    let max = SIZES[SIZES.len() - 1];
    let mut chain = ChainBuilder::new(7);
    while chain.height() < 100 {
        chain.next_block(0);
    }
    // Coinbase 1 pays P2WPKH (the builder rotates P2PKH, P2WPKH, P2TR) and
    // is spendable in block 101.
    let coinbase = &chain.blocks()[1].txdata[0];
    let funding = OutPoint::new(coinbase.compute_txid(), 0);
    let script = coinbase.output[0].script_pubkey.clone();
    assert!(script.is_p2wpkh(), "coinbase 1 pays P2WPKH");
    let each = (coinbase.output[0].value.to_sat() - FAN_OUT_FEE) / max as u64;
    let outputs = vec![
        TxOut {
            value: Amount::from_sat(each),
            script_pubkey: script,
        };
        max
    ];
    let fan_out = chain
        .sign_spend(&[funding], outputs)
        .expect("coinbase 1 is the builder's");
    let txid = fan_out.compute_txid();
    let outs = fan_out
        .output
        .iter()
        .enumerate()
        .map(|(i, o)| (OutPoint::new(txid, i as u32), o.clone()))
        .collect();
    let block = chain.block_with_txs(vec![fan_out]).expect("no coinbase");
    chain.push_block(block).expect("built on the tip");
    (chain, outs)
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

fn main() {
    let t = Instant::now();
    let (chain, outs) = fan_out_chain();
    let flags = script_flags_for_height(chain.height() + 1, &ChainParams::regtest());
    let blocks: Vec<(usize, Block, Vec<Vec<TxOut>>)> = SIZES
        .iter()
        .map(|&n| {
            let (block, spent) = spending_block(&chain, &outs[..n]);
            (n, block, spent)
        })
        .collect();
    println!(
        "built and signed {} transactions in {:.1} s",
        SIZES.len(),
        t.elapsed().as_secs_f64()
    );

    let caller = ScriptCheckPool::new(0).expect("no threads to start");
    let workers = ScriptCheckPool::with_default_threads().expect("start script workers");
    println!(
        "one transaction of N signed P2WPKH inputs, ScriptCheckPool::verify_block, best of {}",
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
    for (n, block, spent) in &blocks {
        let a = best_of(&caller, block, spent, flags);
        let b = best_of(&workers, block, spent, flags);
        println!(
            "{:>6}  {:>11.1} ms {:>9.1} µs  {:>11.1} ms {:>9.1} µs",
            n,
            a.as_secs_f64() * 1e3,
            a.as_secs_f64() * 1e6 / *n as f64,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e6 / *n as f64,
        );
        caller_times.push((*n, a));
        worker_times.push((*n, b));
    }
    let ratio = |times: &[(usize, Duration)]| {
        let of = |n| {
            times
                .iter()
                .find(|(m, _)| *m == n)
                .map_or(f64::NAN, |(_, d)| d.as_secs_f64())
        };
        of(4_000) / of(1_000)
    };
    println!(
        "4,000 / 1,000 inputs: {:.2}x on the caller, {:.2}x with workers (target <= 4.5x)",
        ratio(&caller_times),
        ratio(&worker_times)
    );
}
