//! Block-storage benchmark (not a test): writes synthetic blocks of 0.2 to
//! 1.8 MB (mean 1 MB; `BLOCKSTORE_FIXED=1` for exactly 1 MB) and
//! their undo data through [`Store`] in the chain state's commit pattern
//! (bodies and undo buffered into one [`WriteBatch`] and committed past
//! 8 MiB, `ChainOptions::block_write_bytes`), pruning the oldest blocks
//! beyond a kept total (550 MiB, Core's `MIN_DISK_SPACE_FOR_BLOCK_FILES`)
//! in the same commits. Per GiB written it prints the write throughput,
//! the store's size on disk (allocated bytes of every file under the
//! directory) and the mean and worst time per commit.
//!
//!     cargo bench --bench blockstore            # 5 GiB
//!     BLOCKSTORE_GIB=1 cargo bench --bench blockstore
//!
//! `BLOCKSTORE_RESIDENCY=1` instead measures what releasing the LMDB
//! map's resident pages after each commit costs
//! (`StoreOptions::release_map_pages`, `src/store/residency.rs`): a store
//! of 256 blocks of 1 MB, then 2,000 small commits (100 coin puts), each
//! after reading 20 blocks, with the release off and on (sync mode
//! `NoSync`, so the figure is LMDB and `madvise`, not the disk). Prints
//! commits/s, the minor page faults and the map's resident size.
//!
//! Temporary data directory (`TMPDIR`); nothing else is touched.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, ScriptBuf};
use strand::store::{BlockUndo, Coin, Store, WriteBatch};

const BLOCK_BYTES: usize = 1_000_000;
/// Undo data per block: ~1,500 spent coins (about 60 KB), as a full block
/// of mostly one-input transactions.
const UNDO_COINS: usize = 1_500;
const COMMIT_BYTES: usize = 8 << 20;
const KEEP_BYTES: u64 = 550 << 20;

/// Allocated bytes of every file under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += m.blocks() * 512;
        }
    }
    total
}

fn hash_of(n: u64) -> BlockHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8] = 0xb1;
    BlockHash::from_byte_array(b)
}

fn fill(buf: &mut [u8], mut seed: u64) {
    for chunk in buf.chunks_mut(8) {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Resident kB of this process's mapping of a file ending in `suffix`.
fn mapped_rss_kb(suffix: &str) -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let (mut inside, mut kb) = (false, 0);
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line.trim_end().ends_with(suffix);
        } else if let (true, Some(v)) = (inside, line.strip_prefix("Rss:")) {
            kb += v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    kb
}

fn minor_faults() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_minflt as u64
}

fn residency() {
    use strand::store::{StoreOptions, SyncMode};
    const BLOCKS: u64 = 256;
    const COMMITS: u32 = 2_000;
    println!("residency: {BLOCKS} blocks of {BLOCK_BYTES} B, {COMMITS} commits of 100 coins, 20 block reads before each");
    println!("release  commits/s  minor faults/commit  map RSS at the end");
    for release in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = StoreOptions {
            sync_mode: SyncMode::NoSync,
            release_map_pages: release,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), [0xfa, 0xbf, 0xb5, 0xda], opts).expect("open");
        let mut raw = vec![0u8; BLOCK_BYTES];
        for chunk in 0..BLOCKS / 8 {
            let mut batch = WriteBatch::new();
            for n in chunk * 8..chunk * 8 + 8 {
                fill(&mut raw, n | 1);
                batch.put_block_raw(&hash_of(n), raw.clone());
            }
            store.commit(&batch).expect("commit");
        }
        let coin = Coin {
            amount: Amount::from_sat(1),
            height: 1,
            is_coinbase: false,
            script_pubkey: ScriptBuf::from_bytes(vec![0x51; 22]),
        };
        let faults0 = minor_faults();
        let t = Instant::now();
        let mut seed = 0x1234_5678_9abc_def1u64;
        for c in 0..COMMITS {
            for _ in 0..20 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = seed % BLOCKS;
                let got = store.get_block_raw(&hash_of(n)).expect("read");
                assert_eq!(got.map(|b| b.len()), Some(BLOCK_BYTES));
            }
            let mut batch = WriteBatch::new();
            for i in 0..100u32 {
                let mut txid = [0u8; 32];
                txid[..4].copy_from_slice(&c.to_le_bytes());
                txid[4..8].copy_from_slice(&i.to_le_bytes());
                let op = bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array(txid), 0);
                batch.add_coin(&op, &coin);
            }
            store.commit(&batch).expect("commit");
        }
        let secs = t.elapsed().as_secs_f64();
        let faults = minor_faults() - faults0;
        println!(
            "{:<7}  {:>9.0}  {:>19.0}  {:.1} MB",
            if release { "on" } else { "off" },
            f64::from(COMMITS) / secs,
            faults as f64 / f64::from(COMMITS),
            mapped_rss_kb("data.mdb") as f64 / 1024.0
        );
    }
}

fn main() {
    if std::env::var_os("BLOCKSTORE_RESIDENCY").is_some() {
        return residency();
    }
    let gib: u64 = std::env::var("BLOCKSTORE_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // BLOCKSTORE_FIXED=1: every block exactly 1 MB.
    let vary = std::env::var_os("BLOCKSTORE_FIXED").is_none();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), [0xfa, 0xbf, 0xb5, 0xda]).expect("open store");
    let undo = BlockUndo {
        spent: (0..UNDO_COINS)
            .map(|i| Coin {
                amount: Amount::from_sat(10_000 + i as u64),
                height: i as u32,
                is_coinbase: false,
                script_pubkey: ScriptBuf::from_bytes(vec![0x51; 34]),
            })
            .collect(),
    };
    let undo_bytes = undo.encode().len() as u64;
    let per_block = BLOCK_BYTES as u64 + undo_bytes;
    let keep_blocks = KEEP_BYTES / per_block;
    let total_blocks = (gib << 30) / per_block;
    println!(
        "blockstore: {gib} GiB = {total_blocks} blocks of {BLOCK_BYTES} B + {undo_bytes} B undo, keeping the last {keep_blocks} ({} MiB), commit every {} MiB",
        KEEP_BYTES >> 20,
        COMMIT_BYTES >> 20
    );
    println!("GiB  MB/s   disk MiB  kept MiB  commits  mean ms  worst ms");
    let mut raw = vec![0u8; BLOCK_BYTES];
    let mut batch = WriteBatch::new();
    let mut next_prune = 0u64;
    let started = Instant::now();
    let mut gib_started = Instant::now();
    let mut gib_bytes = 0u64;
    let (mut commits, mut commit_time, mut worst) = (0u32, Duration::ZERO, Duration::ZERO);
    let mut reported = 0u64;
    for n in 0..total_blocks {
        let seed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let size = if vary {
            // 0.2 to 1.8 MB, mean 1 MB: runs of freed pages of every size.
            200_000 + (seed >> 11) as usize % 1_600_000
        } else {
            BLOCK_BYTES
        };
        raw.resize(size, 0);
        fill(&mut raw, seed);
        let hash = hash_of(n);
        batch.put_block_raw(&hash, raw.clone());
        batch.put_undo(&hash, &undo);
        gib_bytes += per_block;
        while n >= keep_blocks && next_prune <= n - keep_blocks {
            batch.delete_block(&hash_of(next_prune));
            batch.delete_undo(&hash_of(next_prune));
            next_prune += 1;
        }
        if batch.size_bytes() > COMMIT_BYTES || n + 1 == total_blocks {
            let t = Instant::now();
            store.commit(&batch).expect("commit");
            let d = t.elapsed();
            commit_time += d;
            worst = worst.max(d);
            commits += 1;
            batch = WriteBatch::new();
        }
        let written = (n + 1) * per_block;
        if written >> 30 > reported || n + 1 == total_blocks {
            reported = written >> 30;
            let secs = gib_started.elapsed().as_secs_f64();
            println!(
                "{:>3.1}  {:>5.1}  {:>8}  {:>8}  {:>7}  {:>7.1}  {:>8.1}",
                written as f64 / (1u64 << 30) as f64,
                gib_bytes as f64 / 1e6 / secs,
                disk_usage(dir.path()) >> 20,
                ((n + 1 - next_prune) * per_block) >> 20,
                commits,
                commit_time.as_secs_f64() * 1e3 / f64::from(commits.max(1)),
                worst.as_secs_f64() * 1e3
            );
            gib_started = Instant::now();
            gib_bytes = 0;
            commits = 0;
            commit_time = Duration::ZERO;
            worst = Duration::ZERO;
        }
    }
    // Read back the kept blocks to check nothing was lost.
    let mut read = 0u64;
    for n in next_prune..total_blocks {
        if store
            .get_block_raw(&hash_of(n))
            .expect("read block")
            .is_some_and(|b| b.len() >= 200_000)
            && store.get_undo(&hash_of(n)).expect("read undo").is_some()
        {
            read += 1;
        }
    }
    let pruned_left = (0..next_prune)
        .filter(|n| matches!(store.get_block_raw(&hash_of(*n)), Ok(Some(_))))
        .count();
    println!(
        "total {:.1} s; {read} of {} kept blocks read back, {pruned_left} pruned blocks still readable; final disk {} MiB",
        started.elapsed().as_secs_f64(),
        total_blocks - next_prune,
        disk_usage(dir.path()) >> 20
    );
}
