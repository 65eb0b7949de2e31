//! What LMDB keeps after UTXO flushes with random txids (not a test).
//!
//!     cargo bench --bench dirty_pages
//!
//! Writes random-txid coins into a fresh store, 300,000 at a time (a
//! 16 MiB batch by its own memory, `WriteBatch::memory_usage`), and prints
//! the process's anonymous RSS after each 300,000: first committing each
//! 300,000 in one transaction, then (in a second store, same process
//! afterwards would inherit the first's heap, so a second run of the
//! binary does it) splitting them whenever `WriteBatch::commit_memory`
//! passes 16 MiB, as a chain-state flush does. LMDB keeps every dirty page
//! it freed on a list until the environment closes, so with one
//! transaction per 300,000 the anonymous memory grows with the set;
//! split, it stays flat. `STRAND_BENCH_DIRTY_COINS` sets the total
//! (default 3,000,000); `STRAND_BENCH_DIRTY_MODE=split|whole` runs one mode
//! only (the default runs `whole` then re-executes itself for `split`).

use std::time::Instant;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Txid};
use strand::store::{Coin, Store, WriteBatch};

const PER_FLUSH: u64 = 300_000;
const BATCH_BYTES: usize = 16 << 20;

fn status_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        / 1024
}

fn run(split: bool, total: u64) {
    strand::memory::configure_process();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), [0xfa, 0xbf, 0xb5, 0xda]).expect("open store");
    let coin = Coin {
        amount: Amount::from_sat(5_000),
        height: 1,
        is_coinbase: false,
        script_pubkey: ScriptBuf::from_bytes([0x00, 0x14].into_iter().chain([7u8; 20]).collect()),
    };
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mode = if split { "split" } else { "whole" };
    let started = Instant::now();
    let (mut written, mut commits) = (0u64, 0u64);
    let mut highest = 0;
    while written < total {
        let t = Instant::now();
        let mut batch = WriteBatch::new();
        let mut txids: Vec<[u8; 32]> = (0..PER_FLUSH)
            .map(|_| {
                let mut txid = [0u8; 32];
                for c in txid.chunks_mut(8) {
                    c.copy_from_slice(&random().to_le_bytes());
                }
                txid
            })
            .collect();
        if split {
            // As `CoinsCache::write_dirty`: in the store's key order.
            txids.sort_unstable();
        }
        for txid in txids {
            batch.add_coin(&OutPoint::new(Txid::from_byte_array(txid), 0), &coin);
            if split && batch.commit_memory() > BATCH_BYTES {
                store.commit(&batch).expect("commit");
                commits += 1;
                batch = WriteBatch::new();
            }
        }
        store.commit(&batch).expect("commit");
        commits += 1;
        drop(batch);
        strand::memory::release_free_memory();
        written += PER_FLUSH;
        let anon = status_mb("RssAnon:");
        highest = highest.max(anon);
        println!(
            "dirty-pages {mode}: {written:>9} coins, flush {:.2} s, anon {anon} MB, peak RSS {} MB",
            t.elapsed().as_secs_f64(),
            status_mb("VmHWM:")
        );
    }
    println!(
        "dirty-pages {mode}: {total} random coins in {commits} transactions, {:.1} s; highest anon after a flush {highest} MB, peak RSS {} MB",
        started.elapsed().as_secs_f64(),
        status_mb("VmHWM:")
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = std::env::var("STRAND_BENCH_DIRTY_COINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3_000_000);
    match std::env::var("STRAND_BENCH_DIRTY_MODE").as_deref() {
        Ok("split") => run(true, total),
        Ok("whole") => run(false, total),
        _ => {
            run(false, total);
            // The split run in a fresh process: the first one's heap and
            // LMDB's kept pages would otherwise hide its figure.
            let status = std::env::current_exe().ok().and_then(|exe| {
                std::process::Command::new(exe)
                    .args(std::env::args().skip(1))
                    .env("STRAND_BENCH_DIRTY_MODE", "split")
                    .status()
                    .ok()
            });
            assert!(status.is_some_and(|s| s.success()), "split run failed");
        }
    }
}
