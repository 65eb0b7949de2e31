//! Transaction index and rebuild benchmark (not a test): a regtest chain
//! of `BLOCKS` blocks with `TXS` transactions each is connected into a
//! temporary chain state in-process, then timed: building the txindex
//! from it (the `txindex` thread catching up), `-reindex-chainstate` and
//! `-reindex`. Prints blocks/s, transactions/s and the index's size.
//!
//!     cargo bench --bench txindex
//!
//! Temporary data directory only; no network.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use strand::bitcoin::BlockHash;
use strand::chain::reindex::Reindex;
use strand::chain::state::{ChainOptions, ChainState};
use strand::index::{ActiveChain, TxIndex, TxIndexOptions, TxIndexThread};
use strand::store::Store;
use strand::testdata::ChainBuilder;
use strand::Network;

const BLOCKS: u32 = 1_000;
const TXS: usize = 20;

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The benchmark's chain, fixed: the index follows it as it would the
/// node's active chain.
struct FixedChain(Vec<BlockHash>);

impl ActiveChain for FixedChain {
    fn tip(&self) -> Option<(BlockHash, u32)> {
        let last = self.0.len().checked_sub(1)?;
        Some((self.0[last], last as u32))
    }

    fn hashes(&self, from: u32, count: u32) -> Option<Vec<BlockHash>> {
        let from = (from as usize).min(self.0.len());
        let to = from.saturating_add(count as usize).min(self.0.len());
        Some(self.0[from..to].to_vec())
    }
}

fn main() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    let mut b = ChainBuilder::with_times(77, now - BLOCKS * 60 - 3600, 60);
    for _ in 0..BLOCKS {
        b.next_block(TXS);
    }
    let txs: usize = b.blocks().iter().map(|x| x.txdata.len()).sum();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cs = tmp.path().join("chainstate");
    let magic = {
        let mut chain =
            ChainState::open(&cs, Network::Regtest, ChainOptions::default()).expect("open");
        let started = Instant::now();
        for block in &b.blocks()[1..] {
            chain.accept_block(block.clone()).expect("connect");
        }
        chain.flush().expect("flush");
        assert_eq!(chain.height(), BLOCKS);
        let t = started.elapsed().as_secs_f64();
        println!(
            "first connect (accept_block): {t:.2} s ({:.0} blocks/s)",
            f64::from(BLOCKS) / t
        );
        chain.params().magic().to_bytes()
    };
    println!("chain: {BLOCKS} blocks, {txs} transactions");

    // txindex: catching up from genesis.
    {
        let store = Arc::new(Store::open(&cs, magic).expect("store"));
        let idir = TxIndex::dir_in(tmp.path());
        let index = Arc::new(TxIndex::open(&idir).expect("index"));
        let started = Instant::now();
        let hashes = b.blocks().iter().map(|x| x.block_hash()).collect();
        let thread = TxIndexThread::start(
            Arc::clone(&index),
            Box::new(FixedChain(hashes)),
            store,
            crossbeam_channel::never::<()>(),
            TxIndexOptions::default(),
        )
        .expect("thread");
        let deadline = started + Duration::from_secs(600);
        while !index.info().synced && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let t = started.elapsed().as_secs_f64();
        thread.stop();
        assert_eq!(index.info().best_block_height, BLOCKS);
        println!(
            "txindex build: {t:.2} s ({:.0} blocks/s, {:.0} tx/s), index {:.1} MB",
            f64::from(BLOCKS) / t,
            txs as f64 / t,
            dir_bytes(&idir) as f64 / 1e6
        );
    }

    for mode in [Reindex::ChainState, Reindex::Full] {
        let started = Instant::now();
        let chain =
            ChainState::open_reindexing(&cs, Network::Regtest, ChainOptions::default(), Some(mode))
                .expect("reindex");
        let t = started.elapsed().as_secs_f64();
        assert_eq!(chain.height(), BLOCKS);
        println!(
            "{}: {t:.2} s ({:.0} blocks/s, {:.0} tx/s)",
            mode.option_name(),
            f64::from(BLOCKS) / t,
            txs as f64 / t
        );
    }
}
